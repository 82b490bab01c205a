package sd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kitsd "github.com/go-kit/kit/sd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/goblog/goblog/internal/tenant"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// tenantSvc is a service of logical name logical with tenant label t ("" for
// a plain one), as the watcher's snapshot lists it.
func tenantSvc(name, logical, t string, tasks ...api.Task) api.Service {
	s := svc(name, tasks...)
	s.Logical, s.Tenant = logical, t
	for i := range s.Tasks {
		s.Tasks[i].Tenant = t
	}
	return s
}

// follow registers a channel on a tenant's set.
func follow(t *testing.T, inst kitsd.Instancer) chan kitsd.Event {
	t.Helper()
	ch := make(chan kitsd.Event, 64)
	inst.Register(ch)
	t.Cleanup(func() { inst.Deregister(ch) })
	return ch
}

func TestTenantSetsApartFromThePlainOne(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	refused := tenantSvc("goblog_accountservice-bad", "accountservice", "", task("x", "10.0.1.40", api.HealthPassing))
	refused.TenantError = `label goblog.tenant="bad name" is not a tenant`
	f.event("snapshot", []api.Service{
		tenantSvc("goblog_accountservice", "accountservice", "", task("a", "10.0.1.7", api.HealthPassing)),
		tenantSvc("goblog_accountservice-canary", "accountservice", "canary",
			task("c1", "10.0.1.30", api.HealthPassing), task("c2", "10.0.1.31", api.HealthCritical)),
		tenantSvc("goblog_accountservice-canary2", "accountservice", "canary", task("c3", "10.0.1.32", api.HealthPassing)),
		tenantSvc("goblog_quotes-service-canary", "quotes-service", "canary", task("q", "10.0.1.50", api.HealthPassing)),
		refused,
	})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767") // never a tenant's task, nor a refused one's
	if got := in.Tenants(); !slices.Equal(got, []string{"canary"}) {
		t.Fatalf("tenants = %v, want [canary] (quotes-service's canary is another logical service)", got)
	}
	canary := follow(t, in.Tenant("canary"))
	wantSet(t, next(t, canary), false, "10.0.1.30:6767", "10.0.1.32:6767") // both services of the tenant, passing only
	shadow := follow(t, in.Tenant("shadow"))
	wantSet(t, next(t, shadow), false) // no such tenant: empty

	// A change to a tenant's task moves its set only.
	c1 := task("c1", "10.0.1.30", api.HealthCritical)
	c1.Tenant = "canary"
	f.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice-canary", Task: &c1})
	wantSet(t, next(t, canary), false, "10.0.1.32:6767")
	select {
	case ev := <-ch:
		t.Fatalf("the plain set moved on a tenant's change: %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}

	// The tenant's services go: its set is empty, without error.
	for _, s := range []string{"goblog_accountservice-canary", "goblog_accountservice-canary2"} {
		f.event(api.ServiceRemoved, api.Change{Type: api.ServiceRemoved, Service: s})
	}
	ev := next(t, canary)
	if len(ev.Instances) != 0 {
		ev = next(t, canary)
	}
	wantSet(t, ev, false)
	if got := in.Tenants(); len(got) != 0 {
		t.Fatalf("tenants = %v after their services went", got)
	}
}

func TestServiceCreatedRereadsTheSnapshot(t *testing.T) {
	fw := newFakeWatcher(t)
	f1, f2 := newFeed(), newFeed()
	fw.feeds <- f1
	fw.feeds <- f2
	plain := tenantSvc("goblog_accountservice", "accountservice", "", task("a", "10.0.1.7", api.HealthPassing))
	f1.event("snapshot", []api.Service{plain})
	sl := &sleeps{}
	in, ch := start(t, testConfig(fw, sl))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")
	canary := follow(t, in.Tenant("canary"))
	wantSet(t, next(t, canary), false)

	// The created service's labels are in the snapshot only: the Instancer
	// reads it again, without publishing a loss.
	f2.event("snapshot", []api.Service{plain,
		tenantSvc("goblog_accountservice-canary", "accountservice", "canary", task("c", "10.0.1.30", api.HealthPassing))})
	f1.event(api.ServiceCreated, api.Change{Type: api.ServiceCreated, Service: "goblog_accountservice-canary"})
	wantSet(t, next(t, canary), false, "10.0.1.30:6767")
	st := in.Stats()
	if st.Resyncs != 1 || st.FeedLosses != 0 {
		t.Fatalf("resyncs %d, losses %d; want 1, 0", st.Resyncs, st.FeedLosses)
	}
	select {
	case ev := <-ch:
		t.Fatalf("the plain set moved on a resync: %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestLostFeedKeepsEverySetAndSaysSo: the last good sets stay, each marked
// stale in Stats and the metrics, and the loss is counted.
func TestLostFeedKeepsEverySetAndSaysSo(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{
		tenantSvc("goblog_accountservice", "accountservice", "", task("a", "10.0.1.7", api.HealthPassing)),
		tenantSvc("goblog_accountservice-canary", "accountservice", "canary", task("c", "10.0.1.30", api.HealthPassing)),
	})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")
	canary := follow(t, in.Tenant("canary"))
	wantSet(t, next(t, canary), false, "10.0.1.30:6767")
	before := in.Stats()

	f.end() // the watcher goes away; no feed is queued, reconnects get 503
	wantSet(t, next(t, ch), true, "10.0.1.7:6767")
	wantSet(t, next(t, canary), true, "10.0.1.30:6767")
	st := in.Stats()
	if st.FeedLosses <= before.FeedLosses {
		t.Fatalf("feed losses %d -> %d, want more", before.FeedLosses, st.FeedLosses)
	}
	if len(st.Sets) != 2 || !st.Sets[0].Stale || !st.Sets[1].Stale || st.Sets[0].Instances != 1 || st.Sets[1].Instances != 1 {
		t.Fatalf("sets = %+v, want plain and canary, one instance each, both stale", st.Sets)
	}
}

// tenantBackends starts one backend per task and a fake watcher whose
// snapshot lists them: plain tasks p1, p2 and canary tasks c1, c2.
func tenantBackends(t testing.TB) (*fakeWatcher, *feed, map[string]api.Task, *sync.Map) {
	t.Helper()
	var hosts sync.Map
	tasks := map[string]api.Task{}
	for _, name := range []string{"p1", "p2", "c1", "c2"} {
		host, port, _ := net.SplitHostPort(backend(t, name, &hosts))
		tk := task(name, host, api.HealthPassing)
		tk.Port, _ = strconv.Atoi(port)
		if name[0] == 'c' {
			tk.Tenant = "canary"
		}
		tasks[name] = tk
	}
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	plain := tenantSvc("goblog_accountservice", "accountservice", "", tasks["p1"], tasks["p2"])
	canary := tenantSvc("goblog_accountservice-canary", "accountservice", "canary", tasks["c1"], tasks["c2"])
	f.event("snapshot", []api.Service{plain, canary})
	return fw, f, tasks, &hosts
}

func newTestDiscovery(t *testing.T, fw *fakeWatcher) *Discovery {
	t.Helper()
	d, err := NewDiscovery(DiscoveryConfig{WatcherURL: fw.srv.URL, Service: "accountservice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// send makes n requests with the given tenant header values (none: no
// header) and counts the answers by backend.
func send(t *testing.T, d *Discovery, n int, values ...string) map[string]int {
	t.Helper()
	c := &http.Client{Transport: d, Timeout: 5 * time.Second}
	got := map[string]int{}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, "http://accountservice:6767/accounts/10000", nil)
		if values != nil {
			req.Header[tenant.Header] = values
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[string(b)]++
	}
	return got
}

func only(t *testing.T, what string, got map[string]int, allowed ...string) {
	t.Helper()
	for name, n := range got {
		if !slices.Contains(allowed, name) {
			t.Fatalf("%s: %d answers from %q, want only %v (all: %v)", what, n, name, allowed, got)
		}
	}
}

func TestDiscoveryRoutesByTenant(t *testing.T) {
	fw, f, tasks, _ := tenantBackends(t)
	d := newTestDiscovery(t, fw)
	const n = 40

	plain := send(t, d, n)
	only(t, "plain requests", plain, "p1", "p2")
	if plain["p1"] == 0 || plain["p2"] == 0 {
		t.Fatalf("plain requests not spread: %v", plain)
	}
	canary := send(t, d, n, "canary")
	only(t, "canary requests", canary, "c1", "c2")
	if canary["c1"] == 0 || canary["c2"] == 0 {
		t.Fatalf("canary requests not spread: %v", canary)
	}
	if st := d.Stats().Tenant; st != (TenantStats{Routed: n}) {
		t.Fatalf("tenant stats = %+v, want %d routed", st, n)
	}

	// A tenant without a service, and the canary's tasks gone critical: the
	// plain tasks, counted as fallback.
	before := d.Stats().Tenant
	only(t, "unknown tenant", send(t, d, n, "shadow"), "p1", "p2")
	for _, name := range []string{"c1", "c2"} {
		tk := tasks[name]
		tk.Health = api.HealthCritical
		f.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice-canary", Task: &tk})
	}
	waitFor(t, "the canary's set to empty", func() bool { return d.tenants.transport("canary").Instances() == 0 })
	only(t, "canary without passing tasks", send(t, d, n, "canary"), "p1", "p2")
	if st := d.Stats().Tenant; st.Fallback-before.Fallback != 2*n || st.Routed != before.Routed || st.Invalid != 0 {
		t.Fatalf("tenant stats %+v -> %+v, want %d more fallbacks only", before, st, 2*n)
	}

	// Back to passing: routed again.
	for _, name := range []string{"c1", "c2"} {
		tk := tasks[name]
		f.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice-canary", Task: &tk})
	}
	waitFor(t, "the canary's set back", func() bool { return d.tenants.transport("canary").Instances() == 2 })
	only(t, "canary again", send(t, d, n, "canary"), "c1", "c2")
}

func TestDiscoveryIgnoresInvalidTenantHeaders(t *testing.T) {
	fw, _, _, _ := tenantBackends(t)
	d := newTestDiscovery(t, fw)
	for name, values := range map[string][]string{
		"empty":      {""},
		"space":      {"can ary"},
		"underscore": {"can_ary"},
		"too long":   {strings.Repeat("c", tenant.MaxLen+1)},
		"non-ASCII":  {"cänary"},
		"dot":        {"can.ary"},
		"repeated":   {"canary", "canary"},
	} {
		t.Run(name, func(t *testing.T) {
			before := d.Stats().Tenant
			only(t, "requests with "+name+" header", send(t, d, 10, values...), "p1", "p2")
			after := d.Stats().Tenant
			if after.Invalid-before.Invalid != 10 || after.Routed != before.Routed || after.Fallback != before.Fallback {
				t.Fatalf("tenant stats %+v -> %+v, want 10 more invalid only", before, after)
			}
		})
	}
	// The longest valid name is a tenant (none here: fallback, not invalid).
	before := d.Stats().Tenant
	send(t, d, 1, strings.Repeat("c", tenant.MaxLen))
	if after := d.Stats().Tenant; after.Fallback != before.Fallback+1 || after.Invalid != before.Invalid {
		t.Fatalf("tenant stats %+v -> %+v, want one fallback", before, after)
	}
}

// TestPlainRequestCostsNoAllocation: the tenant hook adds nothing to a
// request without the header.
func TestPlainRequestCostsNoAllocation(t *testing.T) {
	fw, _, _, _ := tenantBackends(t)
	d := newTestDiscovery(t, fw)
	req, _ := http.NewRequest(http.MethodGet, "http://accountservice:6767/", nil)
	req.Header.Set("Accept", "application/json")
	if n := testing.AllocsPerRun(1000, func() {
		if d.tenants.pick(req) != nil {
			t.Fatal("a plain request picked a tenant")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per plain request in the tenant hook, want 0", n)
	}
	req.Header.Set(tenant.Header, "canary")
	if n := testing.AllocsPerRun(1000, func() { d.tenants.pick(req) }); n != 0 {
		t.Fatalf("%v allocations per routed tenant pick, want 0", n)
	}
}

func TestCollectorSaysStaleAndCounts(t *testing.T) {
	fw, f, _, _ := tenantBackends(t)
	d := newTestDiscovery(t, fw)
	send(t, d, 3, "canary")
	send(t, d, 2, "no tenant!")
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector("edge", d))
	want := func(stale string) string {
		return `
# HELP edge_tenant_requests_total Requests carrying the tenant header, by outcome: routed (to the tenant's tasks), fallback (the tenant has no passing task: the plain ones), invalid (not a tenant: ignored).
# TYPE edge_tenant_requests_total counter
edge_tenant_requests_total{outcome="fallback"} 0
edge_tenant_requests_total{outcome="invalid"} 2
edge_tenant_requests_total{outcome="routed"} 3
# HELP edge_watcher_stale 1 while the set is the last good one, kept because the watcher's feed is lost or says nothing current (the set is never emptied by a failure).
# TYPE edge_watcher_stale gauge
edge_watcher_stale{tenant=""} ` + stale + `
edge_watcher_stale{tenant="canary"} ` + stale + `
# HELP edge_watcher_instances Tasks balanced over, by tenant ("": the plain tasks).
# TYPE edge_watcher_instances gauge
edge_watcher_instances{tenant=""} 2
edge_watcher_instances{tenant="canary"} 2
`
	}
	names := []string{"edge_tenant_requests_total", "edge_watcher_stale", "edge_watcher_instances"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want("0")), names...); err != nil {
		t.Fatal(err)
	}
	f.end()
	waitFor(t, "the loss to show", func() bool { return d.State().Err != nil })
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want("1")), names...); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Instancer.FeedLosses == 0 {
		t.Fatal("the loss was not counted")
	}
	// Still served: the last good sets.
	only(t, "plain while lost", send(t, d, 4), "p1", "p2")
	only(t, "canary while lost", send(t, d, 4, "canary"), "c1", "c2")
	if errors.Is(d.State().Err, ErrStale) {
		t.Fatalf("err = %v: a lost feed, not stale data", d.State().Err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRefusedLabelsAreNoPlainService: a service whose tenant label the
// watcher refused is never balanced over as a plain one.
func TestRefusedLabelsAreNoPlainService(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	s := tenantSvc("goblog_accountservice", "accountservice", "", task("a", "10.0.1.7", api.HealthPassing))
	s.TenantError = `label goblog.tenant="x y" is not a tenant`
	f.event("snapshot", []api.Service{s})
	_, ch := start(t, testConfig(fw, &sleeps{}))
	ev := next(t, ch)
	wantSet(t, ev, true)
	if !errors.Is(ev.Err, ErrTenantLabel) {
		t.Fatalf("err = %v, want ErrTenantLabel", ev.Err)
	}
}

// BenchmarkTenantPick is the tenant hook's cost per request: a plain one (no
// header), a tenant's, and an invalid header.
func BenchmarkTenantPick(b *testing.B) {
	fw, _, _, _ := tenantBackends(b)
	d, err := NewDiscovery(DiscoveryConfig{WatcherURL: fw.srv.URL, Service: "accountservice"})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for _, c := range []struct{ name, header string }{{"plain", ""}, {"tenant", "canary"}, {"invalid", "not a tenant"}} {
		req, _ := http.NewRequest(http.MethodGet, "http://accountservice:6767/", nil)
		if c.header != "" {
			req.Header.Set(tenant.Header, c.header)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.tenants.pick(req)
			}
		})
	}
}

// TestTenantsAreBounded: tenants beyond MaxTenants are left out (by name
// order) and counted.
func TestTenantsAreBounded(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	list := []api.Service{tenantSvc("goblog_accountservice", "accountservice", "", task("a", "10.0.1.7", api.HealthPassing))}
	for i := range MaxTenants + 3 {
		name := fmt.Sprintf("t%03d", i)
		list = append(list, tenantSvc("goblog_accountservice-"+name, "accountservice", name, task(name, "10.0.2."+strconv.Itoa(i+1), api.HealthPassing)))
	}
	f.event("snapshot", list)
	in, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")
	got := in.Tenants()
	if len(got) != MaxTenants || got[0] != "t000" || got[MaxTenants-1] != fmt.Sprintf("t%03d", MaxTenants-1) {
		t.Fatalf("%d tenants followed (%v ... ), want the first %d by name", len(got), got[:3], MaxTenants)
	}
	if st := in.Stats(); st.TenantsOverCap != 3 {
		t.Fatalf("over cap = %d, want 3", st.TenantsOverCap)
	}
}
