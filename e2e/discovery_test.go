//go:build e2e

package e2e

// Discovery end to end (issue 8): the edge balancing by name (swarm DNS) vs
// over the swarmwatcher's passing tasks (EDGE_DISCOVERY=watcher), measured
// under a steady load while one accountservice replica turns unhealthy and
// while the service is rolled; and the watcher's webhooks seeing a scale up
// and down. Every figure is printed with t.Logf; the test asserts behaviour
// (what the watcher-fed edge must do better), never wall-clock time.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
)

const (
	discAccount     = Stack + "_accountservice"
	discEdge        = Stack + "_edge"
	discWatcher     = Stack + "_swarmwatcher"
	discNetwork     = Stack + "_net"
	discHookName    = Stack + "-e2e-hookrecorder"
	discHookImage   = "goblog/hookrecorder:e2e"
	discReplicas    = 3
	discLoadWorkers = 2
	discLoadPause   = 5 * time.Millisecond
	discSettle      = 3 * time.Second
)

// TestDiscovery runs the experiments in order, name mode first, and leaves
// the stack as it found it: accountservice at its replica count, the edge's
// and the watcher's environment restored, the receiver container removed.
func TestDiscovery(t *testing.T) {
	rig := &discRig{client: NewClient()}
	KeepReplicas(t, "accountservice", discReplicas)
	rig.waitPassing(t, discAccount, discReplicas, nil)

	var figures []string
	report := func(s string) { figures = append(figures, s); t.Log(s) }

	var flipName, flipWatcher flipResult
	t.Run("flip/name", func(t *testing.T) {
		flipName = rig.flipExperiment(t)
		report("flip, by name:    " + flipName.String())
	})
	t.Run("rolling/name", func(t *testing.T) {
		r := rig.rollingExperiment(t)
		report("rolling, by name:    " + r.String())
	})

	restoreEdge := rig.setEnv(t, discEdge, "EDGE_DISCOVERY", "watcher")
	rig.waitEdge(t)
	t.Run("flip/watcher", func(t *testing.T) {
		flipWatcher = rig.flipExperiment(t)
		report("flip, watcher-fed: " + flipWatcher.String())
	})
	t.Run("rolling/watcher", func(t *testing.T) {
		r := rig.rollingExperiment(t)
		report("rolling, watcher-fed: " + r.String())
		if r.failed > 0 {
			t.Errorf("watcher-fed edge failed %d of %d requests during a rolling update", r.failed, r.total)
		}
	})
	restoreEdge()
	rig.waitEdge(t)

	if flipWatcher.total > 0 && flipName.total > 0 {
		// The point of the watcher-fed edge: it stops sending to a replica
		// whose /health fails, while swarm DNS keeps it until the task is
		// shut down. It may not do worse.
		if flipWatcher.hitsUnhealthy+flipWatcher.failed > flipName.hitsUnhealthy+flipName.failed {
			t.Errorf("watcher-fed edge: %d unhealthy hits + %d failures, by name: %d + %d; want no more than by name",
				flipWatcher.hitsUnhealthy, flipWatcher.failed, flipName.hitsUnhealthy, flipName.failed)
		}
	}

	t.Run("webhooks", func(t *testing.T) {
		report("webhooks: " + rig.webhookExperiment(t))
	})

	t.Logf("discovery figures:\n  %s", strings.Join(figures, "\n  "))
}

// discRig drives the stack with the docker CLI and plain HTTP.
type discRig struct {
	client *http.Client
}

// setEnv sets one environment variable of a service (a rolling update) and
// returns the function that puts the old value, or its absence, back. The
// update runs stop-first: a task that binds a host-mode port (the edge, the
// watcher) cannot start beside its predecessor on one node. The service's
// own update order is put back after each update (changing it restarts
// nothing).
func (r *discRig) setEnv(t *testing.T, service, key, value string) (restore func()) {
	t.Helper()
	out := Docker(t, "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}} {{.Spec.UpdateConfig.Order}}", service)
	envJSON, order, _ := strings.Cut(out, " ")
	var env []string
	_ = json.Unmarshal([]byte(envJSON), &env)
	old, had := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			old, had = v, true
		}
	}
	update := func(t *testing.T, args ...string) {
		t.Helper()
		args = append(append([]string{"service", "update", "--detach=false", "--quiet", "--update-order", "stop-first"}, args...), service)
		Docker(t, args...)
		if order != "" && order != "stop-first" {
			Docker(t, "service", "update", "--detach=false", "--quiet", "--update-order", order, service)
		}
		WaitFor(t, 3*time.Minute, service+" converged", func() (bool, string) { return Converged(service) })
	}
	update(t, "--env-add", key+"="+value)
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if had {
				update(t, "--env-add", key+"="+old)
			} else {
				update(t, "--env-rm", key)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// watcherServices reads GET /api/services.
func (r *discRig) watcherServices() ([]discService, error) {
	resp, err := r.client.Get(WatcherURL + "/api/services")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/services: %s", resp.Status)
	}
	var list []discService
	err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list)
	return list, err
}

type (
	discService = api.Service
	discTask    = api.Task
)

// passing returns the passing tasks of service, by address.
func (r *discRig) passing(service string) (map[string]string, error) {
	list, err := r.watcherServices()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range list {
		if s.Name != service {
			continue
		}
		for _, tk := range s.Tasks {
			if tk.Health == "passing" {
				out[tk.Address] = tk.ID
			}
		}
	}
	return out, nil
}

// waitPassing waits until the watcher reports exactly n passing tasks of
// service, none of them at an address in exclude.
func (r *discRig) waitPassing(t *testing.T, service string, n int, exclude map[string]string) map[string]string {
	t.Helper()
	var last map[string]string
	WaitFor(t, 3*time.Minute, fmt.Sprintf("%d passing tasks of %s", n, service), func() (bool, string) {
		var err error
		last, err = r.passing(service)
		if err != nil {
			return false, err.Error()
		}
		for addr, id := range last {
			if exID, bad := exclude[addr]; bad && exID == id {
				return false, fmt.Sprintf("excluded task %s still passing", id)
			}
		}
		return len(last) == n, fmt.Sprintf("passing %v", last)
	})
	return last
}

// waitEdge waits until the edge answers an account request.
func (r *discRig) waitEdge(t *testing.T) {
	t.Helper()
	WaitFor(t, 3*time.Minute, "the edge serving /accounts/10000", func() (bool, string) {
		res := r.get()
		return res.status == http.StatusOK, fmt.Sprintf("status %d", res.status)
	})
}

type discResult struct {
	at       time.Time
	status   int // 0: transport error
	servedBy string
}

func (r *discRig) get() discResult {
	res := discResult{at: time.Now()}
	resp, err := r.client.Get(EdgeURL + "/accounts/10000")
	if err != nil {
		return res
	}
	defer resp.Body.Close()
	var body struct {
		ServedBy string `json:"servedBy"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
	res.status, res.servedBy = resp.StatusCode, body.ServedBy
	return res
}

// load runs discLoadWorkers request loops (no keep-alive) until stop.
type load struct {
	mu      sync.Mutex
	results []discResult
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (r *discRig) startLoad() *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	for i := 0; i < discLoadWorkers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				res := r.get()
				l.mu.Lock()
				l.results = append(l.results, res)
				l.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(discLoadPause):
				}
			}
		}()
	}
	return l
}

func (l *load) stop() []discResult {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

type flipResult struct {
	total, failed, hitsUnhealthy int
	lastHit                      time.Duration // from the flip to the last request the unhealthy replica served
	replaced                     time.Duration // from the flip to swarm's replacement task passing
}

func (f flipResult) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d served by the unhealthy replica, last one %v after the flip, replica replaced after %v",
		f.total, f.failed, f.hitsUnhealthy, f.lastHit.Round(time.Millisecond), f.replaced.Round(time.Millisecond))
}

// flipExperiment turns one replica unhealthy (through the edge) under load
// and counts, from the flip until swarm has replaced that replica, the
// requests that failed or that the unhealthy replica served.
func (r *discRig) flipExperiment(t *testing.T) flipResult {
	before := r.waitPassing(t, discAccount, discReplicas, nil)
	l := r.startLoad()
	defer l.stop()
	time.Sleep(discSettle)

	flipAt := time.Now()
	addr := r.flipUnhealthy(t)
	taskID, ok := before[addr]
	if !ok {
		t.Fatalf("flipped replica %s is not one of the passing tasks %v", addr, before)
	}
	t.Logf("flipped %s (task %s) unhealthy", addr, taskID)
	// Swarm's HEALTHCHECK fails on the replica and swarm replaces the task;
	// wait for the service to be whole again without that task.
	r.waitPassing(t, discAccount, discReplicas, map[string]string{addr: taskID})
	replacedAt := time.Now()
	time.Sleep(discSettle)
	results := l.stop()

	var f flipResult
	f.replaced = replacedAt.Sub(flipAt)
	for _, res := range results {
		if res.at.Before(flipAt) {
			continue
		}
		f.total++
		switch {
		case res.status != http.StatusOK:
			f.failed++
		case res.servedBy == addr && res.at.Before(replacedAt):
			f.hitsUnhealthy++
			f.lastHit = max(f.lastHit, res.at.Sub(flipAt))
		}
	}
	return f
}

// flipUnhealthy PUTs /testability/healthy/false through the edge and returns
// the address of the replica that took it.
func (r *discRig) flipUnhealthy(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, EdgeURL+"/testability/healthy/false", nil)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatalf("flip: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out struct {
		ServedBy string `json:"servedBy"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil || out.ServedBy == "" {
		t.Fatalf("flip: %s %s", resp.Status, body)
	}
	return out.ServedBy
}

type rollResult struct {
	total, failed int
	took          time.Duration
}

func (r rollResult) String() string {
	return fmt.Sprintf("%d requests, %d failed, update took %v", r.total, r.failed, r.took.Round(time.Millisecond))
}

// rollingExperiment runs docker service update --force under load.
func (r *discRig) rollingExperiment(t *testing.T) rollResult {
	r.waitPassing(t, discAccount, discReplicas, nil)
	l := r.startLoad()
	defer l.stop()
	time.Sleep(discSettle)
	start := time.Now()
	Docker(t, "service", "update", "--force", "--detach=false", "--quiet", discAccount)
	took := time.Since(start)
	r.waitPassing(t, discAccount, discReplicas, nil)
	time.Sleep(discSettle)
	results := l.stop()
	var res rollResult
	res.took = took
	for _, x := range results {
		if x.at.Before(start) {
			continue
		}
		res.total++
		if x.status != http.StatusOK {
			res.failed++
		}
	}
	return res
}

type hookRecord struct {
	ReceivedAt time.Time  `json:"receivedAt"`
	Body       api.Change `json:"body"`
	// The raw body and the Standard Webhooks headers, for the signature check.
	Raw       []byte `json:"raw"`
	ID        string `json:"webhookId"`
	Timestamp string `json:"webhookTimestamp"`
	Signature string `json:"webhookSignature"`
}

// discHookSecret signs the watcher's webhooks during the experiment.
var discHookSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("goblog e2e webhook signing key 32"))

// webhookExperiment runs the receiver as a container on the stack network,
// points the watcher's WEBHOOK_URLS at it, and scales accountservice up by
// one and back.
func (r *discRig) webhookExperiment(t *testing.T) string {
	hookURL := r.startHookRecorder(t)
	r.setEnv(t, discWatcher, "WEBHOOK_SECRET", discHookSecret)
	r.setEnv(t, discWatcher, "WEBHOOK_URLS", "http://"+discHookName+":8080/hook")
	base := r.waitPassing(t, discAccount, discReplicas, nil)

	upAt := time.Now()
	Scale(t, "accountservice", discReplicas+1)
	up := r.waitPassing(t, discAccount, discReplicas+1, nil)
	var newID string
	for addr, id := range up {
		if _, old := base[addr]; !old {
			newID = id
		}
	}
	added := r.waitHook(t, hookURL, func(h hookRecord) bool {
		return h.Body.Service == discAccount && h.Body.Type == "task-added" && h.Body.Task != nil && h.Body.Task.ID == newID
	})
	passing := r.waitHook(t, hookURL, func(h hookRecord) bool {
		return h.Body.Service == discAccount && h.Body.Task != nil && h.Body.Task.ID == newID && h.Body.Task.Health == api.HealthPassing
	})

	downAt := time.Now()
	Scale(t, "accountservice", discReplicas)
	down := r.waitPassing(t, discAccount, discReplicas, nil)
	var goneID string
	for addr, id := range up {
		if _, still := down[addr]; !still {
			goneID = id
		}
	}
	removed := r.waitHook(t, hookURL, func(h hookRecord) bool {
		return h.Body.Service == discAccount && h.Body.Type == "task-removed" && h.Body.Task != nil && h.Body.Task.ID == goneID
	})

	verified := verifyHooks(t, r.hooks(t, hookURL))

	delays := []time.Duration{}
	for _, h := range []hookRecord{added, passing, removed} {
		if at, err := time.Parse(time.RFC3339Nano, h.Body.At); err == nil {
			delays = append(delays, h.ReceivedAt.Sub(at))
		}
	}
	return fmt.Sprintf("task-added %v after scale-up, passing %v after, task-removed %v after scale-down; delivery delay (event at → received) %v; signatures verified by Python: %s",
		added.ReceivedAt.Sub(upAt).Round(time.Millisecond), passing.ReceivedAt.Sub(upAt).Round(time.Millisecond),
		removed.ReceivedAt.Sub(downAt).Round(time.Millisecond), delays, verified)
}

// hooks returns what the recorder has received.
func (r *discRig) hooks(t *testing.T, url string) []hookRecord {
	t.Helper()
	resp, err := r.client.Get(url + "/received")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var recs []hookRecord
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

// verifyHooks checks every signed delivery with an implementation that
// shares no code with the watcher (Python's hmac and hashlib) and returns
// its verdict.
func verifyHooks(t *testing.T, recs []hookRecord) string {
	t.Helper()
	var deliveries []map[string]string
	for _, h := range recs {
		if h.Signature == "" {
			continue // sent before WEBHOOK_SECRET took effect
		}
		deliveries = append(deliveries, map[string]string{"id": h.ID, "timestamp": h.Timestamp, "signature": h.Signature,
			"body_b64": base64.StdEncoding.EncodeToString(h.Raw)})
	}
	if len(deliveries) == 0 {
		t.Fatal("no signed webhook received")
	}
	in, _ := json.Marshal(map[string]any{"secret": discHookSecret, "deliveries": deliveries, "tolerance": 300})
	cmd := exec.Command("python3", filepath.Join(RepoRoot, "swarmwatcher/internal/webhook/testdata/verify_signature.py"))
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("webhook signatures: %s (%v)", out, err)
	}
	return strings.TrimSpace(string(out))
}

// startHookRecorder builds the receiver's image, runs it on the stack
// network with its port published on loopback only, and returns the URL the
// test reads it at.
func (r *discRig) startHookRecorder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "hookrecorder"), "github.com/goblog/goblog/e2e/hookrecorder")
	build.Dir = RepoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hookrecorder: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY hookrecorder /\nUSER 65534:65534\nEXPOSE 8080\nENTRYPOINT [\"/hookrecorder\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	Docker(t, "build", "-q", "-t", discHookImage, dir)
	_, _ = DockerErr("rm", "-f", discHookName) // a leftover of an interrupted run
	Docker(t, "run", "-d", "--name", discHookName, "--network", discNetwork, "-p", "127.0.0.1::8080", discHookImage)
	t.Cleanup(func() {
		_, _ = DockerErr("rm", "-f", discHookName)
		_, _ = DockerErr("rmi", discHookImage)
	})
	hostPort := Docker(t, "port", discHookName, "8080/tcp")
	hostPort = strings.TrimSpace(strings.Split(hostPort, "\n")[0])
	url := "http://" + hostPort
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := r.client.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("hookrecorder at %s never answered", url)
	return ""
}

func (r *discRig) waitHook(t *testing.T, url string, match func(hookRecord) bool) hookRecord {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var recs []hookRecord
	for time.Now().Before(deadline) {
		recs = recs[:0]
		resp, err := r.client.Get(url + "/received")
		if err == nil {
			err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&recs)
			resp.Body.Close()
		}
		if err == nil {
			for _, h := range recs {
				if match(h) {
					return h
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var seen []string
	for _, h := range recs {
		seen = append(seen, string(h.Body.Type)+" "+h.Body.Service)
	}
	t.Fatalf("no matching webhook within 90s; received %d: %v", len(recs), seen)
	return hookRecord{}
}
