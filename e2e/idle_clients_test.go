//go:build e2e

package e2e

// 3000 idle /api/events clients on the deployed watcher (issue 13) leave it answering
// /health within a second. The unit-level version is swarmwatcher/internal/server's
// TestThreeThousandIdleEventClients; this one goes through the published port, the
// engine's port publishing and the container's limits.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/nettest"
	"github.com/goblog/goblog/internal/sse"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// watcherGauge reads one unlabelled sample of the watcher's /metrics.
func watcherGauge(name string) (float64, error) {
	code, body, err := CallErr(NewClient(), http.MethodGet, WatcherURL+"/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no sample %s", name)
}

// serviceEnv is svc's environment in its spec, as KEY → value.
func serviceEnv(t *testing.T, name string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range inspectService(t, name).Spec.TaskTemplate.ContainerSpec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// waitTasksEnv waits until svc has converged and each of its running tasks runs with want
// (a value per key; "" means the key is absent), and the watcher answers /health with 200.
func waitTasksEnv(t *testing.T, name string, want map[string]string) time.Duration {
	t.Helper()
	svc := Service(name)
	return WaitFor(t, 3*time.Minute, svc+" rolled to "+fmt.Sprint(want)+" and /health 200", func() (bool, string) {
		if ok, status := Converged(svc); !ok {
			return false, status
		}
		ids, err := DockerErr("service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", svc)
		if err != nil || ids == "" {
			return false, "service ps: " + ids
		}
		out, err := DockerErr(append([]string{"inspect", "--type", "task", "--format", "{{.Status.State}} {{json .Spec.ContainerSpec.Env}}"}, strings.Fields(ids)...)...)
		if err != nil {
			return false, out
		}
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "running ") {
				return false, "task " + line
			}
			for k, v := range want {
				has := strings.Contains(line, `"`+k+`=`)
				if (v == "" && has) || (v != "" && !strings.Contains(line, `"`+k+"="+v+`"`)) {
					return false, "task " + line
				}
			}
		}
		code, body, err := CallErr(NewClient(), http.MethodGet, WatcherURL+"/health")
		if err != nil {
			return false, "/health: " + err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("/health: %d %s", code, body)
	})
}

// setWatcherEnv sets env on the watcher's service until the test ends, then puts back
// what its spec had (the stack file's settings), each time waiting for the roll.
func setWatcherEnv(t *testing.T, env map[string]string) {
	t.Helper()
	orig := serviceEnv(t, "swarmwatcher")
	args, back, restored := []string{"service", "update", "--detach"}, []string{"service", "update", "--detach"}, map[string]string{}
	for k, v := range env {
		args = append(args, "--env-add", k+"="+v)
		if ov, ok := orig[k]; ok {
			back = append(back, "--env-add", k+"="+ov)
		} else {
			back = append(back, "--env-rm", k)
		}
		restored[k] = orig[k]
	}
	t.Cleanup(func() {
		Docker(t, append(back, Service("swarmwatcher"))...)
		took := waitTasksEnv(t, "swarmwatcher", restored)
		t.Logf("watcher restored to %v in %s", restored, took.Round(time.Millisecond))
	})
	Docker(t, append(args, Service("swarmwatcher"))...)
	took := waitTasksEnv(t, "swarmwatcher", env)
	t.Logf("watcher rolled to %v in %s", env, took.Round(time.Millisecond))
}

// openIdleStream connects to the watcher's /api/events, reads the first event (which must
// be the snapshot) and returns the connection, left idle: nothing reads it any more.
func openIdleStream(base *url.URL) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", base.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	req, err := http.NewRequest(http.MethodGet, base.String()+"/api/events", nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.Close()
		return nil, fmt.Errorf("/api/events: %s %s", resp.Status, strings.TrimSpace(string(b)))
	}
	ev, err := sse.NewReader(resp.Body, 4<<20).Next(nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("first event: %w", err)
	}
	if ev.Name != api.EventSnapshot {
		c.Close()
		return nil, fmt.Errorf("first event %q, want %q", ev.Name, api.EventSnapshot)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// containerMemory is `docker stats --no-stream` memory usage of a container.
func containerMemory(t *testing.T, id string) string {
	t.Helper()
	return Docker(t, "stats", "--no-stream", "--format", "{{.MemUsage}}", id)
}

func TestThreeThousandIdleEventClientsOnTheDeployedWatcher(t *testing.T) {
	const (
		clients = 3000
		openers = 16 // connections being opened at once
		calls   = 20 // /health calls measured
	)
	if lim := nettest.RaiseFileLimit(t, clients+1000); lim < clients+200 {
		t.Fatalf("RLIMIT_NOFILE is %d: %d streams need about %d descriptors", lim, clients, clients+200)
	}
	base, err := url.Parse(WatcherURL)
	if err != nil {
		t.Fatalf("GOBLOG_WATCHER_URL %q: %v", WatcherURL, err)
	}
	// Every connection from this host reaches the watcher from one address, beyond the
	// default per-IP bound (32) and overall cap (1024): raise both for this test.
	setWatcherEnv(t, map[string]string{"EVENT_CLIENTS_PER_IP": "4000", "EVENT_CLIENTS": "4000"})

	tasks := RunningTasks(t, "swarmwatcher")
	if len(tasks) != 1 {
		t.Fatalf("%d running watcher tasks, want 1", len(tasks))
	}
	memBefore := containerMemory(t, tasks[0].ContainerID)
	// The baseline: the watcher's own clients (edge, turbine) have reconnected after the
	// roll when the gauge holds still for three reads.
	var before float64
	var last []float64
	WaitFor(t, time.Minute, "swarmwatcher_event_clients steady", func() (bool, string) {
		v, err := watcherGauge("swarmwatcher_event_clients")
		if err != nil {
			return false, err.Error()
		}
		last = append(last, v)
		if len(last) > 3 {
			last = last[1:]
		}
		time.Sleep(750 * time.Millisecond)
		before = v
		return len(last) == 3 && last[0] == v && last[1] == v, fmt.Sprint(last)
	})

	var (
		mu    sync.Mutex
		conns []net.Conn
		errs  []string
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	next := make(chan int)
	start := time.Now()
	for range openers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := openIdleStream(base)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("client %d: %v", i, err))
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range clients {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	opened := time.Since(start)
	if len(errs) > 0 {
		t.Fatalf("%d of %d streams opened in %s, then %d failed: %s", len(conns), clients, opened.Round(time.Millisecond), len(errs), strings.Join(errs[:min(len(errs), 3)], "; "))
	}
	after, err := watcherGauge("swarmwatcher_event_clients")
	if err != nil {
		t.Fatal(err)
	}
	if after-before != clients {
		t.Errorf("swarmwatcher_event_clients %v → %v: rose by %v, want %d", before, after, after-before, clients)
	}

	// /health with every stream idle, one call a second (long enough for a keepalive to
	// every client, 15 s, to fall among them): each within 1 s, on a new connection.
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var lat []time.Duration
	for i := range calls {
		if i > 0 {
			time.Sleep(time.Second)
		}
		t0 := time.Now()
		code, body, err := CallErr(c, http.MethodGet, WatcherURL+"/health")
		d := time.Since(t0)
		if err != nil {
			t.Fatalf("/health call %d with %d idle streams: %v (the bound is 1 s)", i+1, clients, err)
		}
		if code != http.StatusOK {
			t.Fatalf("/health call %d with %d idle streams: %d %s", i+1, clients, code, body)
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	memAfter := containerMemory(t, tasks[0].ContainerID)
	t.Logf("%d idle event-stream clients on the deployed watcher: opened in %s (%d at once); swarmwatcher_event_clients %v → %v; "+
		"/health p50 %s max %s over %d calls (each bounded by 1 s); container memory %s → %s",
		clients, opened.Round(time.Millisecond), openers, before, after,
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), len(lat), memBefore, memAfter)

	// Closing them is seen: the gauge falls back.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	WaitFor(t, 90*time.Second, "swarmwatcher_event_clients back to "+fmt.Sprint(before), func() (bool, string) {
		v, err := watcherGauge("swarmwatcher_event_clients")
		if err != nil {
			return false, err.Error()
		}
		return v == before, fmt.Sprint(v)
	})
}
