package upstream

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// named starts a backend that answers with its name.
func named(t *testing.T, name string) (addr string, port int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	p, _ := strconv.Atoi(u.Port())
	return u.Hostname(), p
}

// fakeWatcher streams one snapshot, then keeps the stream open until closed.
func fakeWatcher(t *testing.T, services []api.Service) *httptest.Server {
	t.Helper()
	snap, _ := json.Marshal(services)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", snap)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

type stub string

func (s stub) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(stringReader(s)), Header: http.Header{}}, nil
}

type stringReader string

func (s stringReader) Read(p []byte) (int, error) { return copy(p, s), io.EOF }

func get(t *testing.T, rt http.RoundTripper) string {
	t.Helper()
	resp, err := (&http.Client{Transport: rt, Timeout: 5 * time.Second}).Get("http://accountservice:6767/accounts/10000")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBalancesOverPassingTasksAndKeepsThemWhenTheWatcherGoes(t *testing.T) {
	ip, pa := named(t, "a")
	_, pb := named(t, "b")
	_, pc := named(t, "c")
	task := func(id string, port int, health api.Health) api.Task {
		return api.Task{ID: id, Address: ip, Port: port, Health: health, State: "running"}
	}
	watcher := fakeWatcher(t, []api.Service{{Name: "goblog_accountservice", Tasks: []api.Task{
		task("a", pa, api.HealthPassing), task("b", pb, api.HealthPassing), task("c", pc, api.HealthCritical),
	}}})
	w, err := NewWatcher(WatcherConfig{WatcherURL: watcher.URL, Service: "accountservice",
		DialTimeout: time.Second, ResponseHeaderTimeout: time.Second, Fallback: stub("fallback")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	spread := func() map[string]int {
		got := map[string]int{}
		for i := 0; i < 10; i++ {
			got[get(t, w)]++
		}
		return got
	}
	if got := spread(); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("spread %v, want a and b 5 each, never the critical c or the fallback", got)
	}

	watcher.CloseClientConnections()
	watcher.Close()
	deadline := time.Now().Add(5 * time.Second)
	for w.State().Err == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if w.State().Err == nil {
		t.Fatal("the Instancer did not notice the watcher had gone")
	}
	if got := spread(); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("after the watcher went: spread %v, want the last good set a and b", got)
	}
}

func TestFallsBackByNameUntilTheWatcherAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	w, err := NewWatcher(WatcherConfig{WatcherURL: dead, Service: "accountservice",
		DialTimeout: time.Second, ResponseHeaderTimeout: time.Second, Fallback: stub("by name")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := get(t, w); got != "by name" {
		t.Fatalf("got %q, want the by-name fallback", got)
	}
}

func TestNoFallbackNoTasksIsAnError(t *testing.T) {
	watcher := fakeWatcher(t, []api.Service{{Name: "goblog_accountservice", Tasks: []api.Task{
		{ID: "x", Address: "127.0.0.1", Port: 1, Health: api.HealthCritical},
	}}})
	w, err := NewWatcher(WatcherConfig{WatcherURL: watcher.URL, Service: "accountservice",
		DialTimeout: time.Second, ResponseHeaderTimeout: time.Second, Fallback: stub("by name")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The watcher answered: no passing task is the truth, not a reason to
	// fall back; the edge answers 502 fast.
	_, err = (&http.Client{Transport: w}).Get("http://accountservice:6767/")
	if err == nil {
		t.Fatal("want an error with no passing task")
	}
}
