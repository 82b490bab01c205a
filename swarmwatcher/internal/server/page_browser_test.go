package server

// The page in a real browser (Debian's chromium, headless): a generated
// 400-task, 5-node swarm served by the real handler and watcher, the by-node
// view, the running-only filter, live updates that keep the choice, and the
// node and tenant fields the page reads when the API carries them.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/goblog/goblog/internal/browsertest"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

// pageSwarm is a Discoverer whose snapshot the test replaces.
type pageSwarm struct {
	mu   sync.Mutex
	snap swarm.Snapshot
}

func (p *pageSwarm) Refresh(context.Context) (swarm.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snap, nil
}

func (p *pageSwarm) set(s swarm.Snapshot) {
	p.mu.Lock()
	p.snap = s
	p.mu.Unlock()
}

// pageChecker fails the probe of every address whose last octet is a
// multiple of 7, passes the rest.
type pageChecker struct{ now func() time.Time }

func (c pageChecker) CheckAll(_ context.Context, urls []string) []probe.Result {
	out := make([]probe.Result, len(urls))
	for i, raw := range urls {
		r := probe.Result{At: c.now(), Outcome: probe.Pass, Code: 200, Latency: 3 * time.Millisecond}
		if u, err := url.Parse(raw); err == nil {
			if ip := net.ParseIP(u.Hostname()).To4(); ip != nil && ip[3]%7 == 0 {
				r = probe.Result{At: c.now(), Outcome: probe.Fail, Code: 503, Latency: 9 * time.Millisecond}
			}
		}
		out[i] = r
	}
	return out
}

// pageServices are the generated swarm's services: 8 × 50 = 400 tasks.
var pageServices = []struct {
	name   string
	port   int
	tenant string
}{
	{"goblog_accountservice", 6767, ""},
	{"goblog_accountservice-canary", 6767, "canary"},
	{"goblog_edge", 6767, ""},
	{"goblog_quotes-service", 8080, ""},
	{"goblog_quotes-service-canary", 8080, "canary"},
	{"goblog_rabbitmq", 0, ""},
	{"goblog_swarmwatcher", 6969, ""},
	{"goblog_turbine", 8282, ""},
}

// generate builds a snapshot of perService tasks per service spread over
// nodes nodes; every 10th task is draining and every 25th still starting.
func generate(perService, nodes int) swarm.Snapshot {
	var snap swarm.Snapshot
	n := 0
	for si, ps := range pageServices {
		svc := swarm.Service{
			ID: fmt.Sprintf("svc%02d", si), Name: ps.name, Mode: "replicated", EndpointMode: "dnsrr",
			Desired: perService, ProbePort: ps.port, ProbePath: "/health",
			Labels: map[string]string{"com.docker.stack.namespace": "goblog"},
		}
		if ps.tenant != "" {
			svc.Labels["goblog.tenant"] = ps.tenant
		}
		for slot := 1; slot <= perService; slot++ {
			n++
			t := swarm.Task{
				ID:   fmt.Sprintf("task%02d%03d%s", si, slot, strings.Repeat("x", 13)),
				Slot: slot, Node: fmt.Sprintf("node-%d", (slot+si)%nodes+1),
				State: "running", DesiredState: "running",
				Address: fmt.Sprintf("10.0.%d.%d", n/250+1, n%250+1), Network: "goblog_net",
				NodeStatus: "ready", NodeAvailability: "active", NodeRole: "worker",
			}
			if t.Node == "node-5" {
				t.NodeAvailability = "drain"
			}
			switch {
			case slot%10 == 0:
				t.DesiredState = "shutdown"
			case slot%25 == 7:
				t.State = "starting"
			}
			svc.Tasks = append(svc.Tasks, t)
			if !t.Draining() {
				svc.Running++
			}
		}
		snap.Services = append(snap.Services, svc)
	}
	return snap
}

// expect is what the page should show for a snapshot: task IDs per node and
// the IDs of tasks that are not running.
func expect(snap swarm.Snapshot) (byNode map[string][]string, notRunning []string, total int) {
	byNode = map[string][]string{}
	for _, s := range snap.Services {
		for _, t := range s.Tasks {
			total++
			byNode[t.Node] = append(byNode[t.Node], t.ID)
			if t.State != "running" || t.DesiredState != "running" {
				notRunning = append(notRunning, t.ID)
			}
		}
	}
	for _, ids := range byNode {
		sort.Strings(ids)
	}
	sort.Strings(notRunning)
	return byNode, notRunning, total
}

// pageHandler is the real handler reading w: the one place that knows how
// the server is built.
func pageHandler(t *testing.T, w *watch.Watcher) http.Handler {
	t.Helper()
	return handler(t, Config{Keepalive: time.Second}, w)
}

// browser starts Debian's chromium headless (CHROMIUM overrides the path).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Open(t, 1440, 1000, 2*time.Minute)
}

// eval runs a script in the page and decodes its JSON result.
func eval[T any](t *testing.T, ctx context.Context, script string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script))
	if err != nil {
		t.Fatalf("evaluate %s: %v", script, err)
	}
	return v
}

// waitPage polls until ok holds, or fails after 30 s with the last state.
func waitPage(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		good, state := ok()
		if good {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	browsertest.Screenshot(t, ctx, "output", name, full)
}

// Scripts that read the page.
const (
	jsByNode = `(() => { const m = {}; document.querySelectorAll("#nodes section.node").forEach(s =>
		m[s.dataset.node] = Array.from(s.querySelectorAll(".ntask"), e => e.dataset.taskId).sort()); return m; })()`
	jsVisibleTasks = `(sel => Array.from(document.querySelectorAll(sel)).filter(e => e.getClientRects().length > 0).map(e => e.dataset.taskId).sort())`
	jsHiddenTasks  = `(sel => Array.from(document.querySelectorAll(sel)).filter(e => e.getClientRects().length === 0).map(e => e.dataset.taskId).sort())`
	jsStats        = `window.swarmwatcherStats`
)

type pageStats struct {
	Renders int     `json:"renders"`
	LastMs  float64 `json:"lastMs"`
	MaxMs   float64 `json:"maxMs"`
	FirstMs float64 `json:"firstMs"`
}

func TestPageWith400TasksByNodeAndRunningOnly(t *testing.T) {
	now := func() time.Time { return time.Now().UTC() }
	disc := &pageSwarm{snap: generate(50, 5)}
	w, err := watch.New(watch.Config{
		PollInterval: time.Hour, Debounce: time.Millisecond, ProbeInterval: time.Hour, RetryMin: time.Millisecond,
		StaleAfter: time.Hour, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 5}, Now: now,
	}, disc, pageChecker{now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if err := w.Refresh(bg); err != nil {
		t.Fatal(err)
	}
	w.Probe(bg, false)
	w.Probe(bg, false)
	srv := httptest.NewServer(pageHandler(t, w))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	ctx := browser(t)

	byNode, notRunning, total := expect(disc.snap)
	if total != 400 || len(byNode) != 5 || len(notRunning) == 0 {
		t.Fatalf("generated %d tasks on %d nodes, %d not running", total, len(byNode), len(notRunning))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`tr.task`))); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	eval[string](t, ctx, `window.__loadMarker = "first-load"`)
	waitPage(t, "400 task rows by service", func() (bool, string) {
		n := eval[int](t, ctx, `document.querySelectorAll("#services tr.task").length`)
		return n == total, fmt.Sprintf("%d rows", n)
	})
	perService := eval[map[string]int](t, ctx, `(() => { const m = {}; document.querySelectorAll("#services section.service").forEach(s =>
		m[s.dataset.service] = s.querySelectorAll("tr.task").length); return m; })()`)
	for _, ps := range pageServices {
		if perService[ps.name] != 50 {
			t.Errorf("service %s shows %d rows, want 50", ps.name, perService[ps.name])
		}
	}
	if crit := eval[int](t, ctx, `document.querySelectorAll('#services tr.task[data-health="critical"]').length`); crit == 0 {
		t.Errorf("no critical rows although some probes fail")
	}
	first := eval[pageStats](t, ctx, jsStats)
	t.Logf("first render of %d tasks (every element created): %.1f ms in the browser", total, first.FirstMs)

	// By node: five groups, each holding exactly its tasks.
	switchMs := eval[float64](t, ctx, `(() => { const t0 = performance.now(); document.getElementById("view-node").click();
		void document.body.offsetHeight; return performance.now() - t0; })()`)
	t.Logf("switch to the by-node view (build + layout of %d tasks): %.1f ms", total, switchMs)
	if got := eval[map[string][]string](t, ctx, jsByNode); !mapsEqual(got, byNode) {
		t.Errorf("node groups differ:\n got  %s\n want %s", summary(got), summary(byNode))
	}
	facts := eval[map[string]string](t, ctx, `(() => { const m = {}; document.querySelectorAll("#nodes section.node").forEach(s =>
		m[s.dataset.node] = s.dataset.state + "/" + s.dataset.availability); return m; })()`)
	for node := range byNode {
		want := "ready/active"
		if node == "node-5" {
			want = "ready/drain"
		}
		if facts[node] != want {
			t.Errorf("node %s shows %q, want %q (from the API's nodeStatus and nodeAvailability)", node, facts[node], want)
		}
	}
	if h := eval[string](t, ctx, `location.hash`); h != "#view=node" {
		t.Errorf("hash after choosing the node view: %q", h)
	}
	if hidden := eval[bool](t, ctx, `document.getElementById("services").getClientRects().length === 0`); !hidden {
		t.Errorf("the service view is still shown in the node view")
	}
	screenshot(t, ctx, "swarmwatcher-by-node.png", true)

	// Running only: exactly the non-running tasks disappear.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#running-only`))); err != nil {
		t.Fatal(err)
	}
	checkFilter := func(byNode map[string][]string, notRunning []string, total int) (bool, string) {
		hidden := eval[[]string](t, ctx, jsHiddenTasks+`("#nodes .ntask")`)
		visible := eval[[]string](t, ctx, jsVisibleTasks+`("#nodes .ntask")`)
		groups := eval[map[string][]string](t, ctx, jsByNode)
		ok := slices.Equal(hidden, notRunning) && len(visible) == total-len(notRunning) && mapsEqual(groups, byNode)
		return ok, fmt.Sprintf("%d hidden (want %d), %d visible (want %d), groups %s (want %s)",
			len(hidden), len(notRunning), len(visible), total-len(notRunning), summary(groups), summary(byNode))
	}
	waitPage(t, "running-only hides the non-running tasks", func() (bool, string) { return checkFilter(byNode, notRunning, total) })
	if h := eval[string](t, ctx, `location.hash`); h != "#view=node&running=1" {
		t.Errorf("hash after the filter: %q", h)
	}

	// A live update: 20 tasks go, 12 arrive on node-3, 5 start draining.
	// The view and the filter survive; the page does not reload.
	before := eval[pageStats](t, ctx, jsStats)
	next := generate(50, 5)
	next.Services[0].Tasks = next.Services[0].Tasks[20:]
	for slot := 51; slot <= 62; slot++ {
		next.Services[5].Tasks = append(next.Services[5].Tasks, swarm.Task{
			ID: fmt.Sprintf("new%03d%s", slot, strings.Repeat("y", 16)), Slot: slot, Node: "node-3",
			State: "running", DesiredState: "running", Address: fmt.Sprintf("10.0.9.%d", slot), Network: "goblog_net",
		})
	}
	for i := 0; i < 5; i++ {
		next.Services[2].Tasks[i].DesiredState = "shutdown"
	}
	disc.set(next)
	if err := w.Refresh(bg); err != nil {
		t.Fatal(err)
	}
	byNode, notRunning, total = expect(next)
	waitPage(t, "the node view follows the update with the filter kept", func() (bool, string) {
		return checkFilter(byNode, notRunning, total)
	})
	if m := eval[string](t, ctx, `String(window.__loadMarker)`); m != "first-load" {
		t.Fatalf("the page reloaded (marker %q)", m)
	}
	if checked := eval[bool](t, ctx, `document.getElementById("running-only").checked`); !checked {
		t.Errorf("the running-only box was cleared by the update")
	}
	after := eval[pageStats](t, ctx, jsStats)
	if after.Renders <= before.Renders {
		t.Errorf("no render after the update (%d before, %d after)", before.Renders, after.Renders)
	}
	t.Logf("live update of %d tasks (32 changed, DOM reused): last render %.1f ms, slowest so far %.1f ms, %d renders",
		total, after.LastMs, after.MaxMs, after.Renders)

	// A probe round changes every probed task (latency, history): one more
	// incremental update, measured.
	w.Probe(bg, false)
	waitPage(t, "a probe round renders", func() (bool, string) {
		s := eval[pageStats](t, ctx, jsStats)
		return s.Renders > after.Renders, fmt.Sprintf("%d renders", s.Renders)
	})
	afterProbe := eval[pageStats](t, ctx, jsStats)
	t.Logf("probe-round update (every probed task's latency and history changed): %.1f ms", afterProbe.LastMs)

	// Back to the service view: the filter applies there too, and the page
	// still answers at once.
	switchMs = eval[float64](t, ctx, `(() => { const t0 = performance.now(); document.getElementById("view-service").click();
		void document.body.offsetHeight; return performance.now() - t0; })()`)
	t.Logf("switch back to the by-service view (update + layout): %.1f ms", switchMs)
	visibleRows := eval[[]string](t, ctx, jsVisibleTasks+`("#services tr.task")`)
	hiddenRows := eval[[]string](t, ctx, jsHiddenTasks+`("#services tr.task")`)
	if len(visibleRows) != total-len(notRunning) || !slices.Equal(hiddenRows, notRunning) {
		t.Errorf("service view with running-only: %d rows visible (want %d), %d hidden (want %d)",
			len(visibleRows), total-len(notRunning), len(hiddenRows), len(notRunning))
	}
	before = eval[pageStats](t, ctx, jsStats)
	w.Probe(bg, false)
	waitPage(t, "a probe round renders the service view", func() (bool, string) {
		s := eval[pageStats](t, ctx, jsStats)
		return s.Renders > before.Renders, fmt.Sprintf("%d renders", s.Renders)
	})
	t.Logf("probe-round update of the by-service view (every probed row's latency, last check and history changed): %.1f ms",
		eval[pageStats](t, ctx, jsStats).LastMs)
	if n := eval[int](t, ctx, `document.querySelectorAll("#services tr.task").length`); n != total {
		t.Errorf("service view after a probe round: %d rows, want %d", n, total)
	}
	screenshot(t, ctx, "swarmwatcher-by-service.png", false)

	// The choice lives in the address: a reload comes back to it.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr.task`))); err != nil {
		t.Fatal(err)
	}
	state := eval[string](t, ctx, `location.hash + " " + document.getElementById("running-only").checked + " " +
		document.getElementById("view-service").getAttribute("aria-pressed")`)
	if state != "#running=1 true true" {
		t.Errorf("after a reload: %q, want the service view with running-only", state)
	}
}

// TestPageShowsNodeFactsAndTenants feeds the page the fields it reads when
// the API carries them (node state, availability and role per task, a nodes
// event, a tenant per service) through a scripted event stream, and checks
// that hostile names stay text.
func TestPageShowsNodeFactsAndTenants(t *testing.T) {
	const hostile = `<img src=x onerror="window.__pwned=1">`
	services := []map[string]any{
		{"id": "a", "name": "goblog_accountservice", "replicas": map[string]int{"desired": 2, "running": 2}, "tasks": []map[string]any{
			{"id": "t1", "slot": 1, "node": "node-1", "nodeStatus": "ready", "nodeAvailability": "active", "nodeRole": "manager", "state": "running", "desiredState": "running", "address": "10.0.1.2", "health": "passing"},
			{"id": "t2", "slot": 2, "node": "node-2", "nodeStatus": "ready", "nodeAvailability": "drain", "nodeRole": "worker", "state": "running", "desiredState": "shutdown", "address": "10.0.1.3", "health": "draining"},
		}},
		{"id": "c", "name": hostile, "tenant": "canary", "replicas": map[string]int{"desired": 1, "running": 1}, "tasks": []map[string]any{
			{"id": "t3", "slot": 1, "node": "node-1", "nodeStatus": "ready", "nodeAvailability": "active", "state": "running", "desiredState": "running", "address": "10.0.1.4", "health": "critical"},
		}},
	}
	nodes := []map[string]string{
		{"name": "node-1", "status": "ready", "availability": "active", "role": "manager"},
		{"name": "node-2", "status": "ready", "availability": "drain", "role": "worker"},
		{"name": "node-3", "status": "down", "availability": "active", "role": "worker"},
	}
	withNodes := make(chan bool, 1)
	mux := http.NewServeMux()
	idle, err := watch.New(watch.Config{
		PollInterval: time.Hour, ProbeInterval: time.Hour, RetryMin: time.Millisecond, StaleAfter: time.Hour,
		Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 5},
	}, &pageSwarm{}, pageChecker{time.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", pageHandler(t, idle))
	mux.HandleFunc("GET /api/events", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		b, _ := json.Marshal(services)
		fmt.Fprintf(rw, "event: snapshot\ndata: %s\n\n", b)
		if <-withNodes {
			b, _ = json.Marshal(nodes)
			fmt.Fprintf(rw, "event: nodes\ndata: %s\n\n", b)
		}
		rw.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	ctx := browser(t)

	// First from the per-task fields alone.
	withNodes <- false
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#view=node"), chromedp.WaitVisible(chromedp.CSS(`#nodes section.node`))); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	type nodeView struct {
		State, Availability, Class, Text string
		Tasks                            int
	}
	read := func() map[string]nodeView {
		return eval[map[string]nodeView](t, ctx, `(() => { const m = {}; document.querySelectorAll("#nodes section.node").forEach(s =>
			m[s.dataset.node] = {State: s.dataset.state, Availability: s.dataset.availability, Class: s.className,
				Text: s.querySelector(".node-head").textContent, Tasks: s.querySelectorAll(".ntask").length}); return m; })()`)
	}
	got := read()
	if n1 := got["node-1"]; n1.State != "ready" || n1.Availability != "active" || n1.Tasks != 2 || !strings.Contains(n1.Text, "manager") {
		t.Errorf("node-1 from task fields: %+v", n1)
	}
	if n2 := got["node-2"]; n2.Availability != "drain" || !strings.Contains(n2.Class, "drain") || n2.Tasks != 1 {
		t.Errorf("node-2 from task fields: %+v", n2)
	}
	if len(got) != 2 {
		t.Errorf("nodes without a nodes event: %v", got)
	}
	tenant := eval[string](t, ctx, `document.querySelector('#nodes .ntask[data-task-id="t3"]').closest(".nsvc").querySelector(".tenant").textContent`)
	name := eval[string](t, ctx, `document.querySelector('#nodes .ntask[data-task-id="t3"]').closest(".nsvc").querySelector(".svc").textContent`)
	if tenant != "canary" || name != hostile {
		t.Errorf("tenant %q, name %q", tenant, name)
	}
	if pwned := eval[bool](t, ctx, `window.__pwned === 1 || document.querySelectorAll("#nodes img, #services img").length > 0`); pwned {
		t.Errorf("a service name became markup")
	}
	screenshot(t, ctx, "swarmwatcher-node-facts.png", false)

	// Then with the nodes event: a node without tasks shows, in its state.
	withNodes <- true
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`#nodes section.node[data-node="node-3"]`))); err != nil {
		t.Fatalf("reload with nodes: %v", err)
	}
	got = read()
	if n3 := got["node-3"]; n3.State != "down" || !strings.Contains(n3.Class, "bad") || n3.Tasks != 0 {
		t.Errorf("node-3 from the nodes event: %+v", n3)
	}
	if len(got) != 3 {
		t.Errorf("nodes with a nodes event: %v", got)
	}
	// The service view carries the tenant too.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#view-service`))); err != nil {
		t.Fatal(err)
	}
	q, _ := json.Marshal(hostile)
	if s := eval[string](t, ctx, `Array.from(document.querySelectorAll("#services section.service")).find(s => s.dataset.service === `+string(q)+`).querySelector(".tenant").textContent`); s != "tenant canary" {
		t.Errorf("service view tenant: %q", s)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func summary(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, len(m[k])))
	}
	return strings.Join(parts, " ")
}
