package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/accountservice/internal/api"
	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
	"github.com/goblog/goblog/internal/tenant"
	wapi "github.com/goblog/goblog/swarmwatcher/api"
)

// quotesTask starts a quotes-service stand-in whose quotes name it and the
// tenant header it received.
func quotesTask(t *testing.T, name string) wapi.Task {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"quote":"from %s","ipAddress":"%s/%s","language":"en"}`, name, name, r.Header.Get(tenant.Header))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return wapi.Task{ID: name, Address: u.Hostname(), Port: port, Health: wapi.HealthPassing, State: "running"}
}

type oneAccount struct{}

func (oneAccount) Get(id string) (store.Account, error) {
	return store.Account{ID: id, Name: "Person_0"}, nil
}
func (oneAccount) Check() error { return nil }

func account(t *testing.T, h http.Handler, header ...string) api.Account {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/accounts/10000", nil)
	if header != nil {
		req.Header[tenant.Header] = header
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var a api.Account
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &a) != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return a
}

// TestTenantTravelsToTheQuoteCall: with QUOTES_DISCOVERY=watcher the quote
// call of a tenant's request goes to the tenant's quotes-service (header
// passed on), else to the plain one; an invalid header is ignored, counted,
// and not passed on.
func TestTenantTravelsToTheQuoteCall(t *testing.T) {
	plain, canary := quotesTask(t, "plain"), quotesTask(t, "canary")
	canary.Tenant = "canary"
	services := []wapi.Service{
		{Name: "goblog_quotes-service", Logical: "quotes-service", Tasks: []wapi.Task{plain}},
		{Name: "goblog_quotes-service-canary", Logical: "quotes-service", Tenant: "canary", Tasks: []wapi.Task{canary}},
	}
	snap, _ := json.Marshal(services)
	watcher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", snap)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer watcher.Close()
	d, err := watcherTransport(watcher.URL, "http://quotes-service", byName{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	qc, err := quote.NewClient("http://quotes-service", 0, 2*time.Second, d)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{Store: oneAccount{}, Quotes: qc, ServedBy: "10.0.1.7"})

	for _, c := range []struct {
		what   string
		header []string
		want   string
	}{
		{"plain", nil, "plain/"},
		{"canary", []string{"canary"}, "canary/canary"},
		{"invalid", []string{"can ary"}, "plain/"},
		{"too long", []string{strings.Repeat("c", tenant.MaxLen+1)}, "plain/"},
		{"no such tenant", []string{"shadow"}, "plain/shadow"},
	} {
		for range 5 {
			if got := account(t, h, c.header...).Quote.IPAddress; got != c.want {
				t.Errorf("%s: quote from %q, want %q", c.what, got, c.want)
			}
		}
	}
	if n := h.InvalidTenants(); n != 10 {
		t.Errorf("invalid tenants counted %d, want 10", n)
	}
	rec := httptest.NewRecorder()
	promHandler(h, d).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		"accountservice_tenant_header_invalid_total 10",
		`accountservice_tenant_requests_total{outcome="routed"} 5`,
		`accountservice_tenant_requests_total{outcome="fallback"} 5`,
		`accountservice_watcher_stale{tenant="canary"} 0`,
	} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body)
		}
	}
}

// TestTenantPassedOnByName: by name, the quote call carries the header
// (not routed by it).
func TestTenantPassedOnByName(t *testing.T) {
	q := quotesTask(t, "q")
	qc, err := quote.NewClient("http://"+q.Address+":"+strconv.Itoa(q.Port), 0, 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{Store: oneAccount{}, Quotes: qc})
	if got := account(t, h, "canary").Quote.IPAddress; got != "q/canary" {
		t.Fatalf("quote %q, want the header passed on", got)
	}
	if got := account(t, h).Quote.IPAddress; got != "q/" {
		t.Fatalf("quote %q, want no header", got)
	}
}
