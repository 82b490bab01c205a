package watch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

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
	// Debounce coalesces a burst of engine events into one re-list.
	Debounce time.Duration
	// ProbeInterval is the period of probe rounds.
	ProbeInterval time.Duration
	// RetryMin is the first wait after a failed re-list; it doubles up to
	// PollInterval while the engine keeps failing.
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
	// Metrics (nil: none).
	Metrics *Metrics
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.PollInterval <= 0 || c.ProbeInterval <= 0 || c.Debounce < 0 || c.RetryMin <= 0 {
		return errors.New("intervals must be positive")
	}
	if c.StaleAfter < c.PollInterval {
		return errors.New("stale-after must be at least the poll interval")
	}
	return c.Thresholds.Validate()
}

// Message is what a subscriber receives.
type Message struct {
	Kind     string    // "change", "status" or "services"
	Seq      uint64    // for changes: increasing from 1
	Change   *Change   // Kind "change"
	Status   *Status   // Kind "status": staleness flipped
	Services []Service // Kind "services": the whole view after each update (opt-in)
}

// Message kinds.
const (
	KindChange   = "change"
	KindStatus   = "status"
	KindServices = "services"
)

// Watcher keeps the swarm view current and fans changes out.
type Watcher struct {
	cfg     Config
	disc    Discoverer
	checker Checker
	events  EventSource
	log     *slog.Logger
	m       *Metrics

	trig     chan struct{}
	probeNew chan struct{}

	mu       sync.Mutex
	snap     swarm.Snapshot
	trackers map[string]*probe.Tracker // by task ID
	status   Status
	lastOK   time.Time
	view     []Service // published; never modified after publication
	moving   bool      // tasks in transition in the last snapshot
	seq      uint64
	subs     map[*Subscription]struct{}
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
	w := &Watcher{
		cfg: cfg, disc: disc, checker: checker, events: events, log: log, m: cfg.Metrics,
		trig:     make(chan struct{}, 1),
		probeNew: make(chan struct{}, 1),
		trackers: map[string]*probe.Tracker{},
		subs:     map[*Subscription]struct{}{},
		view:     []Service{},
	}
	w.status = Status{Stale: true, Error: "no answer from the Docker API yet", Since: formatTime(cfg.Now())}
	if w.m != nil {
		w.m.stale.Set(1)
	}
	return w, nil
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

// Trigger asks for a re-list soon (after the debounce).
func (w *Watcher) Trigger(reason string) {
	if w.m != nil {
		w.m.triggers.Inc()
	}
	select {
	case w.trig <- struct{}{}:
	default: // one is pending already
	}
}

func (w *Watcher) refreshLoop(ctx context.Context) {
	poll := time.NewTimer(0) // first re-list at once
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	armed := false
	retry := w.cfg.RetryMin
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.trig:
			if !armed {
				armed = true
				debounce.Reset(w.cfg.Debounce)
			}
			continue
		case <-debounce.C:
			armed = false
		case <-poll.C:
		}
		next := w.cfg.PollInterval
		if err := w.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			next = retry
			retry = min(2*retry, w.cfg.PollInterval)
		} else {
			retry = w.cfg.RetryMin
			if w.inTransition() && w.cfg.TransitionPoll > 0 {
				next = min(next, w.cfg.TransitionPoll)
			}
		}
		poll.Reset(next)
	}
}

func (w *Watcher) probeLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Probe(ctx, false)
		case <-w.probeNew:
			w.Probe(ctx, true)
		}
	}
}

// Refresh re-lists the swarm once. On error the last good view is kept,
// marked stale, and the error returned.
func (w *Watcher) Refresh(ctx context.Context) error {
	start := w.cfg.Now()
	snap, err := w.disc.Refresh(ctx)
	now := w.cfg.Now()
	if w.m != nil {
		w.m.refreshDuration.Observe(now.Sub(start).Seconds())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if w.m != nil {
			w.m.refreshes.WithLabelValues("error").Inc()
		}
		if !w.status.Stale {
			w.log.Warn("docker API failed: keeping the last known state, marked stale", "err", err)
			w.setStatus(Status{Stale: true, Error: err.Error(), Since: formatTime(now)})
		} else {
			w.status.Error = err.Error()
		}
		w.update(now)
		return err
	}
	if w.m != nil {
		w.m.refreshes.WithLabelValues("ok").Inc()
	}
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
				w.trackers[t.ID] = probe.NewTracker(w.cfg.Thresholds)
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
		w.log.Info("docker API answers", "was", w.status.Error)
		w.setStatus(Status{Stale: false, Since: formatTime(now)})
	}
	w.update(now)
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

// Probe runs one probe round: every probe-able task, or with onlyNew the
// tasks not probed yet.
func (w *Watcher) Probe(ctx context.Context, onlyNew bool) {
	var ids, urls []string
	w.mu.Lock()
	for _, s := range w.snap.Services {
		if s.ProbePort == 0 {
			continue
		}
		for _, t := range s.Tasks {
			tr := w.trackers[t.ID]
			if tr == nil || t.Address == "" || t.Draining() {
				continue
			}
			if _, probed := tr.Last(); onlyNew && probed {
				continue
			}
			ids = append(ids, t.ID)
			urls = append(urls, "http://"+net.JoinHostPort(t.Address, strconv.Itoa(s.ProbePort))+s.ProbePath)
		}
	}
	w.mu.Unlock()
	if len(urls) == 0 {
		return
	}
	start := w.cfg.Now()
	results := w.checker.CheckAll(ctx, urls)
	if ctx.Err() != nil {
		return
	}
	now := w.cfg.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m != nil {
		w.m.roundDuration.Observe(now.Sub(start).Seconds())
	}
	for i, r := range results {
		if w.m != nil {
			w.m.probes.WithLabelValues(string(r.Outcome)).Inc()
			w.m.probeLatency.Observe(r.Latency.Seconds())
		}
		if tr := w.trackers[ids[i]]; tr != nil {
			before := tr.Health()
			if after := tr.Record(r); after != before {
				w.log.Info("health changed", "task", ids[i], "url", urls[i], "from", before, "to", after, "code", r.Code, "err", r.Err)
			}
		}
	}
	w.update(now)
}

// setStatus records a staleness flip and tells subscribers. Caller holds mu.
func (w *Watcher) setStatus(s Status) {
	w.status = s
	if w.m != nil {
		if s.Stale {
			w.m.stale.Set(1)
		} else {
			w.m.stale.Set(0)
		}
	}
	st := s
	w.publish(Message{Kind: KindStatus, Status: &st})
}

// update rebuilds the view, publishes the changes and then the view.
// Caller holds mu.
func (w *Watcher) update(now time.Time) {
	view := w.build()
	changes := Diff(w.view, view, formatTime(now))
	w.view = view
	for i := range changes {
		w.seq++
		if w.m != nil {
			w.m.changes.WithLabelValues(changes[i].Type).Inc()
		}
		w.publish(Message{Kind: KindChange, Seq: w.seq, Change: &changes[i]})
	}
	w.publish(Message{Kind: KindServices, Services: view})
	if w.m != nil {
		w.m.services.Set(float64(len(view)))
		w.m.tasks.Reset()
		for _, s := range view {
			for _, t := range s.Tasks {
				w.m.tasks.WithLabelValues(s.Name, t.Health).Inc()
			}
		}
	}
}

// build turns the snapshot and trackers into the served view. Caller holds mu.
func (w *Watcher) build() []Service {
	view := make([]Service, 0, len(w.snap.Services))
	for _, s := range w.snap.Services {
		svc := Service{
			ID: s.ID, Name: s.Name,
			Replicas:     Replicas{Desired: s.Desired, Running: s.Running},
			Tasks:        make([]Task, 0, len(s.Tasks)),
			Mode:         s.Mode,
			EndpointMode: s.EndpointMode,
			ProbePort:    s.ProbePort,
			ProbePath:    s.ProbePath,
			ProbeError:   s.ProbeError,
			Labels:       s.Labels,
		}
		for _, t := range s.Tasks {
			task := Task{
				ID: t.ID, Slot: t.Slot, Node: t.Node, State: t.State, DesiredState: t.DesiredState,
				Address: t.Address, Port: s.ProbePort, Network: t.Network, AddressError: t.AddressError,
			}
			tr := w.trackers[t.ID]
			switch {
			case t.Draining():
				task.Health = HealthDraining
			case s.ProbePort == 0 || t.Address == "":
				task.Health = HealthUnknown
			case tr == nil:
				task.Health = string(probe.Starting)
			default:
				task.Health = string(tr.Health())
			}
			if tr != nil {
				if last, ok := tr.Last(); ok {
					task.LastCheck = formatTime(last.At)
					task.LatencyMs = ms(last.Latency)
					task.LastError = last.Err
				}
				task.ConsecutiveFailures = tr.ConsecutiveFailures()
				for _, r := range tr.History() {
					task.History = append(task.History, Check{
						At: formatTime(r.At), Outcome: string(r.Outcome), Code: r.Code, LatencyMs: ms(r.Latency), Error: r.Err,
					})
				}
			}
			if w.status.Stale {
				task.Health = HealthUnknown
			}
			svc.Tasks = append(svc.Tasks, task)
		}
		view = append(view, svc)
	}
	return view
}

// Services returns the current view. The slice is shared and must not be
// modified.
func (w *Watcher) Services() []Service {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view
}

// Status returns whether the view is stale.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Healthy reports whether the Docker API answered the last re-list and did
// so within StaleAfter.
func (w *Watcher) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.status.Stale && w.cfg.Now().Sub(w.lastOK) <= w.cfg.StaleAfter
}
