package watch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/fanout"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/prometheus/client_golang/prometheus"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeDisc returns whatever snapshot or error it holds and signals each call.
type fakeDisc struct {
	mu    sync.Mutex
	snap  swarm.Snapshot
	err   error
	calls chan struct{}
	delay time.Duration // how long each re-list takes
}

func (f *fakeDisc) Refresh(ctx context.Context) (swarm.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	if f.calls != nil {
		select {
		case f.calls <- struct{}{}:
		default:
		}
	}
	return f.snap, f.err
}

func (f *fakeDisc) set(s swarm.Snapshot, err error) {
	f.mu.Lock()
	f.snap, f.err = s, err
	f.mu.Unlock()
}

// fakeChecker answers by URL; unknown URLs pass.
type fakeChecker struct {
	mu      sync.Mutex
	outcome map[string]probe.Outcome
	probed  []string
	clock   *clock
}

func (f *fakeChecker) CheckAll(ctx context.Context, urls []string) []probe.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]probe.Result, len(urls))
	for i, u := range urls {
		o := f.outcome[u]
		if o == "" {
			o = probe.Pass
		}
		r := probe.Result{At: f.clock.Now(), Outcome: o, Latency: 1500 * time.Microsecond, Code: 200}
		if o != probe.Pass {
			r.Code, r.Err = 500, "HTTP 500"
		}
		out[i] = r
	}
	f.probed = append(f.probed, urls...)
	return out
}

func (f *fakeChecker) set(url string, o probe.Outcome) {
	f.mu.Lock()
	f.outcome[url] = o
	f.mu.Unlock()
}

func task(id string, slot int, addr, desired string) swarm.Task {
	return swarm.Task{ID: id, Slot: slot, NodeID: "n1", Node: "swarm-1", State: "running", DesiredState: desired, Address: addr, Network: "goblog_net"}
}

func baseSnapshot() swarm.Snapshot {
	return swarm.Snapshot{Networks: []string{"goblog_net"}, Services: []swarm.Service{
		{ID: "s-acc", Name: "goblog_accountservice", Desired: 2, Running: 2, ProbePort: 6767, ProbePath: "/health", Mode: "replicated", EndpointMode: "dnsrr",
			Tasks: []swarm.Task{task("t1", 1, "10.0.1.7", "running"), task("t2", 2, "10.0.1.8", "running")}},
		{ID: "s-old", Name: "goblog_quotes-service", Desired: 1, Running: 1, ProbePort: 8080, ProbePath: "/health",
			Tasks: []swarm.Task{task("q1", 1, "10.0.1.9", "running"), task("q0", 1, "10.0.1.3", "shutdown")}},
		{ID: "s-db", Name: "goblog_rabbitmq", Desired: 1, Running: 1,
			Tasks: []swarm.Task{task("r1", 1, "10.0.1.4", "running")}},
		{ID: "s-far", Name: "backend_worker", Desired: 1, Running: 1, ProbePort: 9000, ProbePath: "/health",
			Tasks: []swarm.Task{{ID: "w1", Slot: 1, Node: "swarm-1", State: "running", DesiredState: "running", AddressError: "not attached to goblog_net (only backend_net)"}}},
	}}
}

type harness struct {
	w       *Watcher
	disc    *fakeDisc
	checker *fakeChecker
	clock   *clock
	reg     *prometheus.Registry
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	h := &harness{disc: &fakeDisc{snap: baseSnapshot()}, checker: &fakeChecker{outcome: map[string]probe.Outcome{}, clock: c}, clock: c, reg: prometheus.NewRegistry()}
	w, err := New(Config{
		PollInterval: 5 * time.Second, Debounce: time.Millisecond, ProbeInterval: time.Hour, RetryMin: time.Millisecond,
		StaleAfter: 15 * time.Second, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 3},
		Now: c.Now,
	}, h.disc, h.checker, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register(h.reg); err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

// drain returns every message waiting on the subscription.
func drain(s *fanout.Sub[Message]) []Message {
	var out []Message
	for {
		select {
		case m, ok := <-s.C():
			if !ok {
				return out
			}
			if s.Keep(m) {
				out = append(out, m.Value)
			}
		default:
			return out
		}
	}
}

func changes(ms []Message) []string {
	var out []string
	for _, m := range ms {
		switch {
		case m.Change != nil:
			s := string(m.Change.Type) + " " + m.Change.Service
			if m.Change.Task != nil {
				s += " " + m.Change.Task.ID + " " + string(m.Change.Task.Health)
			}
			out = append(out, s)
		case m.Status != nil:
			out = append(out, "status stale="+map[bool]string{true: "true", false: "false"}[m.Status.Stale])
		}
	}
	return out
}

func healthOf(t *testing.T, view []Service) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range view {
		for _, task := range s.Tasks {
			out[task.ID] = string(task.Health)
		}
	}
	return out
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if h.w.Healthy() || !h.w.State().Status.Stale {
		t.Fatal("healthy before the first answer from the engine")
	}
	st0, sub := h.w.Subscribe(1000)
	view, st := st0.Services, st0.Status
	if len(view) != 0 || !st.Stale {
		t.Fatalf("initial view %v status %+v", view, st)
	}

	// First re-list: everything appears, probe-able tasks start.
	if err := h.w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got := changes(drain(sub))
	want := []string{
		"status stale=false",
		"service-created backend_worker", "task-added backend_worker w1 unknown",
		"service-created goblog_accountservice", "task-added goblog_accountservice t1 starting", "task-added goblog_accountservice t2 starting",
		"service-created goblog_quotes-service", "task-added goblog_quotes-service q1 starting", "task-added goblog_quotes-service q0 draining",
		"service-created goblog_rabbitmq", "task-added goblog_rabbitmq r1 unknown",
	}
	// Service order follows the snapshot; compare as sets per line.
	if !sameSet(got, want) {
		t.Fatalf("changes after first refresh:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got[0] != "status stale=false" {
		t.Errorf("status should come first, got %s", got[0])
	}
	if !h.w.Healthy() {
		t.Error("not healthy after a good re-list")
	}

	// Probe round: every probe-able running task passes (rise 1).
	h.clock.Add(time.Second)
	h.w.Probe(ctx, false)
	got = changes(drain(sub))
	want = []string{"health-changed goblog_accountservice t1 passing", "health-changed goblog_accountservice t2 passing", "health-changed goblog_quotes-service q1 passing"}
	if !sameSet(got, want) {
		t.Fatalf("changes after probe: %v", got)
	}
	probed := strings.Join(h.checker.probed, " ")
	if probed != "http://10.0.1.7:6767/health http://10.0.1.8:6767/health http://10.0.1.9:8080/health" {
		t.Errorf("probed %s (draining, unlabelled and unaddressed tasks must be skipped)", probed)
	}
	t1 := findTask(h.w.State().Services, "t1")
	if !t1.Last.At.Equal(h.clock.Now()) || t1.Last.Latency != 1500*time.Microsecond || t1.Port != 6767 || len(t1.History) != 1 || t1.History[0].Result().Outcome != "pass" {
		t.Errorf("t1 after probe = %+v", t1)
	}

	// t2 fails: one failure (fall 2) changes nothing, the second flips it.
	h.checker.set("http://10.0.1.8:6767/health", probe.Fail)
	h.w.Probe(ctx, false)
	if got := changes(drain(sub)); len(got) != 0 {
		t.Fatalf("one failure changed %v", got)
	}
	h.w.Probe(ctx, false)
	if got := changes(drain(sub)); !sameSet(got, []string{"health-changed goblog_accountservice t2 critical"}) {
		t.Fatalf("second failure: %v", got)
	}
	if t2 := findTask(h.w.State().Services, "t2"); t2.ConsecutiveFailures != 2 || t2.Last.Err != "HTTP 500" {
		t.Errorf("t2 = %+v", t2)
	}

	// Scale: t3 added, t1 removed (its tracker goes with it).
	s := baseSnapshot()
	s.Services[0].Tasks = []swarm.Task{task("t2", 2, "10.0.1.8", "running"), task("t3", 3, "10.0.1.10", "running")}
	h.disc.set(s, nil)
	if err := h.w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := changes(drain(sub)); !sameSet(got, []string{"task-added goblog_accountservice t3 starting", "task-removed goblog_accountservice t1 passing"}) {
		t.Fatalf("scale: %v", got)
	}
	// The new task is probed at once (onlyNew round), nothing else.
	h.checker.probed = nil
	h.w.Probe(ctx, true)
	if p := strings.Join(h.checker.probed, " "); p != "http://10.0.1.10:6767/health" {
		t.Errorf("new-task round probed %q", p)
	}
	drain(sub)

	// Engine fails: state kept, health unknown, stale, /health fails.
	h.disc.set(swarm.Snapshot{}, errors.New("list services: connection refused"))
	if err := h.w.Refresh(ctx); err == nil {
		t.Fatal("refresh error swallowed")
	}
	msgs := drain(sub)
	got = changes(msgs)
	if len(got) == 0 || got[0] != "status stale=true" {
		t.Fatalf("stale: %v", got)
	}
	if msgs[0].Status.Err != "list services: connection refused" || !msgs[0].Status.Since.Equal(time.Date(2026, 11, 22, 12, 0, 1, 0, time.UTC)) {
		t.Errorf("status = %+v", msgs[0].Status)
	}
	view = h.w.State().Services
	if len(view) != 4 || len(findService(view, "goblog_accountservice").Tasks) != 2 {
		t.Fatalf("view lost on error: %+v", view)
	}
	for id, hl := range healthOf(t, view) {
		if hl != string(api.HealthUnknown) {
			t.Errorf("stale task %s health %s, want unknown", id, hl)
		}
	}
	if h.w.Healthy() {
		t.Error("healthy while stale")
	}
	// A second failure tells nobody again.
	_ = h.w.Refresh(ctx)
	if got := changes(drain(sub)); len(got) != 0 {
		t.Errorf("repeated failure published %v", got)
	}

	// Recovery: fresh state, health back.
	h.clock.Add(time.Second)
	h.disc.set(s, nil)
	if err := h.w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	got = changes(drain(sub))
	if len(got) == 0 || got[0] != "status stale=false" {
		t.Fatalf("recovery: %v", got)
	}
	if hl := healthOf(t, h.w.State().Services); hl["t2"] != "critical" || hl["q0"] != "draining" {
		t.Errorf("health after recovery: %v", hl)
	}
	if !h.w.Healthy() {
		t.Error("not healthy after recovery")
	}
	// No re-list for longer than StaleAfter: /health fails even without an error.
	h.clock.Add(16 * time.Second)
	if h.w.Healthy() {
		t.Error("healthy although the engine was not asked for 16s")
	}

	// Service removed: its tasks first, then the service.
	s2 := baseSnapshot()
	s2.Services = s2.Services[:1]
	s2.Services[0].Tasks = s.Services[0].Tasks
	h.disc.set(s2, nil)
	_ = h.w.Refresh(ctx)
	got = changes(drain(sub))
	i := indexOf(got, "service-removed goblog_quotes-service")
	if j := indexOf(got, "task-removed goblog_quotes-service q1 passing"); i < 0 || j < 0 || j > i {
		t.Errorf("service removal order: %v", got)
	}
	sub.Close()
	sub.Close() // twice is harmless
}

func TestSnapshotPlusChangesEqualsView(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	h.w.Probe(ctx, false)
	st, sub := h.w.Subscribe(1000)
	view := st.Services
	model := map[string]map[string]Task{}
	for _, s := range view {
		model[s.Name] = map[string]Task{}
		for _, task := range s.Tasks {
			model[s.Name][task.ID] = task
		}
	}
	// A run of updates.
	h.checker.set("http://10.0.1.7:6767/health", probe.Fail)
	h.w.Probe(ctx, false)
	h.w.Probe(ctx, false)
	s := baseSnapshot()
	s.Services = append(s.Services[:2], swarm.Service{ID: "s-new", Name: "goblog_edge", ProbePort: 6767, ProbePath: "/-/health",
		Tasks: []swarm.Task{task("e1", 1, "10.0.1.20", "running")}})
	s.Services[1].Tasks = s.Services[1].Tasks[:1]
	h.disc.set(s, nil)
	_ = h.w.Refresh(ctx)
	h.w.Probe(ctx, true)
	h.disc.set(swarm.Snapshot{}, errors.New("boom"))
	_ = h.w.Refresh(ctx)

	for _, m := range drain(sub) {
		if m.Change == nil {
			continue
		}
		back := m.Change
		switch back.Type {
		case api.ServiceCreated:
			model[back.Service] = map[string]Task{}
		case api.ServiceRemoved:
			delete(model, back.Service)
		case api.TaskAdded, api.HealthChanged:
			model[back.Service][back.Task.ID] = *back.Task
		case api.TaskRemoved:
			delete(model[back.Service], back.Task.ID)
		}
	}
	final := h.w.State().Services
	if len(model) != len(final) {
		t.Fatalf("model has %d services, view %d", len(model), len(final))
	}
	for _, s := range final {
		if len(model[s.Name]) != len(s.Tasks) {
			t.Errorf("%s: model %d tasks, view %d", s.Name, len(model[s.Name]), len(s.Tasks))
		}
		for _, task := range s.Tasks {
			if model[s.Name][task.ID].Health != task.Health {
				t.Errorf("%s/%s: model health %s, view %s", s.Name, task.ID, model[s.Name][task.ID].Health, task.Health)
			}
		}
	}
}

func TestSlowSubscriberIsDroppedWithoutBlocking(t *testing.T) {
	h := newHarness(t)
	_, slow := h.w.Subscribe(2)
	_, fast := h.w.Subscribe(10000)
	ctx := context.Background()
	for range 50 {
		_ = h.w.Refresh(ctx)  // the same snapshot: nothing to publish after the first
		h.w.Probe(ctx, false) // new results: at least a view
	}
	n := 0
	for range slow.C() { // closed: the loop ends
		n++
	}
	if !slow.Dropped() || n != 2 {
		t.Errorf("slow subscriber: dropped=%v after %d messages", slow.Dropped(), n)
	}
	if fast.Dropped() || len(drain(fast)) < 50 {
		t.Error("fast subscriber lost messages")
	}
}

// A subscriber that starts while messages for the state it read are still
// on their way neither misses nor repeats one: Subscribe's State.Seq skips
// exactly those.
func TestSubscribeNeitherMissesNorRepeats(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	// Queue messages without flushing them, as a concurrent update would.
	h.w.mu.Lock()
	h.clock.Add(time.Second)
	h.w.setStatus(Status{Stale: true, Err: "x", Since: h.clock.Now()})
	h.w.mu.Unlock()
	st, sub := h.w.Subscribe(100)
	if !st.Status.Stale {
		t.Fatal("state misses the queued status")
	}
	h.w.flush() // delivers the queued status: already in st, skipped
	if got := changes(drain(sub)); len(got) != 0 {
		t.Fatalf("repeated: %v", got)
	}
	h.w.mu.Lock()
	h.w.setStatus(Status{Stale: false, Since: h.clock.Now()})
	h.w.mu.Unlock()
	h.w.flush()
	if got := changes(drain(sub)); len(got) != 1 || got[0] != "status stale=false" {
		t.Fatalf("after the state: %v, want the one new status", got)
	}
}

func TestRunRelistsOnEventsAndStops(t *testing.T) {
	c := &clock{now: time.Now()}
	disc := &fakeDisc{snap: baseSnapshot(), calls: make(chan struct{}, 100)}
	fire := make(chan struct{})
	events := func(ctx context.Context, trigger func(string)) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-fire:
				trigger("service update")
			}
		}
	}
	w, err := New(Config{
		PollInterval: time.Hour, Debounce: time.Millisecond, ProbeInterval: time.Hour, RetryMin: time.Millisecond,
		StaleAfter: time.Hour, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 3}, Now: c.Now,
	}, disc, &fakeChecker{outcome: map[string]probe.Outcome{}, clock: c}, events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-disc.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("no re-list %s", what)
		}
	}
	wait("at start")
	fire <- struct{}{}
	wait("after an event (the poll is an hour away)")
	// A failing engine is retried on the backoff, not the poll.
	disc.set(swarm.Snapshot{}, errors.New("down"))
	fire <- struct{}{}
	wait("after the second event")
	wait("on retry")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if !w.State().Status.Stale || len(w.State().Services) != 4 {
		t.Errorf("after failures: status %+v, %d services", w.State().Status, len(w.State().Services))
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{PollInterval: time.Second, ProbeInterval: time.Second, RetryMin: time.Millisecond, StaleAfter: time.Second,
		Thresholds: probe.Thresholds{Rise: 1, Fall: 1, History: 1}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.PollInterval = 0 },
		func(c *Config) { c.StaleAfter = time.Millisecond },
		func(c *Config) { c.Thresholds.Fall = 0 },
	}
	for i, f := range bad {
		c := good
		f(&c)
		if c.Validate() == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

func TestMetricsExposed(t *testing.T) {
	h := newHarness(t)
	_ = h.w.Refresh(context.Background())
	h.w.Probe(context.Background(), false)
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"swarmwatcher_refreshes_total", "swarmwatcher_probes_total", "swarmwatcher_tasks", "swarmwatcher_stale", "swarmwatcher_changes_total"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
}

func findTask(view []Service, id string) Task {
	for _, s := range view {
		for _, t := range s.Tasks {
			if t.ID == id {
				return t
			}
		}
	}
	return Task{}
}

func findService(view []Service, name string) Service {
	for _, s := range view {
		if s.Name == name {
			return s
		}
	}
	return Service{}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestRunPollsFastWhileTasksMove(t *testing.T) {
	c := &clock{now: time.Now()}
	// baseSnapshot has a draining task (q0): the swarm is in transition.
	disc := &fakeDisc{snap: baseSnapshot(), calls: make(chan struct{}, 100)}
	w, err := New(Config{
		PollInterval: time.Hour, TransitionPoll: time.Millisecond, Debounce: time.Millisecond, ProbeInterval: time.Hour,
		RetryMin: time.Millisecond, StaleAfter: time.Hour, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 3}, Now: c.Now,
	}, disc, &fakeChecker{outcome: map[string]probe.Outcome{}, clock: c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	for i := range 3 {
		select {
		case <-disc.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("re-list %d did not come (the poll is an hour away, no events)", i+1)
		}
	}
	cancel()
	<-done
}

// quietSnapshot has nothing in transition: no draining task, every service
// at its desired count, so only events (and the hour-long poll) re-list.
func quietSnapshot() swarm.Snapshot {
	return swarm.Snapshot{Networks: []string{"goblog_net"}, Services: []swarm.Service{
		{ID: "s-acc", Name: "goblog_accountservice", Desired: 1, Running: 1, ProbePort: 6767, ProbePath: "/health",
			Tasks: []swarm.Task{task("t1", 1, "10.0.1.7", "running")}},
	}}
}

// After one engine event the watcher re-lists again and again for FastFor
// (the engine records the task's new state a moment after its events), then
// goes back to its poll; the event's wait is in the stage histogram.
func TestRunRelistsFastAfterAnEventThenStops(t *testing.T) {
	disc := &fakeDisc{snap: quietSnapshot(), calls: make(chan struct{}, 1000)}
	fire := make(chan struct{})
	events := func(ctx context.Context, trigger func(string)) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-fire:
				trigger("service update")
			}
		}
	}
	c := &clock{now: time.Now()}
	w, err := New(Config{
		PollInterval: time.Hour, Debounce: time.Millisecond, FastPoll: 5 * time.Millisecond, FastFor: 100 * time.Millisecond,
		ProbeInterval: time.Hour, RetryMin: time.Millisecond, StaleAfter: time.Hour,
		Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 3}, Now: c.Now,
	}, disc, &fakeChecker{outcome: map[string]probe.Outcome{}, clock: c}, events)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := w.Register(reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-disc.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("no re-list %s", what)
		}
	}
	wait("at start")
	// quiet: nothing until the hour-long poll.
	select {
	case <-disc.calls:
		t.Fatal("re-listed with nothing in transition and no event")
	case <-time.After(50 * time.Millisecond):
	}
	fire <- struct{}{}
	for i := range 4 {
		wait(fmt.Sprintf("%d after one event (the poll is an hour away)", i+1))
	}
	// The fast re-lists end: within 10 s there is a quiet half second, and
	// nothing after it either.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-disc.calls:
			if time.Now().After(deadline) {
				t.Fatal("still re-listing fast 10 s after the one event")
			}
			continue
		case <-time.After(500 * time.Millisecond):
		}
		break
	}
	select {
	case <-disc.calls:
		t.Fatal("re-listed again after the fast window ended")
	case <-time.After(200 * time.Millisecond):
	}
	if n := histogramCount(t, reg, "swarmwatcher_event_to_relist_seconds"); n != 1 {
		t.Errorf("event_to_relist observations = %d, want 1 (one event, served once)", n)
	}
	if n := histogramCount(t, reg, "swarmwatcher_relist_to_publish_seconds"); n < 5 {
		t.Errorf("relist_to_publish observations = %d, want one per re-list (at least 5)", n)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// Fast re-lists never follow each other sooner than the last one took: a
// large swarm's re-lists fill at most half the time, even while events keep
// coming.
func TestFastRelistsLeaveHalfTheTimeFree(t *testing.T) {
	const took, window = 50 * time.Millisecond, time.Second
	disc := &fakeDisc{snap: quietSnapshot(), calls: make(chan struct{}, 1000), delay: took}
	c := &clock{now: time.Now()}
	w, err := New(Config{
		PollInterval: time.Hour, Debounce: 0, FastPoll: time.Millisecond, FastFor: time.Hour,
		ProbeInterval: time.Hour, RetryMin: time.Millisecond, StaleAfter: time.Hour,
		Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 3}, Now: c.Now,
	}, disc, &fakeChecker{outcome: map[string]probe.Outcome{}, clock: c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	<-disc.calls // the first re-list
	stop := time.After(window)
	storm := time.NewTicker(time.Millisecond)
	n := 0
loop:
	for {
		select {
		case <-storm.C:
			w.Trigger("container die") // an event storm
		case <-disc.calls:
			n++
		case <-stop:
			break loop
		}
	}
	storm.Stop()
	cancel()
	<-done
	// Each re-list takes 50 ms and is followed by at least as long a gap:
	// at most one per 100 ms (plus the one under way).
	if most := int(window/(2*took)) + 1; n > most {
		t.Errorf("%d re-lists of %v in %v under an event storm, want at most %d", n, took, window, most)
	}
	if n == 0 {
		t.Error("no re-list under an event storm")
	}
}
