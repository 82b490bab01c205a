package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// generatedEngine serves an Engine API with services × tasksPer running
// tasks, marshalled from the Engine API's own types, and counts the calls.
type generatedEngine struct {
	srv   *httptest.Server
	calls atomic.Int64
}

var apiPath = regexp.MustCompile(`^/v[0-9.]+`)

func newGeneratedEngine(b *testing.B, services, tasksPer, probePort int) *generatedEngine {
	b.Helper()
	netID := "benchnet0000000000000000"
	nets := []network.Summary{
		{Name: "ingress", ID: "ingress00000000000000000", Driver: "overlay", Ingress: true},
		{Name: "goblog_net", ID: netID, Driver: "overlay"},
	}
	nodes := []dswarm.Node{{ID: "node1", Description: dswarm.NodeDescription{Hostname: "swarm-1"}}}
	var svcs []dswarm.Service
	var tasks []dswarm.Task
	n := 0
	for s := range services {
		replicas := uint64(tasksPer)
		svc := dswarm.Service{ID: fmt.Sprintf("svc%03d", s)}
		svc.Spec.Name = fmt.Sprintf("bench_service%03d", s)
		svc.Spec.Labels = map[string]string{swarm.LabelPort: strconv.Itoa(probePort)}
		svc.Spec.Mode.Replicated = &dswarm.ReplicatedService{Replicas: &replicas}
		svc.ServiceStatus = &dswarm.ServiceStatus{DesiredTasks: replicas, RunningTasks: replicas}
		svcs = append(svcs, svc)
		for i := range tasksPer {
			n++
			// Every task gets its own address: 10.1.x.y.
			ip := fmt.Sprintf("10.1.%d.%d", n/250, n%250+1)
			tasks = append(tasks, dswarm.Task{
				ID: fmt.Sprintf("task%05d", n), ServiceID: svc.ID, Slot: i + 1, NodeID: "node1",
				DesiredState: dswarm.TaskStateRunning,
				Status:       dswarm.TaskStatus{State: dswarm.TaskStateRunning, Timestamp: time.Now()},
				NetworksAttachments: []dswarm.NetworkAttachment{
					{Network: dswarm.Network{ID: "ingress00000000000000000"}, Addresses: []string{"10.0.0.9/24"}},
					{Network: dswarm.Network{ID: netID}, Addresses: []string{ip + "/16"}},
				},
			})
		}
	}
	bodies := map[string][]byte{}
	for path, v := range map[string]any{"/services": svcs, "/tasks": tasks, "/nodes": nodes, "/networks": nets} {
		j, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		bodies[path] = j
	}
	e := &generatedEngine{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		path := apiPath.ReplaceAllString(r.URL.Path, "")
		if path == "/_ping" {
			return
		}
		e.calls.Add(1)
		body, ok := bodies[path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"not found"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(e.srv.Close)
	return e
}

// pipeTargets is an in-process HTTP server answering /health for every task
// address: probes dial it through net.Pipe, so 10,000 simulated tasks need
// neither 10,000 addresses nor any port.
type pipeTargets struct {
	conns  chan net.Conn
	done   chan struct{}
	once   sync.Once
	probes atomic.Int64

	mu     sync.Mutex
	last   map[string]time.Time // by task address (the Host header)
	maxGap time.Duration        // longest wait between two probes of one task
}

// record notes a probe of host and returns how many tasks have been probed.
func (p *pipeTargets) record(host string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.last[host]; ok {
		p.maxGap = max(p.maxGap, now.Sub(prev))
	}
	p.last[host] = now
}

// probedSince counts the tasks probed at or after t.
func (p *pipeTargets) probedSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.last {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

func newPipeTargets(b *testing.B) *pipeTargets {
	b.Helper()
	p := &pipeTargets{conns: make(chan net.Conn), done: make(chan struct{}), last: map[string]time.Time{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.probes.Add(1)
		p.record(r.Host)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP"}`))
	}), ReadHeaderTimeout: benchProbeTimeout} // its pipe deadlines end within watcherHeapMiB's wait
	go func() { _ = srv.Serve(p) }()
	b.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *pipeTargets) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeTargets) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeTargets) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Dial is the probes' dialler: every address reaches the in-process server.
func (p *pipeTargets) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// cpuTime is the process's user and system CPU time so far (the fakes'
// included: an upper bound of the watcher's).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB reads the process's resident set from /proc (0 where there is none).
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// benchSwarm is a watcher over a generated engine whose every task answers
// its probe in process.
type benchSwarm struct {
	engine  *generatedEngine
	targets *pipeTargets
	w       *Watcher
	// fakesHeap is the heap in use once the fake engine and targets stood,
	// before the watcher: the heap beyond it is the watcher's.
	fakesHeap uint64
}

// benchProbeTimeout is the probes' deadline in the benchmarks.
const benchProbeTimeout = time.Second

// watcherHeapMiB is the heap in use beyond the fakes', after a collection.
// It first waits out the probe deadline: a net.Pipe stays on the heap until
// the timer of its deadline fires (a TCP connection's deadline is the
// runtime's and goes with it), and those pipes are the fake targets'.
func (bs *benchSwarm) watcherHeapMiB() float64 {
	time.Sleep(benchProbeTimeout + 100*time.Millisecond)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return float64(int64(ms.HeapInuse)-int64(bs.fakesHeap)) / (1 << 20)
}

func newBenchSwarm(b *testing.B, services, tasksPer int) *benchSwarm {
	b.Helper()
	targets := newPipeTargets(b)
	engine := newGeneratedEngine(b, services, tasksPer, 8080)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	docker, err := client.NewClientWithOpts(client.WithHost("tcp://"+engine.srv.Listener.Addr().String()), client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = docker.Close() })
	disc, err := swarm.New(swarm.Config{Networks: []string{"goblog_net"}, CallTimeout: 10 * time.Second}, docker)
	if err != nil {
		b.Fatal(err)
	}
	prober, err := probe.New(probe.Config{Timeout: benchProbeTimeout, MaxBody: 64 << 10, Concurrency: 64, Dial: targets.Dial})
	if err != nil {
		b.Fatal(err)
	}
	w, err := New(Config{
		PollInterval: time.Second, Debounce: time.Millisecond, ProbeInterval: time.Second, RetryMin: time.Millisecond,
		StaleAfter: time.Minute, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 20},
	}, disc, prober, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: negotiation ping, first full view.
	if err := w.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	return &benchSwarm{engine: engine, targets: targets, w: w, fakesHeap: ms.HeapInuse}
}

// benchCycle measures re-lists and full probe rounds of services × tasksPer
// simulated tasks, and prints the figures of issue 15: ms per re-list, Engine
// API calls per re-list, ms per probe round, probes per round, the heap and
// the resident set (of the whole benchmark process, fake engine and targets
// included: an upper bound of the watcher's).
func benchCycle(b *testing.B, services, tasksPer int) {
	bs := newBenchSwarm(b, services, tasksPer)
	ctx := context.Background()
	bs.engine.calls.Store(0)
	bs.targets.probes.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	var refreshTime, probeTime, refreshCPU, probeCPU time.Duration
	for b.Loop() {
		t0, c0 := time.Now(), cpuTime()
		if err := bs.w.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		t1, c1 := time.Now(), cpuTime()
		bs.w.Probe(ctx, false)
		refreshTime += t1.Sub(t0)
		probeTime += time.Since(t1)
		refreshCPU += c1 - c0
		probeCPU += cpuTime() - c1
	}
	b.StopTimer()
	tasks, failed := 0, 0
	for _, s := range bs.w.State().Services {
		for _, t := range s.Tasks {
			tasks++
			if t.Health != "passing" {
				failed++
			}
		}
	}
	if tasks != services*tasksPer || failed != 0 {
		b.Fatalf("%d tasks, %d not passing", tasks, failed)
	}
	n := float64(b.N)
	b.ReportMetric(float64(bs.engine.calls.Load())/n, "api-calls/relist")
	b.ReportMetric(float64(refreshTime.Microseconds())/1000/n, "ms/relist")
	b.ReportMetric(float64(probeTime.Microseconds())/1000/n, "ms/probe-round")
	b.ReportMetric(float64(refreshCPU.Microseconds())/1000/n, "cpu-ms/relist")
	b.ReportMetric(float64(probeCPU.Microseconds())/1000/n, "cpu-ms/probe-round")
	b.ReportMetric(float64(bs.targets.probes.Load())/n, "probes/round")
	b.ReportMetric(bs.watcherHeapMiB(), "MiB-heap-watcher")
	b.ReportMetric(rssMiB(), "MiB-RSS-process")
}

// BenchmarkRefreshAndProbe1000Tasks: 10 services × 100 tasks.
func BenchmarkRefreshAndProbe1000Tasks(b *testing.B) { benchCycle(b, 10, 100) }

// BenchmarkRefreshAndProbe10000Tasks: 200 services × 50 tasks, the issue's
// swarm-scale case.
func BenchmarkRefreshAndProbe10000Tasks(b *testing.B) { benchCycle(b, 200, 50) }

// BenchmarkProbeSchedule10000Tasks runs the watcher's own probe loop at a
// 1 s interval over 200 services × 50 tasks (after every task's first
// probe) and prints how long a full round takes (every task probed once
// more: about the interval, since the probes are spread over it), the
// longest wait between two probes of one task (no probe starves: the goal
// is under 2 s); the probes in flight are bounded by the prober's
// Concurrency (64).
func BenchmarkProbeSchedule10000Tasks(b *testing.B) {
	const services, tasksPer = 200, 50
	bs := newBenchSwarm(b, services, tasksPer)
	ctx, cancel := context.WithCancel(context.Background())
	bs.w.Probe(ctx, true) // every task's first probe, at once
	bs.targets.mu.Lock()
	bs.targets.maxGap = 0
	bs.targets.mu.Unlock()
	done := make(chan struct{})
	go func() { bs.w.probeLoop(ctx); close(done) }()
	defer cancel()
	b.ResetTimer()
	var rounds time.Duration
	c0 := cpuTime()
	for b.Loop() {
		t0 := time.Now()
		for bs.targets.probedSince(t0) < services*tasksPer {
			time.Sleep(20 * time.Millisecond)
		}
		rounds += time.Since(t0)
	}
	b.StopTimer()
	cpu := cpuTime() - c0
	cancel()
	<-done
	bs.targets.mu.Lock()
	gap := bs.targets.maxGap
	bs.targets.mu.Unlock()
	b.ReportMetric(float64(rounds.Microseconds())/1000/float64(b.N), "ms/probe-round")
	b.ReportMetric(float64(gap.Microseconds())/1000, "max-gap-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/probe-round")
	b.ReportMetric(bs.watcherHeapMiB(), "MiB-heap-watcher")
	b.ReportMetric(rssMiB(), "MiB-RSS-process")
}
