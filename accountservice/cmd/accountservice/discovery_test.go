package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/swarmwatcher/api"
)

type byName struct{}

func (byName) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("by name: no such host")
}

func TestQuotesThroughTheWatcher(t *testing.T) {
	quotes := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/quote" || r.Host != "quotes-service:8080" {
			http.Error(w, "wrong request "+r.Host+r.URL.Path, http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"quote":"found by the watcher","ipAddress":"q/127.0.0.1:8080","language":"en"}`)
	}))
	defer quotes.Close()
	qu, _ := url.Parse(quotes.URL)
	var port int
	fmt.Sscan(qu.Port(), &port)
	snap, _ := json.Marshal([]api.Service{{Name: "goblog_quotes-service", Tasks: []api.Task{
		{ID: "q1", Address: "127.0.0.1", Port: port, Health: api.HealthPassing},
	}}})
	watcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", snap)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer watcher.Close()

	// The task's own port (from the watcher) is used; the URL's 8080 only
	// names the service. Port override is covered in swarmwatcher/sd.
	rt, err := watcherTransport(watcher.URL, "http://quotes-service", byName{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	c, err := quote.NewClient("http://quotes-service:8080", 0, 2*time.Second, rt)
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.Fetch(context.Background())
	if err != nil || q.Text != "found by the watcher" {
		t.Fatalf("Fetch = %+v, %v", q, err)
	}
}

func TestQuotesWatcherDownFallsBackByName(t *testing.T) {
	rt, err := watcherTransport("http://127.0.0.1:1", "http://quotes-service:8080", byName{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://quotes-service:8080/api/quote", nil)
	if _, err := rt.RoundTrip(req); err == nil || err.Error() != "by name: no such host" {
		t.Fatalf("err = %v, want the by-name transport's", err)
	}
	if _, err := watcherTransport("http://127.0.0.1:1", "::bad", byName{}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a bad quotes URL was accepted")
	}
}
