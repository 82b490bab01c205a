package watch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goblog/goblog/internal/backoff"
	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/fanout"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// Discoverer reads the swarm's state.
type Discoverer interface {
	Refresh(ctx context.Context) (swarm.Snapshot, error)
}

// Checker probes URLs, results in the same order.
type Checker interface {
	CheckAll(ctx context.Context, urls []string) []probe.Result
}

// EventSource follows the engine's events and calls trigger when a re-list
// is due; it returns when ctx ends. Nil means: poll only.
type EventSource func(ctx context.Context, trigger func(reason string)) error

var (
	_ Discoverer = (*swarm.Discovery)(nil)
	_ Checker    = (*probe.Prober)(nil)
)

// Config tunes the Watcher.
type Config struct {
	// PollInterval is the backstop re-list period (events do most work).
	PollInterval time.Duration
	// TransitionPoll is the re-list period while tasks are in transition
	// (draining, or fewer running than desired): swarm has no task events,
	// and the manager records a stopped or started task a moment after the
	// container event that triggered the last re-list. 0 means PollInterval.
	TransitionPoll time.Duration
	// Debounce is the wait after an engine event before the re-list, so
	// that the events of one change (a service update and its containers')
	// share it.
	Debounce time.Duration
	// FastPoll is the re-list period for FastFor after every engine event:
	// swarm has no task events, and the manager records that a task runs
	// (or is to shut down) a moment after the events that announced it, so
	// the watcher keeps looking for a while. It is also the least gap
	// between the end of one re-list and the start of an event's re-list,
	// which bounds the Engine API calls of an event storm; and never
	// shorter than the last re-list took, so that re-lists fill at most
	// half of the time, however large the swarm. 0 turns fast polling off.
	FastPoll time.Duration
	// FastFor is how long after the last engine event FastPoll holds.
	FastFor time.Duration
	// ProbeInterval is the period of probe rounds.
	ProbeInterval time.Duration
	// RetryMin is the first wait after a failed re-list; it grows (the
	// project's backoff, jittered) up to PollInterval while the engine keeps
	// failing.
	RetryMin time.Duration
	// StaleAfter: without a successful re-list for this long, /health fails
	// even if no error was seen.
	StaleAfter time.Duration
	// Thresholds flip a task's health.
	Thresholds probe.Thresholds
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: discard).
	Logger *slog.Logger
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.PollInterval <= 0 || c.ProbeInterval <= 0 || c.Debounce < 0 || c.RetryMin <= 0 || c.TransitionPoll < 0 ||
		c.FastPoll < 0 || c.FastFor < 0 {
		return errors.New("intervals must be positive")
	}
	if c.StaleAfter < c.PollInterval {
		return errors.New("stale-after must be at least the poll interval")
	}
	return c.Thresholds.Validate()
}

// Watcher keeps the swarm view current (the loop) and publishes every
// change on its hub (the fan-out).
type Watcher struct {
	cfg     Config
	disc    Discoverer
	checker Checker
	events  EventSource
	log     *slog.Logger
	m       *metrics
	hub     *fanout.Hub[Message]

	trig     chan struct{}
	probeNew chan struct{}

	// trigMu guards pending: when the first engine event not yet served by
	// a re-list arrived (zero: none), for the event-to-re-list histogram.
	trigMu  sync.Mutex
	pending time.Time

	mu       sync.Mutex
	snap     swarm.Snapshot
	trackers map[string]*probeState // by task ID
	status   Status
	lastOK   time.Time
	view     []Service      // published; never modified after publication
	viewIdx  map[string]int // service ID -> index in view
	version  uint64         // the last Service.Version handed out
	// probed are the services (by ID) with probe results recorded since
	// the last update; allDirty asks the next update to rebuild every
	// service (the status flipped: every health changes).
	probed   map[string]bool
	allDirty bool
	moving   bool   // tasks in transition in the last snapshot
	seq      uint64 // of the last message queued
	outbox   []fanout.Message[Message]

	// flushMu keeps messages in order from the outbox to the hub; it is
	// taken without mu, so no state lock is held while they are delivered.
	flushMu sync.Mutex
}

// New returns a Watcher; call Run to start it.
func New(cfg Config, disc Discoverer, checker Checker, events EventSource) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := newMetrics()
	w := &Watcher{
		cfg: cfg, disc: disc, checker: checker, events: events, log: log, m: m,
		hub: fanout.New[Message](fanout.Config{
			OnCount: func(n int) { m.subscribers.Set(float64(n)) },
			OnDrop: func() {
				m.dropped.Inc()
				log.Warn("subscriber fell behind: dropped")
			},
		}),
		trig:     make(chan struct{}, 1),
		probeNew: make(chan struct{}, 1),
		trackers: map[string]*probeState{},
		view:     []Service{},
		viewIdx:  map[string]int{},
		probed:   map[string]bool{},
	}
	w.status = Status{Stale: true, Err: "no answer from the Docker API yet", Since: cfg.Now()}
	w.m.stale.Set(1)
	return w, nil
}

// Register adds the watcher's metrics to reg.
func (w *Watcher) Register(reg prometheus.Registerer) error { return w.m.register(reg) }

// Subscribe returns the current state and a subscription to every message
// after it (skip those up to State.Seq with Sub.Keep), so a subscriber neither
// misses nor repeats a change. buffer bounds how many messages may wait; a
// subscriber that lets it fill up is dropped and may subscribe again.
func (w *Watcher) Subscribe(buffer int) (State, *fanout.Sub[Message]) {
	sub, _ := w.hub.Subscribe(buffer, "") // unbounded hub: no error
	st := w.State()
	sub.Skip(st.Seq)
	return st, sub
}

// State returns the view, its status and the sequence number of the last
// message about them.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return State{Services: w.view, Status: w.status, Seq: w.seq}
}

// Run re-lists on engine events (debounced) and on the backstop poll, and
// probes on its interval, until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if w.events != nil {
		wg.Go(func() { _ = w.events(ctx, w.Trigger) })
	}
	wg.Go(func() { w.refreshLoop(ctx) })
	wg.Go(func() { w.probeLoop(ctx) })
	wg.Wait()
	return nil
}

// Trigger asks for a re-list soon (after the debounce), and for fast
// re-lists for a while after it (FastPoll, FastFor).
func (w *Watcher) Trigger(reason string) {
	w.m.triggers.Inc()
	w.trigMu.Lock()
	if w.pending.IsZero() {
		w.pending = w.cfg.Now()
	}
	w.trigMu.Unlock()
	select {
	case w.trig <- struct{}{}:
	default: // one is pending already
	}
}

func (w *Watcher) refreshLoop(ctx context.Context) {
	// The loop schedules on the monotonic clock (time.Now): due is when the
	// next re-list starts, fastUntil when fast polling after the last engine
	// event ends, lastEnd when the last re-list ended.
	now := time.Now()
	due, fastUntil, lastEnd := now, time.Time{}, time.Time{}
	gap := w.cfg.FastPoll     // FastPoll, or the last re-list's duration if longer
	timer := time.NewTimer(0) // first re-list at once
	defer timer.Stop()
	retry := backoff.New(w.cfg.RetryMin, w.cfg.PollInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.trig:
			now := time.Now()
			if w.cfg.FastPoll > 0 {
				fastUntil = now.Add(w.cfg.FastFor)
			}
			// After the debounce, but not sooner than FastPoll after the
			// last re-list ended: an event storm costs at most one re-list
			// per FastPoll.
			at := now.Add(w.cfg.Debounce)
			if earliest := lastEnd.Add(gap); earliest.After(at) {
				at = earliest
			}
			if at.Before(due) {
				due = at
				timer.Reset(max(due.Sub(now), 0))
			}
			continue
		case <-timer.C:
		}
		w.servePending()
		start := time.Now()
		err := w.Refresh(ctx)
		if err != nil && ctx.Err() != nil {
			return
		}
		lastEnd = time.Now()
		gap = max(w.cfg.FastPoll, lastEnd.Sub(start))
		next := w.cfg.PollInterval
		if err != nil {
			next = retry.Next()
		} else {
			retry.Reset()
			if w.inTransition() && w.cfg.TransitionPoll > 0 {
				next = min(next, w.cfg.TransitionPoll)
			}
			if w.cfg.FastPoll > 0 && lastEnd.Before(fastUntil) {
				next = min(next, gap)
			}
		}
		due = lastEnd.Add(next)
		timer.Reset(next)
	}
}

// servePending records how long the engine event that asked for the
// re-list about to start has waited.
func (w *Watcher) servePending() {
	w.trigMu.Lock()
	since := w.pending
	w.pending = time.Time{}
	w.trigMu.Unlock()
	if !since.IsZero() {
		w.m.eventToRelist.Observe(max(w.cfg.Now().Sub(since), 0).Seconds())
	}
}

// Refresh re-lists the swarm once. On error the last good view is kept,
// marked stale, and the error returned.
func (w *Watcher) Refresh(ctx context.Context) error {
	start := w.cfg.Now()
	snap, err := w.disc.Refresh(ctx)
	now := w.cfg.Now()
	w.m.refreshDuration.Observe(now.Sub(start).Seconds())
	if err != nil && ctx.Err() != nil {
		return err
	}
	defer func() {
		w.flush()
		w.m.relistToPublish.Observe(max(w.cfg.Now().Sub(now), 0).Seconds())
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.m.refreshes.WithLabelValues("error").Inc()
		if !w.status.Stale {
			w.log.Warn("docker API failed: keeping the last known state, marked stale", "err", err)
			w.setStatus(Status{Stale: true, Err: err.Error(), Since: now})
		} else {
			w.status.Err = err.Error()
		}
		w.update(now, false)
		return err
	}
	w.m.refreshes.WithLabelValues("ok").Inc()
	w.snap, w.lastOK = snap, now
	present := map[string]bool{}
	fresh := false
	w.moving = false
	for _, s := range snap.Services {
		if s.Running < s.Desired {
			w.moving = true
		}
		for _, t := range s.Tasks {
			present[t.ID] = true
			if t.Draining() {
				w.moving = true
			}
			if s.ProbePort > 0 && t.Address != "" && !t.Draining() && w.trackers[t.ID] == nil {
				w.trackers[t.ID] = &probeState{tr: probe.NewTracker(w.cfg.Thresholds)}
				fresh = true
			}
		}
	}
	for id := range w.trackers {
		if !present[id] {
			delete(w.trackers, id)
		}
	}
	if w.status.Stale {
		w.log.Info("docker API answers", "was", w.status.Err)
		w.setStatus(Status{Stale: false, Since: now})
	}
	w.update(now, true)
	if fresh {
		select {
		case w.probeNew <- struct{}{}:
		default:
		}
	}
	return nil
}

// inTransition reports whether the last snapshot had tasks on the move.
func (w *Watcher) inTransition() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moving
}

// probeSlots is how many probe batches one ProbeInterval holds: every task
// is probed once per interval, at its own offset (see jitter), so that
// 10,000 tasks are not probed all at once.
const probeSlots = 10

// probeLoop starts a batch of the tasks whose turn has come every tenth of
// the interval, and one of the new tasks when a re-list found some. Batches
// run side by side, sharing the prober's bound on probes in flight (first
// come, first served), so a batch held up by targets that never answer
// delays only its own tasks: the others keep their turns.
func (w *Watcher) probeLoop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(max(w.cfg.ProbeInterval/probeSlots, time.Millisecond))
	defer t.Stop()
	start := func(which probeWhich) {
		if b := w.collect(which); b != nil {
			wg.Go(func() { w.run(ctx, b) })
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			start(dueOnly)
		case <-w.probeNew:
			start(newOnly)
		}
	}
}

// probeState is one task's probe tracker and when its next probe is due.
type probeState struct {
	tr       *probe.Tracker
	inFlight bool // in a batch under way: no other batch takes it
	// url is the probe URL, built for the address, port and path it was
	// built from (urlOf): a batch reuses it.
	url              string
	urlAddr, urlPath string
	urlPort          int
	// history is the tracker's history as the view holds it (never
	// modified: views share it until the next result; nil: to copy).
	// Every batch rebuilds most services, a task's history changes once
	// an interval.
	history []probe.Record
	// due is when the next probe is due; zero until the first probe,
	// which comes at once (a new task should not wait for its turn).
	due time.Time
}

// urlOf returns the probe URL of a task at addr, built once per address,
// port and path.
func (ps *probeState) urlOf(addr string, port int, path string) string {
	if ps.url == "" || ps.urlAddr != addr || ps.urlPort != port || ps.urlPath != path {
		ps.url = "http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + path
		ps.urlAddr, ps.urlPort, ps.urlPath = addr, port, path
	}
	return ps.url
}

// jitter is a task's stable offset within the probe interval, in [0,
// interval): FNV-1a of its ID. It spreads the probes of tasks discovered
// together over the interval and keeps each task's turn across restarts.
func jitter(id string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return time.Duration(h % uint64(interval))
}

// nextDue is when a task probed at start, whose probe was due at due (zero:
// its first), is due again: its first probe is followed by one at its jitter
// within the next interval, then every interval on that phase, skipping the
// turns that have passed (a late round never makes a task probed twice in a
// row).
func nextDue(id string, due, start time.Time, interval time.Duration) time.Time {
	if due.IsZero() {
		return start.Add(max(jitter(id, interval), time.Millisecond))
	}
	next := due.Add(interval)
	if !next.After(start) {
		next = due.Add((start.Sub(due)/interval + 1) * interval)
	}
	return next
}

// The probe rounds: every task, the tasks never probed yet, or the tasks
// whose turn has come.
type probeWhich int

const (
	allTasks probeWhich = iota
	newOnly
	dueOnly
)

// Probe runs one probe round: every probe-able task, or with onlyNew the
// tasks not probed yet.
func (w *Watcher) Probe(ctx context.Context, onlyNew bool) {
	if onlyNew {
		w.probe(ctx, newOnly)
		return
	}
	w.probe(ctx, allTasks)
}

func (w *Watcher) probe(ctx context.Context, which probeWhich) {
	if b := w.collect(which); b != nil {
		w.run(ctx, b)
	}
}

// batch is a set of probes taken together.
type batch struct {
	start           time.Time
	ids, svcs, urls []string
	dues            []time.Time
}

// collect takes the tasks of a batch (marking them in flight), nil when
// there are none.
func (w *Watcher) collect(which probeWhich) *batch {
	b := &batch{start: w.cfg.Now()}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.snap.Services {
		if s.ProbePort == 0 {
			continue
		}
		for _, t := range s.Tasks {
			ps := w.trackers[t.ID]
			if ps == nil || ps.inFlight || t.Address == "" || t.Draining() {
				continue
			}
			switch {
			case which == newOnly && !ps.due.IsZero():
				continue
			case which == dueOnly && ps.due.After(b.start):
				continue
			}
			ps.inFlight = true
			b.ids = append(b.ids, t.ID)
			b.svcs = append(b.svcs, s.ID)
			b.dues = append(b.dues, ps.due)
			b.urls = append(b.urls, ps.urlOf(t.Address, s.ProbePort, s.ProbePath))
		}
	}
	if len(b.ids) == 0 {
		return nil
	}
	return b
}

// run probes a batch and records the results.
func (w *Watcher) run(ctx context.Context, b *batch) {
	results := w.checker.CheckAll(ctx, b.urls)
	if ctx.Err() != nil {
		return
	}
	// A probe's lateness runs from its turn to its start (r.At), which
	// includes its wait for a slot in the batch.
	for i, d := range b.dues {
		if !d.IsZero() {
			w.m.probeLateness.Observe(max(results[i].At.Sub(d), 0).Seconds())
		}
	}
	now := w.cfg.Now()
	w.m.roundDuration.Observe(now.Sub(b.start).Seconds())
	defer w.flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	byOutcome := map[probe.Outcome]int{}
	defer func() {
		for o, n := range byOutcome {
			w.m.probes.WithLabelValues(string(o)).Add(float64(n))
		}
	}()
	for i, r := range results {
		byOutcome[r.Outcome]++
		w.m.probeLatency.Observe(r.Latency.Seconds())
		ps := w.trackers[b.ids[i]]
		if ps == nil {
			continue // the task left while it was probed
		}
		ps.inFlight = false
		ps.due = nextDue(b.ids[i], b.dues[i], b.start, w.cfg.ProbeInterval)
		before := ps.tr.Health()
		ps.history = nil
		if after := ps.tr.Record(r); after != before {
			w.log.Info("health changed", "task", b.ids[i], "url", b.urls[i], "from", before, "to", after, "code", r.Code, "err", r.Err)
		}
		w.probed[b.svcs[i]] = true
	}
	w.update(now, false)
}

// setStatus records a staleness flip and queues it for subscribers. Caller
// holds mu.
func (w *Watcher) setStatus(s Status) {
	if s.Stale != w.status.Stale {
		w.allDirty = true // every task's health follows the status
	}
	w.status = s
	if s.Stale {
		w.m.stale.Set(1)
	} else {
		w.m.stale.Set(0)
	}
	st := s
	w.queue(Message{Status: &st})
}

// update rebuilds the services of the view that changed (in the snapshot,
// when relisted; by probes; or all when the status flipped), diffs those
// only, and queues the changes and then the view. Caller holds mu.
func (w *Watcher) update(now time.Time, relisted bool) {
	view := make([]Service, 0, len(w.snap.Services))
	idx := make(map[string]int, len(w.snap.Services))
	var updated []int
	for i := range w.snap.Services {
		s := &w.snap.Services[i]
		idx[s.ID] = len(view)
		if j, ok := w.viewIdx[s.ID]; ok && !w.allDirty && !w.probed[s.ID] && (!relisted || sameService(&w.view[j], s)) {
			view = append(view, w.view[j]) // shares its tasks: nothing changed
			continue
		}
		view = append(view, w.build(s))
		updated = append(updated, len(view)-1)
	}
	removed := len(view) != len(w.view)
	if !removed {
		for id := range w.viewIdx {
			if _, ok := idx[id]; !ok {
				removed = true
				break
			}
		}
	}
	clear(w.probed)
	w.allDirty = false
	if len(updated) == 0 && !removed {
		return // nothing changed: nothing to tell
	}
	changes := diff(w.view, view, updated, now)
	w.view, w.viewIdx = view, idx
	for i := range changes {
		w.m.changes.WithLabelValues(string(changes[i].Type)).Inc()
		w.queue(Message{Change: &changes[i]})
	}
	w.queue(Message{Services: view, Updated: updated})
	w.m.services.Set(float64(len(view)))
	w.m.tasks.Reset()
	for _, s := range view {
		var byHealth [6]int // one count per api.Health, in healthOrder
		for _, t := range s.Tasks {
			byHealth[healthIndex(t.Health)]++
		}
		for i, n := range byHealth {
			if n > 0 {
				w.m.tasks.WithLabelValues(s.Name, string(healthOrder[i])).Set(float64(n))
			}
		}
	}
}

// healthOrder lists the health values the tasks gauge counts.
var healthOrder = [6]api.Health{api.HealthStarting, api.HealthPassing, api.HealthWarning, api.HealthCritical, api.HealthDraining, api.HealthUnknown}

func healthIndex(h api.Health) int {
	for i, x := range healthOrder {
		if x == h {
			return i
		}
	}
	return len(healthOrder) - 1 // unknown
}

// sameService reports whether the view's service v was built from the
// same facts as the snapshot's s (its probes aside, which update tracks).
func sameService(v *Service, s *swarm.Service) bool {
	if !sameServiceFacts(&v.Service, s) || len(v.Tasks) != len(s.Tasks) {
		return false
	}
	for i := range s.Tasks {
		if v.Tasks[i].Task != s.Tasks[i] {
			return false
		}
	}
	return true
}

// sameServiceFacts compares every field of two swarm.Services but Tasks
// (TestSameServiceFactsSeesEveryField keeps it complete).
func sameServiceFacts(a, b *swarm.Service) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Mode == b.Mode && a.EndpointMode == b.EndpointMode &&
		a.Desired == b.Desired && a.Running == b.Running && a.ProbePort == b.ProbePort && a.ProbePath == b.ProbePath &&
		a.ProbeError == b.ProbeError && a.Logical == b.Logical && a.Tenant == b.Tenant && a.TenantError == b.TenantError &&
		maps.Equal(a.Labels, b.Labels)
}

// queue numbers m and puts it in the outbox. Caller holds mu.
func (w *Watcher) queue(m Message) {
	w.seq++
	w.outbox = append(w.outbox, fanout.Message[Message]{Seq: w.seq, Value: m})
}

// flush hands the outbox to the hub, in order, with mu released. Caller
// does not hold mu.
func (w *Watcher) flush() {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	out := w.outbox
	w.outbox = nil
	w.mu.Unlock()
	published := time.Now()
	for _, m := range out {
		m.Value.Published = published
		w.hub.Publish(m.Seq, m.Value)
	}
}

// build turns one service of the snapshot and its trackers into a service
// of the view, with a new Version. Caller holds mu.
func (w *Watcher) build(s *swarm.Service) Service {
	w.version++
	svc := Service{Service: *s, Tasks: make([]Task, 0, len(s.Tasks)), Version: w.version}
	svc.Service.Tasks = nil
	for _, t := range s.Tasks {
		task := Task{Task: t, Port: s.ProbePort}
		var tr *probe.Tracker
		ps := w.trackers[t.ID]
		if ps != nil {
			tr = ps.tr
		}
		switch {
		case t.Draining():
			task.Health = api.HealthDraining
		case s.ProbePort == 0 || t.Address == "":
			task.Health = api.HealthUnknown
		case tr == nil:
			task.Health = api.HealthStarting
		default:
			task.Health = tr.Health()
		}
		if tr != nil {
			task.Last, _ = tr.Last()
			task.ConsecutiveFailures = tr.ConsecutiveFailures()
			if ps.history == nil {
				ps.history = tr.History()
			}
			task.History = ps.history
		}
		if w.status.Stale {
			task.Health = api.HealthUnknown
		}
		svc.Tasks = append(svc.Tasks, task)
	}
	return svc
}

// Healthy reports whether the Docker API answered the last re-list and did
// so within StaleAfter.
func (w *Watcher) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.status.Stale && w.cfg.Now().Sub(w.lastOK) <= w.cfg.StaleAfter
}
