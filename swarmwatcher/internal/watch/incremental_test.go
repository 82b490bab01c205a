package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// fullView is what the view must be: every service built afresh, Versions
// aside. Caller holds w.mu.
func fullView(w *Watcher) []Service {
	out := make([]Service, 0, len(w.snap.Services))
	for i := range w.snap.Services {
		s := w.build(&w.snap.Services[i])
		s.Version = 0
		out = append(out, s)
	}
	return out
}

func withoutVersions(view []Service) []Service {
	out := make([]Service, len(view))
	for i, s := range view {
		s.Version = 0
		out[i] = s
	}
	return out
}

// Random runs of re-lists (tasks come, go, drain, services appear and
// leave), failing engines and probe rounds with changing outcomes: after
// every step the incrementally kept view equals one built afresh, and the
// changes published equal a full Diff of the view before and after.
func TestIncrementalViewEqualsFullRebuild(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 15))
	snap := baseSnapshot()
	urls := []string{}
	next := 100
	mutate := func() {
		s := &snap.Services[rng.IntN(len(snap.Services))]
		switch rng.IntN(6) {
		case 0: // a task starts
			next++
			addr := fmt.Sprintf("10.0.2.%d", next%250+1)
			s.Tasks = append(append([]swarm.Task(nil), s.Tasks...), task(fmt.Sprintf("n%d", next), next, addr, "running"))
			urls = append(urls, fmt.Sprintf("http://%s:%d/health", addr, s.ProbePort))
		case 1: // a task leaves
			if len(s.Tasks) > 0 {
				i := rng.IntN(len(s.Tasks))
				s.Tasks = append(append([]swarm.Task(nil), s.Tasks[:i]...), s.Tasks[i+1:]...)
			}
		case 2: // a task drains
			if len(s.Tasks) > 0 {
				s.Tasks = append([]swarm.Task(nil), s.Tasks...)
				s.Tasks[rng.IntN(len(s.Tasks))].DesiredState = "shutdown"
			}
		case 3: // a service's facts change
			s.Desired++
		case 4: // a service comes
			next++
			snap.Services = append(append([]swarm.Service(nil), snap.Services...), swarm.Service{
				ID: fmt.Sprintf("s%d", next), Name: fmt.Sprintf("svc%d", next), ProbePort: 80, ProbePath: "/health",
				Tasks: []swarm.Task{task(fmt.Sprintf("n%d", next), 1, fmt.Sprintf("10.0.3.%d", next%250+1), "running")}})
		case 5: // a service leaves
			if len(snap.Services) > 1 {
				i := rng.IntN(len(snap.Services))
				snap.Services = append(append([]swarm.Service(nil), snap.Services[:i]...), snap.Services[i+1:]...)
			}
		}
	}
	for _, u := range []string{"http://10.0.1.7:6767/health", "http://10.0.1.8:6767/health", "http://10.0.1.9:8080/health"} {
		urls = append(urls, u)
	}
	outcomes := []probe.Outcome{probe.Pass, probe.Warn, probe.Fail}
	_ = h.w.Refresh(ctx)
	for step := range 300 {
		before := h.w.State().Services
		_, sub := h.w.Subscribe(100000)
		what := ""
		switch rng.IntN(4) {
		case 0, 1:
			mutate()
			h.disc.set(snap, nil)
			_ = h.w.Refresh(ctx)
			what = "re-list"
		case 2:
			h.checker.set(urls[rng.IntN(len(urls))], outcomes[rng.IntN(3)])
			h.w.Probe(ctx, rng.IntN(2) == 0)
			what = "probe round"
		case 3:
			h.disc.set(swarm.Snapshot{}, errors.New("engine down"))
			_ = h.w.Refresh(ctx)
			what = "failed re-list"
		}
		after := h.w.State().Services
		h.w.mu.Lock()
		want := fullView(h.w)
		h.w.mu.Unlock()
		if !reflect.DeepEqual(withoutVersions(after), want) {
			t.Fatalf("step %d (%s): the incremental view differs from a full rebuild", step, what)
		}
		var got []string
		for _, m := range drain(sub) {
			if m.Change != nil {
				got = append(got, fmt.Sprintf("%s %s %v", m.Change.Type, m.Change.Service, m.Change.Task != nil && m.Change.Task.ID != ""))
			}
		}
		sub.Close()
		var full []string
		for _, c := range Diff(before, after, time.Time{}) {
			full = append(full, fmt.Sprintf("%s %s %v", c.Type, c.Service, c.Task != nil && c.Task.ID != ""))
		}
		if !reflect.DeepEqual(got, full) {
			t.Fatalf("step %d (%s): published %v, a full diff says %v", step, what, got, full)
		}
	}
}

// A service keeps its Version (and its tasks' values) while nothing of it
// changes; a probe of another service or a re-list of the same facts does
// not rebuild it, and its own probe results do.
func TestUnchangedServicesAreReused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	h.w.Probe(ctx, false)
	v0 := map[string]uint64{}
	for _, s := range h.w.State().Services {
		v0[s.Name] = s.Version
	}
	_ = h.w.Refresh(ctx) // the same snapshot
	for _, s := range h.w.State().Services {
		if s.Version != v0[s.Name] {
			t.Errorf("%s rebuilt by a re-list of the same facts", s.Name)
		}
	}
	_, sub := h.w.Subscribe(100)
	h.w.Probe(ctx, false) // probes accountservice and quotes-service only
	var updated []string
	for _, m := range drain(sub) {
		if m.Services != nil {
			for _, i := range m.Updated {
				updated = append(updated, m.Services[i].Name)
			}
		}
	}
	if !sameSet(updated, []string{"goblog_accountservice", "goblog_quotes-service"}) {
		t.Errorf("a probe round updated %v, want the two probed services", updated)
	}
	for _, s := range h.w.State().Services {
		changed := s.Version != v0[s.Name]
		if probed := s.Name == "goblog_accountservice" || s.Name == "goblog_quotes-service"; changed != probed {
			t.Errorf("%s: rebuilt=%v, probed=%v", s.Name, changed, probed)
		}
	}
}

// sameServiceFacts must compare every field of swarm.Service: one it forgot
// would leave a changed service stale in the view.
func TestSameServiceFactsSeesEveryField(t *testing.T) {
	base := swarm.Service{Labels: map[string]string{"a": "1"}}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "Tasks" {
			continue
		}
		changed := base
		changed.Labels = map[string]string{"a": "1"}
		v := reflect.ValueOf(&changed).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Int:
			v.SetInt(7)
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]string{"a": "2"}))
		default:
			t.Fatalf("field %s of kind %s: teach this test and sameServiceFacts", f.Name, v.Kind())
		}
		if sameServiceFacts(&base, &changed) {
			t.Errorf("sameServiceFacts misses a change of %s", f.Name)
		}
	}
}

func TestJitterBounds(t *testing.T) {
	const interval = time.Second
	slots := make([]int, 10)
	for i := range 10000 {
		j := jitter(fmt.Sprintf("task%05d", i), interval)
		if j < 0 || j >= interval {
			t.Fatalf("jitter %v outside [0, %v)", j, interval)
		}
		slots[j/(interval/10)]++
	}
	for i, n := range slots {
		// 1000 each if spread evenly; a slot with under half or over twice
		// that is a clump.
		if n < 500 || n > 2000 {
			t.Errorf("tenth %d of the interval holds %d of 10000 tasks: %v", i, n, slots)
		}
	}
	if jitter("x", interval) != jitter("x", interval) || jitter("x", 0) != 0 {
		t.Error("jitter is not stable")
	}
}

func TestNextDue(t *testing.T) {
	const iv = time.Second
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	first := nextDue("a", time.Time{}, t0, iv)
	if d := first.Sub(t0); d <= 0 || d > iv {
		t.Errorf("after the first probe: due in %v, want (0, %v]", d, iv)
	}
	if got := nextDue("a", t0, t0.Add(10*time.Millisecond), iv); !got.Equal(t0.Add(iv)) {
		t.Errorf("on time: due %v, want one interval after the last turn", got.Sub(t0))
	}
	// Three and a half intervals late: the next turn on the same phase
	// after now, never one in the past.
	late := t0.Add(3*iv + iv/2)
	if got := nextDue("a", t0, late, iv); !got.Equal(t0.Add(4 * iv)) {
		t.Errorf("late: due %v after the missed turn, want 4s", got.Sub(t0))
	}
	if got := nextDue("a", t0, t0.Add(iv), iv); !got.Equal(t0.Add(2 * iv)) {
		t.Errorf("exactly one interval late: due %v, want 2s", got.Sub(t0))
	}
}

// With the scheduler's ticks (a tenth of the interval), every task is probed
// exactly once per interval after its first probe, and the probes of many
// tasks spread over the ticks instead of coming at once.
func TestProbesSpreadOverTheInterval(t *testing.T) {
	h := newHarness(t)
	h.w.cfg.ProbeInterval = time.Second
	var tasks []swarm.Task
	for i := range 200 {
		tasks = append(tasks, task(fmt.Sprintf("t%03d", i), i+1, fmt.Sprintf("10.0.%d.%d", 4+i/250, i%250+1), "running"))
	}
	h.disc.set(swarm.Snapshot{Networks: []string{"goblog_net"}, Services: []swarm.Service{
		{ID: "s", Name: "many", Desired: 200, Running: 200, ProbePort: 80, ProbePath: "/health", Tasks: tasks}}}, nil)
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	h.w.probe(ctx, newOnly) // the first probe of each: at once
	if n := len(h.checker.probed); n != 200 {
		t.Fatalf("first round probed %d, want 200", n)
	}
	h.checker.probed = nil
	var perTick []int
	for range 30 { // three intervals
		h.clock.Add(100 * time.Millisecond)
		before := len(h.checker.probed)
		h.w.probe(ctx, dueOnly)
		perTick = append(perTick, len(h.checker.probed)-before)
	}
	count := map[string]int{}
	for _, u := range h.checker.probed {
		count[u]++
	}
	for _, tk := range tasks {
		u := "http://" + tk.Address + ":80/health"
		if count[u] != 3 {
			t.Errorf("%s probed %d times in three intervals, want 3", tk.ID, count[u])
		}
	}
	for i, n := range perTick {
		if n > 60 {
			t.Errorf("tick %d probed %d of 200 tasks: not spread (%v)", i, n, perTick)
		}
	}
}

// The history each task of the view carries is capped by the thresholds,
// however many probes ran.
func TestHistoryRingIsCapped(t *testing.T) {
	h := newHarness(t) // History: 3
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	for range 50 {
		h.w.Probe(ctx, false)
	}
	for _, s := range h.w.State().Services {
		for _, tk := range s.Tasks {
			if len(tk.History) > 3 {
				t.Errorf("%s keeps %d results, cap 3", tk.ID, len(tk.History))
			}
		}
	}
	if got := findTask(h.w.State().Services, "t1").History; len(got) != 3 {
		t.Errorf("t1 keeps %d results after 50 probes, want the cap 3", len(got))
	}
}

// hangingChecker passes every URL but those in hang, which wait for release.
type hangingChecker struct {
	hang    map[string]bool
	release chan struct{}
	mu      sync.Mutex
	probed  map[string]int
	now     func() time.Time
}

func (h *hangingChecker) CheckAll(ctx context.Context, urls []string) []probe.Result {
	out := make([]probe.Result, len(urls))
	for i, u := range urls {
		if h.hang[u] {
			<-h.release
		}
		h.mu.Lock()
		h.probed[u]++
		h.mu.Unlock()
		out[i] = probe.Result{At: h.now(), Outcome: probe.Pass, Code: 200}
	}
	return out
}

func (h *hangingChecker) count(u string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probed[u]
}

// A batch held up by a target that does not answer delays only its own
// tasks: the next batches still probe theirs on their turn, and a task in
// flight is never taken into a second batch.
func TestAHangingBatchDelaysOnlyItself(t *testing.T) {
	h := newHarness(t)
	hc := &hangingChecker{hang: map[string]bool{"http://10.0.1.7:6767/health": true}, release: make(chan struct{}), probed: map[string]int{}, now: h.clock.Now}
	h.w.checker = hc
	h.w.cfg.ProbeInterval = time.Second
	ctx := context.Background()
	_ = h.w.Refresh(ctx)
	h.w.mu.Lock()
	for id, ps := range h.w.trackers { // t1 (hangs) due now; the others later
		ps.due = h.clock.Now().Add(500 * time.Millisecond)
		if id == "t1" {
			ps.due = h.clock.Now()
		}
	}
	h.w.mu.Unlock()
	b1 := h.w.collect(dueOnly)
	if b1 == nil || len(b1.ids) != 1 {
		t.Fatalf("first batch %+v, want t1 alone", b1)
	}
	done := make(chan struct{})
	go func() { h.w.run(ctx, b1); close(done) }()
	h.clock.Add(600 * time.Millisecond)
	b2 := h.w.collect(dueOnly)
	if b2 == nil || slices.Contains(b2.ids, "t1") || len(b2.ids) != 2 {
		t.Fatalf("second batch %+v, want t2 and q1, not t1 (in flight)", b2)
	}
	h.w.run(ctx, b2) // completes while the first batch hangs
	if hc.count("http://10.0.1.8:6767/health") != 1 || hc.count("http://10.0.1.9:8080/health") != 1 {
		t.Error("the second batch's tasks were not probed while the first hung")
	}
	if got := findTask(h.w.State().Services, "t2").Health; got != "passing" {
		t.Errorf("t2 is %s while another batch hangs, want passing", got)
	}
	close(hc.release)
	<-done
	if hc.count("http://10.0.1.7:6767/health") != 1 {
		t.Errorf("t1 probed %d times, want once", hc.count("http://10.0.1.7:6767/health"))
	}
	if b := h.w.collect(allTasks); b == nil || len(b.ids) != 3 {
		t.Errorf("after both batches: %v free to probe, want all 3", b)
	}
}
