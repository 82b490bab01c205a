//go:build e2e

package e2e

// The swarmwatcher end to end (issue 4): against the deployed stack, the
// watcher's tasks and IPs match the engine's, scaling shows up in its API and
// event stream (convergence printed, not asserted), an unhealthy replica is
// seen critical before swarm replaces it, a watcher cut off from the engine
// serves its last state marked stale and recovers, and the page renders and
// updates live in a real browser (Debian's chromium).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// The watcher's wire shapes come from its API package, never mirrored here.
type (
	swTask    = api.Task
	swService = api.Service
	swChange  = api.Change
)

// swServices reads /api/services of the watcher at base.
func swServices(base string) (map[string]swService, error) {
	code, body, err := CallErr(NewClient(), http.MethodGet, base+"/api/services")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/api/services: %d %s", code, body)
	}
	var list []swService
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("/api/services: %w", err)
	}
	out := map[string]swService{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out, nil
}

// swRunning returns the IDs of svc's tasks the watcher lists as running and
// desired running.
func swRunning(s swService) map[string]swTask {
	out := map[string]swTask{}
	for _, t := range s.Tasks {
		if t.DesiredState == "running" {
			out[t.ID] = t
		}
	}
	return out
}

// swEvent is one server-sent event and when it arrived.
type swEvent struct {
	ID, Event, Data string
	At              time.Time
}

// swSubscribe follows base's /api/events until the test ends.
func swSubscribe(t *testing.T, base string) <-chan swEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/events: %v", err)
	}
	ch := make(chan swEvent, 4096)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		defer resp.Body.Close()
		r := bufio.NewReaderSize(resp.Body, 1<<20)
		var ev swEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.Event != "" {
					ev.At = time.Now()
					select {
					case ch <- ev:
					default: // the test stopped reading; never block the stream
					}
				}
				ev = swEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

// swWaitPassing waits until the watcher lists n running tasks of svc, all passing.
func swWaitPassing(t *testing.T, base, svc string, n int) time.Duration {
	t.Helper()
	return WaitFor(t, 2*time.Minute, fmt.Sprintf("%s: %d passing tasks in the watcher", svc, n), func() (bool, string) {
		all, err := swServices(base)
		if err != nil {
			return false, err.Error()
		}
		run := swRunning(all[svc])
		passing := 0
		var hs []string
		for _, t := range run {
			hs = append(hs, t.Address+"="+string(t.Health))
			if t.Health == "passing" {
				passing++
			}
		}
		return len(run) == n && passing == n, strings.Join(hs, " ")
	})
}

func TestWatcherListsEveryTaskWithTheEnginesIPs(t *testing.T) {
	KeepReplicas(t, "accountservice", 2)
	swWaitPassing(t, WatcherURL, Service("accountservice"), 2)

	engine := RunningTasks(t, "accountservice")
	all, err := swServices(WatcherURL)
	if err != nil {
		t.Fatal(err)
	}
	acc := all[Service("accountservice")]
	if acc.Replicas.Desired != 2 || acc.Replicas.Running != 2 {
		t.Errorf("replicas %+v, want 2/2", acc.Replicas)
	}
	watched := swRunning(acc)
	if len(watched) != len(engine) {
		t.Fatalf("watcher lists %d tasks, engine %d", len(watched), len(engine))
	}
	for _, e := range engine {
		w, ok := watched[e.ID]
		if !ok {
			t.Errorf("engine task %s missing in the watcher", e.ID)
			continue
		}
		if w.Address != e.IP || w.Port != 6767 || w.Slot != e.Slot || w.Health != "passing" {
			t.Errorf("task %s: watcher %s:%d slot %d %s, engine %s slot %d", e.ID, w.Address, w.Port, w.Slot, w.Health, e.IP, e.Slot)
		}
	}
	for _, name := range []string{"edge", "quotes-service", "swarmwatcher"} {
		s, ok := all[Service(name)]
		if !ok || len(s.Tasks) == 0 {
			t.Errorf("service %s missing or without tasks: %+v", name, s)
		}
	}
	// Prometheus SD carries the same targets.
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if code := Call(t, NewClient(), http.MethodGet, WatcherURL+"/api/sd", &groups); code != 200 {
		t.Fatalf("/api/sd: %d", code)
	}
	sdTargets := map[string]bool{}
	for _, g := range groups {
		if g.Labels["__meta_swarmwatcher_service"] == Service("accountservice") && g.Labels["__meta_swarmwatcher_desired_state"] == "running" {
			sdTargets[g.Targets[0]] = true
		}
	}
	for _, e := range engine {
		if !sdTargets[e.IP+":6767"] {
			t.Errorf("/api/sd lacks %s:6767 (has %v)", e.IP, sdTargets)
		}
	}
	if code, _, _ := CallErr(NewClient(), http.MethodGet, WatcherURL+"/health"); code != 200 {
		t.Errorf("/health = %d", code)
	}
}

// engineTimes returns, per task ID, the engine's timestamp of the task's
// latest state change and that state.
func engineTimes(t *testing.T, ids []string) map[string]struct {
	State string
	At    time.Time
} {
	t.Helper()
	out := map[string]struct {
		State string
		At    time.Time
	}{}
	if len(ids) == 0 {
		return out
	}
	raw := Docker(t, append([]string{"inspect", "--type", "task", "--format", "{{.ID}} {{.Status.State}} {{.Status.Timestamp.Format \"2006-01-02T15:04:05.999999999Z07:00\"}}"}, ids...)...)
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[2])
		if err != nil {
			t.Fatalf("task timestamp %q: %v", f[2], err)
		}
		out[f[0]] = struct {
			State string
			At    time.Time
		}{f[1], at}
	}
	return out
}

// watchDies follows the engine's container die events (the daemon keeps too
// few past events to ask afterwards) and returns a func that reports, per
// swarm task ID, when its container died, by the engine's clock. The
// subscription is live when watchDies returns.
func watchDies(t *testing.T) func() map[string]time.Time {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The subscription is made asynchronously; replaying from a second ago makes sure a
	// container that dies right after the caller's next step is not missed.
	msgs, errs := cli.Events(ctx, events.ListOptions{
		Since: strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", "die")),
	})
	var mu sync.Mutex
	dies := map[string]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				if id := m.Actor.Attributes["com.docker.swarm.task.id"]; id != "" {
					mu.Lock()
					dies[id] = time.Unix(0, m.TimeNano)
					mu.Unlock()
				}
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; _ = cli.Close() })
	return func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		c := make(map[string]time.Time, len(dies))
		for k, v := range dies {
			c[k] = v
		}
		return c
	}
}

func TestWatcherConvergesAfterScale(t *testing.T) {
	svc := Service("accountservice")
	swWaitPassing(t, WatcherURL, svc, 1)
	// A task an earlier test scaled away may still be stopping; its removal
	// must not be taken for one of this test's.
	WaitFor(t, time.Minute, svc+": only the one running task listed", func() (bool, string) {
		all, err := swServices(WatcherURL)
		if err != nil {
			return false, err.Error()
		}
		return len(all[svc].Tasks) == 1, fmt.Sprintf("%d tasks listed", len(all[svc].Tasks))
	})
	events := swSubscribe(t, WatcherURL)
	t.Cleanup(func() { Scale(t, "accountservice", 1) })

	added := map[string]time.Time{}    // task ID -> task-added arrival
	removed := map[string]time.Time{}  // task ID -> task-removed arrival
	draining := map[string]time.Time{} // task ID -> health-changed to draining arrival
	collect := func(until func() bool, timeout time.Duration) {
		deadline := time.After(timeout)
		for !until() {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("event stream ended")
				}
				if ev.Event != "task-added" && ev.Event != "task-removed" && ev.Event != "health-changed" {
					continue
				}
				var c swChange
				if err := json.Unmarshal([]byte(ev.Data), &c); err != nil || c.Task == nil {
					t.Fatalf("bad %s event %q: %v", ev.Event, ev.Data, err)
				}
				if c.Service != svc {
					continue
				}
				switch {
				case ev.Event == "task-added":
					added[c.Task.ID] = ev.At
				case ev.Event == "task-removed":
					removed[c.Task.ID] = ev.At
				case c.Task.Health == "draining":
					draining[c.Task.ID] = ev.At
				}
			case <-deadline:
				t.Fatalf("events not seen within %s: added %v removed %v", timeout, added, removed)
			}
		}
	}

	start := time.Now()
	Docker(t, "service", "scale", "--detach", svc+"=3")
	collect(func() bool { return len(added) >= 2 }, 3*time.Minute)
	upSeen := time.Since(start)
	var ids []string
	for id := range added {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	times := engineTimes(t, ids)
	var lags []string
	for _, id := range ids {
		lag := added[id].Sub(times[id].At)
		lags = append(lags, fmt.Sprintf("%s %s", id[:12], lag.Round(time.Millisecond)))
	}
	t.Logf("figure: scale 1->3: both new tasks in the event stream %s after `docker service scale`; lag after the engine marked each running: %s",
		upSeen.Round(time.Millisecond), strings.Join(lags, ", "))
	WaitFor(t, time.Minute, "watcher lists 3 running", func() (bool, string) {
		all, err := swServices(WatcherURL)
		if err != nil {
			return false, err.Error()
		}
		return len(swRunning(all[svc])) == 3, fmt.Sprint(len(swRunning(all[svc])))
	})

	// Scale down: two of the three running tasks leave. Only removals of
	// those three count.
	before := RunningTasks(t, "accountservice")
	wasRunning := map[string]bool{}
	for _, b := range before {
		wasRunning[b.ID] = true
	}
	clear(removed)
	clear(draining)
	removedOfBefore := func() []string {
		var out []string
		for id := range removed {
			if wasRunning[id] {
				out = append(out, id)
			}
		}
		return out
	}
	diesSoFar := watchDies(t)
	start = time.Now()
	Docker(t, "service", "scale", "--detach", svc+"=1")
	collect(func() bool { return len(removedOfBefore()) >= 2 }, 3*time.Minute)
	downSeen := time.Since(start)
	ids = removedOfBefore()
	sort.Strings(ids)
	// Scaled-down tasks are deleted from the engine once stopped; their
	// containers' die events (labelled with the task ID) say when they stopped.
	var dies map[string]time.Time
	WaitFor(t, 30*time.Second, "die events of the removed tasks' containers", func() (bool, string) {
		dies = diesSoFar()
		n := 0
		for _, id := range ids {
			if _, ok := dies[id]; ok {
				n++
			}
		}
		return n == len(ids), fmt.Sprintf("%d of %d", n, len(ids))
	})
	lags = lags[:0]
	for _, id := range ids {
		d := "never draining"
		if at, ok := draining[id]; ok {
			d = "draining " + at.Sub(start).Round(time.Millisecond).String() + " after the scale"
		}
		died, ok := dies[id]
		if !ok {
			t.Errorf("no die event for task %s's container", id)
			continue
		}
		lag := removed[id].Sub(died)
		lags = append(lags, fmt.Sprintf("%s %s, removed %s after its container died", id[:12], d, lag.Round(time.Millisecond)))
		if lag < 0 {
			t.Errorf("task %s reported removed %s before its container died", id, -lag)
		}
	}
	t.Logf("figure: scale 3->1: both tasks gone from the event stream %s after `docker service scale`; %s",
		downSeen.Round(time.Millisecond), strings.Join(lags, "; "))
	for _, id := range ids {
		if _, ok := draining[id]; !ok {
			t.Errorf("task %s left without being reported draining while it stopped", id)
		}
	}
	kept := 0
	for _, b := range before {
		if _, gone := removed[b.ID]; !gone {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("%d of the 3 tasks kept, want 1", kept)
	}
	swWaitPassing(t, WatcherURL, svc, 1)
}

func TestWatcherSeesAnUnhealthyReplicaCriticalBeforeSwarmReplacesIt(t *testing.T) {
	svc := Service("accountservice")
	KeepReplicas(t, "accountservice", 3)
	swWaitPassing(t, WatcherURL, svc, 3)
	events := swSubscribe(t, WatcherURL)

	var flipped struct {
		ServedBy string `json:"servedBy"`
	}
	if code := Call(t, NewClient(), http.MethodPut, EdgeURL+"/testability/healthy/false", &flipped); code != 200 || flipped.ServedBy == "" {
		t.Fatalf("PUT /testability/healthy/false: %d %+v", code, flipped)
	}
	flippedAt := time.Now()
	var victim string
	for _, task := range RunningTasks(t, "accountservice") {
		if task.IP == flipped.ServedBy {
			victim = task.ID
		}
	}
	if victim == "" {
		t.Fatalf("no running task has the address %s", flipped.ServedBy)
	}
	var sequence []string
	var criticalAfter time.Duration
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			var c swChange
			if json.Unmarshal([]byte(ev.Data), &c) != nil || c.Task == nil || c.Task.ID != victim {
				continue
			}
			sequence = append(sequence, ev.Event+":"+string(c.Task.Health))
			if ev.Event == "health-changed" && c.Task.Health == "critical" && criticalAfter == 0 {
				criticalAfter = ev.At.Sub(flippedAt)
			}
			if ev.Event == "task-removed" {
				t.Logf("figure: flipped task %s: %s; critical %s after the flip", victim[:12], strings.Join(sequence, " → "), criticalAfter.Round(time.Millisecond))
				if criticalAfter == 0 {
					t.Fatalf("the task left without ever being reported critical: %v", sequence)
				}
				swWaitPassing(t, WatcherURL, svc, 3)
				return
			}
		case <-deadline:
			t.Fatalf("task %s not removed within 2m; events: %v", victim, sequence)
		}
	}
}

// swProxy forwards TCP connections to the Docker socket until stopped.
type swProxy struct {
	addr  string
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func (p *swProxy) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after stop
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[d] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(d, c); _ = d.Close() }()
			go func() { _, _ = io.Copy(c, d); _ = c.Close() }()
		}
	}()
}

func (p *swProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWatcherCutOffFromTheEngine runs a second watcher on this machine that
// reaches the engine through a TCP proxy to the socket, stops the proxy, and
// watches it serve its last state marked stale, then recover.
func TestWatcherCutOffFromTheEngine(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "swarmwatcher")
	build := exec.Command("go", "build", "-o", bin, "./swarmwatcher/cmd/swarmwatcher")
	build.Dir = RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	proxy := &swProxy{addr: "127.0.0.1:0"}
	proxy.start(t)
	t.Cleanup(proxy.stop)
	listen := freeAddr(t)
	base := "http://" + listen
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-listen", listen, "-interval", "1s", "-api-timeout", "1s", "-log-format", "text", "-network", Stack+"_net")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=tcp://"+proxy.addr)
	logs := &strings.Builder{}
	var logMu sync.Mutex
	cmd.Stdout = &lockedWriter{mu: &logMu, w: logs}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("watcher log:\n%s", logs.String())
			logMu.Unlock()
		}
	})

	svc := Service("accountservice")
	var before map[string]swTask
	WaitFor(t, time.Minute, "second watcher lists accountservice", func() (bool, string) {
		code, _, err := CallErr(NewClient(), http.MethodGet, base+"/health")
		if err != nil || code != 200 {
			return false, fmt.Sprintf("/health %d %v", code, err)
		}
		all, err := swServices(base)
		if err != nil {
			return false, err.Error()
		}
		before = swRunning(all[svc])
		return len(before) > 0, fmt.Sprint(len(before), " tasks")
	})
	events := swSubscribe(t, base)

	proxy.stop()
	cutAt := time.Now()
	var staleAfter time.Duration
	deadline := time.After(time.Minute)
	for staleAfter == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev.Event == "status" && strings.Contains(ev.Data, `"stale":true`) {
				staleAfter = ev.At.Sub(cutAt)
				if !strings.Contains(ev.Data, `"error":"list`) {
					t.Errorf("stale status without the failing call: %s", ev.Data)
				}
			}
		case <-deadline:
			t.Fatal("no stale status within a minute of cutting the engine off")
		}
	}
	if code, body, _ := CallErr(NewClient(), http.MethodGet, base+"/health"); code != http.StatusServiceUnavailable {
		t.Errorf("/health while cut off = %d %s, want 503", code, body)
	}
	all, err := swServices(base)
	if err != nil {
		t.Fatal(err)
	}
	during := swRunning(all[svc])
	if len(during) != len(before) {
		t.Fatalf("tasks while stale: %d, before: %d (the last state must be kept)", len(during), len(before))
	}
	for id, task := range during {
		if before[id].Address != task.Address || task.Health != "unknown" {
			t.Errorf("task %s while stale: %s %s, before %s", id, task.Address, task.Health, before[id].Address)
		}
	}

	proxy.start(t)
	backAt := time.Now()
	var recovered time.Duration
	deadline = time.After(time.Minute)
	for recovered == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			if ev.Event == "status" && strings.Contains(ev.Data, `"stale":false`) {
				recovered = ev.At.Sub(backAt)
			}
		case <-deadline:
			t.Fatal("no recovery within a minute of reconnecting the engine")
		}
	}
	WaitFor(t, 30*time.Second, "/health 200 after recovery", func() (bool, string) {
		code, _, err := CallErr(NewClient(), http.MethodGet, base+"/health")
		return code == 200, fmt.Sprint(code, err)
	})
	t.Logf("figure: engine cut off: stale reported %s after the cut (api timeout 1s, poll 1s); fresh again %s after the engine came back",
		staleAfter.Round(time.Millisecond), recovered.Round(time.Millisecond))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWatcherPageInABrowser renders the page in Debian's chromium, counts
// the task rows, and sees a scale-up arrive without a reload.
func TestWatcherPageInABrowser(t *testing.T) {
	swWaitPassing(t, WatcherURL, Service("quotes-service"), 1)
	ctx := Browser(t, 1440, 1000, 4*time.Minute)
	eval := func(expr string) (string, error) { return Eval(ctx, expr) }
	apiTasks := func() int {
		all, err := swServices(WatcherURL)
		if err != nil {
			return -1
		}
		n := 0
		for _, s := range all {
			n += len(s.Tasks)
		}
		return n
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(WatcherURL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr.task`)),
	); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	if _, err := eval(`window.__loadMarker = "first-load"`); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 30*time.Second, "a row per task", func() (bool, string) {
		n, err := eval(`document.querySelectorAll("tr.task").length`)
		want := fmt.Sprint(apiTasks())
		return err == nil && n == want, fmt.Sprintf("%s rows, %s tasks in the API, %v", n, want, err)
	})
	quotes := `'section.service[data-service="goblog_quotes-service"] tr.task'`
	quotesRows, _ := eval(`document.querySelectorAll(` + quotes + `).length`)
	conn, _ := eval(`document.getElementById("conn-text").textContent`)
	if quotesRows != "1" || conn != "live" {
		t.Errorf("quotes rows %s, connection %q", quotesRows, conn)
	}

	KeepReplicas(t, "quotes-service", 2)
	swWaitPassing(t, WatcherURL, Service("quotes-service"), 2)
	WaitFor(t, 30*time.Second, "the page shows 2 passing quotes-service tasks without a reload", func() (bool, string) {
		rows, err1 := eval(`document.querySelectorAll(` + quotes + `).length`)
		passing, err2 := eval(`document.querySelectorAll('section.service[data-service="goblog_quotes-service"] tr.task[data-health="passing"]').length`)
		marker, _ := eval(`window.__loadMarker`)
		if marker != "first-load" {
			t.Fatalf("the page reloaded (marker %q)", marker)
		}
		return err1 == nil && err2 == nil && rows == "2" && passing == "2", fmt.Sprintf("rows %s passing %s %v %v", rows, passing, err1, err2)
	})
	if n, err := eval(`document.querySelectorAll("#log li:not(.none)").length`); err != nil || n == "0" {
		t.Errorf("the change log shows nothing after a scale (%s, %v)", n, err)
	}
	SaveScreenshot(t, ctx, "swarmwatcher.png")
}
