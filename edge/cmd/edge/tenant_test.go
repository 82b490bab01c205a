package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/goblog/goblog/internal/tenant"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// answering starts a backend that answers with its name and the tenant
// header it received.
func answering(t *testing.T, name string) api.Task {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.Header.Get(tenant.Header))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return api.Task{ID: name, Address: u.Hostname(), Port: port, Health: api.HealthPassing, State: "running"}
}

// watcherWith streams one snapshot, then keeps the stream open.
func watcherWith(t *testing.T, services []api.Service) string {
	t.Helper()
	snap, _ := json.Marshal(services)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", snap)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func through(t *testing.T, h http.Handler, n int, header ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		req := httptest.NewRequest(http.MethodGet, "/accounts/10000", nil)
		if header != nil {
			req.Header[tenant.Header] = header
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		got[rec.Body.String()]++
	}
	return got
}

func scrape(t *testing.T, metrics http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestWatcherModeRoutesTenants: through the whole edge (proxy, watcher
// transport, metrics), tenant requests reach the tenant's task only, plain
// and invalid ones the plain task only, and the metrics count them.
func TestWatcherModeRoutesTenants(t *testing.T) {
	plain, canary := answering(t, "plain"), answering(t, "canary")
	canary.Tenant = "canary"
	w := watcherWith(t, []api.Service{
		{Name: "goblog_accountservice", Logical: "accountservice", Tasks: []api.Task{plain}},
		{Name: "goblog_accountservice-canary", Logical: "accountservice", Tenant: "canary", Tasks: []api.Task{canary}},
	})
	t.Setenv("EDGE_TARGET", "http://accountservice") // no port: the watcher's per task
	cfg, _, _, err := load([]string{"-edge-discovery", "watcher", "-watcher-url", w})
	if err != nil {
		t.Fatal(err)
	}
	h, metrics, closeTransport, err := handler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransport()

	for _, c := range []struct {
		what   string
		header []string
		want   string
	}{
		{"plain", nil, "plain "},
		{"canary", []string{"canary"}, "canary canary"},
		{"invalid", []string{"can ary"}, "plain can ary"}, // passed on unchanged, not routed by
		{"too long", []string{strings.Repeat("c", tenant.MaxLen+1)}, "plain " + strings.Repeat("c", tenant.MaxLen+1)},
		{"no such tenant", []string{"shadow"}, "plain shadow"},
	} {
		if got := through(t, h, 10, c.header...); len(got) != 1 || got[c.want] != 10 {
			t.Errorf("%s requests: answers %v, want 10 of %q", c.what, got, c.want)
		}
	}
	body := scrape(t, metrics)
	for _, want := range []string{
		`edge_tenant_requests_total{outcome="routed"} 10`,
		`edge_tenant_requests_total{outcome="invalid"} 20`,
		`edge_tenant_requests_total{outcome="fallback"} 10`,
		`edge_watcher_instances{tenant=""} 1`,
		`edge_watcher_instances{tenant="canary"} 1`,
		`edge_watcher_stale{tenant=""} 0`,
		`edge_bad_gateway_total 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestNameModeDoesNotRouteTenants: by name, the header is passed on
// unchanged and the edge has no tenant metrics.
func TestNameModeDoesNotRouteTenants(t *testing.T) {
	up := answering(t, "upstream")
	t.Setenv("EDGE_TARGET", "http://"+up.Address+":"+strconv.Itoa(up.Port))
	cfg, _, _, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, metrics, closeTransport, err := handler(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransport()
	if got := through(t, h, 3, "canary"); got["upstream canary"] != 3 {
		t.Fatalf("answers %v, want the header passed on", got)
	}
	if body := scrape(t, metrics); strings.Contains(body, "edge_tenant_") || !strings.Contains(body, "edge_overloaded_total 0") {
		t.Fatalf("name-mode metrics:\n%s", body)
	}
}
