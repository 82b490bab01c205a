//go:build e2e

package e2e

// Issue 15's convergence rows, measured the way a new user would: scale
// goblog_quotes-service up and down with `docker service scale` while three
// observers run at once, each stamping what it sees with this machine's
// clock: the engine (its API polled every 20 ms: when does it show each new
// task running, each removed task no longer desired), the watcher's
// /api/services (polled every 20 ms) and its event stream. The deltas are
// printed; only correctness is asserted (the watcher agrees with the engine
// within a generous bound), never the 500 ms goal.
//
// Run it quiet, and beside a bounded busy loop on the cores:
//
//	for i in 1 2; do timeout 90 sh -c 'while :; do :; done' & done

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/goblog/goblog/internal/sse"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// convergeBound is how long the watcher may take to agree with the engine
// before the test fails: a correctness bound, twenty times the goal.
const convergeBound = 10 * time.Second

// seen is, per task ID, the first time an observer saw a fact.
type seen struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newSeen() *seen { return &seen{at: map[string]time.Time{}} }

func (s *seen) mark(id string, at time.Time) {
	s.mu.Lock()
	if _, ok := s.at[id]; !ok {
		s.at[id] = at
	}
	s.mu.Unlock()
}

func (s *seen) get(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.at[id]
	return at, ok
}

// convergence holds what the three observers saw of one service.
type convergence struct {
	// The engine: running (desired and actual), and no longer desired
	// running (or gone) after having been running.
	engineRunning, engineLeaving *seen
	// The watcher's /api/services: listed running and desired running;
	// draining or gone after having been listed.
	apiListed, apiLeaving *seen
	// The watcher's event stream: task-added; health-changed to draining
	// or task-removed.
	streamAdded, streamLeaving *seen

	mu          sync.Mutex
	engineTasks map[string]bool // running tasks in the engine's last answer
	pollErrs    []string
	// The observers' round trips: a fact is stamped at the middle of the
	// poll that first showed it, so each stamp is good to half of one.
	engineRTT, watcherRTT rtt
}

// rtt sums the round trips of one observer.
type rtt struct {
	n     int
	total time.Duration
	worst time.Duration
}

func (r *rtt) add(d time.Duration) {
	r.n++
	r.total += d
	r.worst = max(r.worst, d)
}

func (r rtt) String() string {
	if r.n == 0 {
		return "-"
	}
	return fmt.Sprintf("mean %d ms, max %d ms over %d polls", (r.total / time.Duration(r.n)).Milliseconds(), r.worst.Milliseconds(), r.n)
}

// stamp is the middle of a poll that started at t0 and answered now; it
// records the round trip in r.
func (c *convergence) stamp(r *rtt, t0 time.Time) time.Time {
	now := time.Now()
	c.mu.Lock()
	r.add(now.Sub(t0))
	c.mu.Unlock()
	return t0.Add(now.Sub(t0) / 2)
}

func newConvergence() *convergence {
	return &convergence{
		engineRunning: newSeen(), engineLeaving: newSeen(), apiListed: newSeen(), apiLeaving: newSeen(),
		streamAdded: newSeen(), streamLeaving: newSeen(), engineTasks: map[string]bool{},
	}
}

func (c *convergence) fail(err error) {
	c.mu.Lock()
	if len(c.pollErrs) < 20 {
		c.pollErrs = append(c.pollErrs, err.Error())
	}
	c.mu.Unlock()
}

// pollEngine lists svc's tasks through the Engine API every 20 ms until ctx
// ends.
func (c *convergence) pollEngine(ctx context.Context, cli *client.Client, svc string) {
	f := filters.NewArgs(filters.Arg("service", svc))
	was := map[string]bool{}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		tasks, err := cli.TaskList(cctx, dswarm.TaskListOptions{Filters: f})
		cancel()
		now := c.stamp(&c.engineRTT, t0)
		if err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("engine: %w", err))
			}
		} else {
			running := map[string]bool{}
			for _, t := range tasks {
				if t.DesiredState == dswarm.TaskStateRunning && t.Status.State == dswarm.TaskStateRunning {
					running[t.ID] = true
					c.engineRunning.mark(t.ID, now)
				}
			}
			for id := range was {
				if !running[id] {
					c.engineLeaving.mark(id, now)
				}
			}
			was = running
			c.mu.Lock()
			c.engineTasks = running
			c.mu.Unlock()
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// pollWatcher reads the watcher's /api/services?service= every 20 ms until
// ctx ends.
func (c *convergence) pollWatcher(ctx context.Context, svc string) {
	hc := &http.Client{Timeout: 5 * time.Second}
	u := WatcherURL + "/api/services?service=" + svc
	was := map[string]bool{}
	for ctx.Err() == nil {
		t0 := time.Now()
		code, body, err := CallErr(hc, http.MethodGet, u)
		now := c.stamp(&c.watcherRTT, t0)
		var list []api.Service
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%s: %d", u, code)
		}
		if err == nil {
			err = json.Unmarshal(body, &list)
		}
		if err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("watcher: %w", err))
			}
			sleepCtx(ctx, 20*time.Millisecond)
			continue
		}
		running := map[string]bool{}
		for _, s := range list {
			for _, t := range s.Tasks {
				if t.DesiredState == "running" && t.State == "running" {
					running[t.ID] = true
					c.apiListed.mark(t.ID, now)
				}
			}
		}
		for id := range was {
			if !running[id] {
				c.apiLeaving.mark(id, now)
			}
		}
		was = running
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// followStream reads the watcher's /api/events?service= until ctx ends; it
// returns once the stream's opening snapshot has arrived.
func (c *convergence) followStream(ctx context.Context, t *testing.T, svc string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, WatcherURL+"/api/events?service="+svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET /api/events: %s", resp.Status)
	}
	r := sse.NewReader(resp.Body, 16<<20)
	ev, err := r.Next(nil)
	if err != nil || ev.Name != api.EventSnapshot {
		resp.Body.Close()
		t.Fatalf("event stream opened with %q: %v", ev.Name, err)
	}
	go func() {
		defer resp.Body.Close()
		for {
			ev, err := r.Next(nil)
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					c.fail(fmt.Errorf("event stream: %w", err))
				}
				return
			}
			var ch api.Change
			switch api.EventType(ev.Name) {
			case api.TaskAdded, api.TaskRemoved, api.HealthChanged:
			default:
				continue
			}
			if err := json.Unmarshal(ev.Data, &ch); err != nil || ch.Task == nil {
				c.fail(fmt.Errorf("event %s %q: %v", ev.Name, ev.Data, err))
				continue
			}
			switch {
			case ch.Type == api.TaskAdded && ch.Task.DesiredState == "running":
				c.streamAdded.mark(ch.Task.ID, now)
			case ch.Type == api.TaskRemoved, ch.Task.Health == api.HealthDraining:
				c.streamLeaving.mark(ch.Task.ID, now)
			}
		}
	}()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// replicas reads svc's replica count from the engine.
func replicas(t *testing.T, svc string) int {
	t.Helper()
	n, err := strconv.Atoi(Docker(t, "service", "inspect", "--format", "{{.Spec.Mode.Replicated.Replicas}}", svc))
	if err != nil {
		t.Fatalf("replicas of %s: %v", svc, err)
	}
	return n
}

// lags waits until the watcher has seen (in want) every task the engine has
// (in engine), within convergeBound of the engine, and returns the per-task
// deltas, sorted.
func lags(t *testing.T, what string, ids []string, engine, want *seen) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, id := range ids {
		e, ok := engine.get(id)
		if !ok {
			t.Fatalf("%s: the engine never showed task %s", what, id)
		}
		deadline := e.Add(convergeBound)
		for {
			w, ok := want.get(id)
			if ok {
				out = append(out, w.Sub(e))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: task %s not seen by the watcher %s after the engine showed it", what, id, convergeBound)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	slices.Sort(out)
	return out
}

func fmtLags(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return strings.Join(parts, ",") + " ms (max " + strconv.FormatInt(ds[len(ds)-1].Milliseconds(), 10) + " ms)"
}

// stageHistograms are the watcher's convergence stages in /metrics, in
// order from an engine event to a client.
var stageHistograms = []string{
	"swarmwatcher_event_to_relist_seconds",
	"swarmwatcher_refresh_duration_seconds",
	"swarmwatcher_relist_to_publish_seconds",
	"swarmwatcher_publish_to_flush_seconds",
}

// stageSums reads each stage histogram's _sum and _count from the watcher's
// /metrics (absent ones are left out: an older watcher).
func stageSums(t *testing.T) map[string][2]float64 {
	t.Helper()
	code, body, err := CallErr(NewClient(), http.MethodGet, WatcherURL+"/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	out := map[string][2]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		for _, h := range stageHistograms {
			e := out[h]
			switch f[0] {
			case h + "_sum":
				e[0] = v
			case h + "_count":
				e[1] = v
			default:
				continue
			}
			out[h] = e
		}
	}
	return out
}

// stageMeans says, per stage, how many observations came between two reads
// of stageSums and their mean.
func stageMeans(before, after map[string][2]float64) string {
	var parts []string
	for _, h := range stageHistograms {
		a, ok := after[h]
		if !ok {
			continue
		}
		b := before[h]
		n := a[1] - b[1]
		name := strings.TrimSuffix(strings.TrimPrefix(h, "swarmwatcher_"), "_seconds")
		if n <= 0 {
			parts = append(parts, name+" -")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.1f ms (n=%d)", name, (a[0]-b[0])/n*1000, int(n)))
	}
	return strings.Join(parts, "; ")
}

// TestWatcherConvergenceFigures prints issue 15's two convergence rows:
// engine shows a task running -> the watcher lists it (API and stream), and
// engine shows a lower replica count -> the removed tasks are draining or
// gone in the watcher (API and stream).
func TestWatcherConvergenceFigures(t *testing.T) {
	const name = "quotes-service"
	const up = 4
	svc := Service(name)
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	orig := replicas(t, svc)
	if orig >= up {
		t.Fatalf("%s runs %d replicas; the test scales from fewer than %d", svc, orig, up)
	}
	// Start from a settled service: the engine and the watcher agree.
	Scale(t, name, orig)
	t.Cleanup(func() { Scale(t, name, orig) })
	WaitFor(t, time.Minute, svc+": the watcher lists exactly the engine's running tasks", func() (bool, string) {
		all, err := swServices(WatcherURL)
		if err != nil {
			return false, err.Error()
		}
		return len(all[svc].Tasks) == orig && len(swRunning(all[svc])) == orig, fmt.Sprintf("%d listed", len(all[svc].Tasks))
	})

	c := newConvergence()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c.followStream(ctx, t, svc)
	wg.Go(func() { c.pollEngine(ctx, cli, svc) })
	wg.Go(func() { c.pollWatcher(ctx, svc) })
	defer func() { cancel(); wg.Wait() }()
	time.Sleep(300 * time.Millisecond) // every observer has a first answer
	stages0 := stageSums(t)

	c.mu.Lock()
	before := maps.Clone(c.engineTasks)
	c.mu.Unlock()

	// Up: the new tasks.
	Docker(t, "service", "scale", "--detach", svc+"="+strconv.Itoa(up))
	var added []string
	WaitFor(t, 3*time.Minute, svc+": the engine shows the new tasks running", func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		added = added[:0]
		for id := range c.engineTasks {
			if !before[id] {
				added = append(added, id)
			}
		}
		return len(added) == up-orig, fmt.Sprintf("%d new running", len(added))
	})
	upAPI := lags(t, "scale up, /api/services", added, c.engineRunning, c.apiListed)
	upStream := lags(t, "scale up, event stream", added, c.engineRunning, c.streamAdded)
	// The watcher settles (probes, no flapping) before the way down.
	swWaitPassing(t, WatcherURL, svc, up)

	// Down: the tasks the engine no longer wants.
	c.mu.Lock()
	atTop := maps.Clone(c.engineTasks)
	c.mu.Unlock()
	Docker(t, "service", "scale", "--detach", svc+"="+strconv.Itoa(orig))
	var leaving []string
	WaitFor(t, 3*time.Minute, svc+": the engine shows the lower count", func() (bool, string) {
		leaving = leaving[:0]
		for id := range atTop {
			if _, ok := c.engineLeaving.get(id); ok {
				leaving = append(leaving, id)
			}
		}
		return len(leaving) == up-orig, fmt.Sprintf("%d of %d leaving", len(leaving), up-orig)
	})
	downAPI := lags(t, "scale down, /api/services", leaving, c.engineLeaving, c.apiLeaving)
	downStream := lags(t, "scale down, event stream", leaving, c.engineLeaving, c.streamLeaving)

	stages1 := stageSums(t)
	cancel()
	wg.Wait()
	c.mu.Lock()
	errs := c.pollErrs
	engineRTT, watcherRTT := c.engineRTT, c.watcherRTT
	c.mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("observers failed: %v", errors.New(strings.Join(errs, "; ")))
	}
	t.Logf("figure: engine shows a task running -> watcher lists it (%s %d->%d): /api/services %s; event stream %s",
		svc, orig, up, fmtLags(upAPI), fmtLags(upStream))
	t.Logf("figure: engine shows a lower replica count -> removed tasks draining/gone (%s %d->%d): /api/services %s; event stream %s",
		svc, up, orig, fmtLags(downAPI), fmtLags(downStream))
	t.Logf("figure: the watcher's stages over the test (/metrics, mean per observation; the test's own polls and stream included): %s",
		stageMeans(stages0, stages1))
	t.Logf("figure: (observers poll every 20 ms and stamp a fact at the middle of the poll that first showed it; the stream's events at arrival. Engine API polls: %s; /api/services polls: %s)",
		engineRTT, watcherRTT)
}
