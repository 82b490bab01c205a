package sd_test

// The Instancer against the swarmwatcher's own watch core and HTTP server
// (fed by a fake Docker discovery and a fake prober): proves the consumer and
// the producer of /api/events agree on the wire, not only on paper.

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	kitsd "github.com/go-kit/kit/sd"

	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/server"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// fakeSwarm is the Docker side (Discoverer) and the probe side (Checker).
type fakeSwarm struct {
	mu    sync.Mutex
	tasks []swarm.Task
	fail  map[string]bool // probe URL → failing
}

func (f *fakeSwarm) Refresh(context.Context) (swarm.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return swarm.Snapshot{Networks: []string{"goblog_net"}, Services: []swarm.Service{{
		ID: "svc1", Name: "goblog_accountservice", Mode: "replicated", EndpointMode: "dnsrr",
		Desired: len(f.tasks), Running: len(f.tasks), ProbePort: 6767, ProbePath: "/health",
		Tasks: slices.Clone(f.tasks),
	}}}, nil
}

func (f *fakeSwarm) CheckAll(_ context.Context, urls []string) []probe.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]probe.Result, len(urls))
	for i, u := range urls {
		out[i] = probe.Result{At: time.Now(), Outcome: probe.Pass, Code: 200, Latency: time.Millisecond}
		if f.fail[u] {
			out[i] = probe.Result{At: time.Now(), Outcome: probe.Fail, Code: 503, Latency: time.Millisecond, Err: "503"}
		}
	}
	return out
}

func (f *fakeSwarm) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func swarmTask(id, addr string) swarm.Task {
	return swarm.Task{ID: id, Slot: 1, NodeID: "n1", Node: "node1", State: "running", DesiredState: "running",
		Address: addr, Network: "goblog_net", Since: time.Now()}
}

func TestInstancerAgainstTheRealWatcher(t *testing.T) {
	fs := &fakeSwarm{tasks: []swarm.Task{swarmTask("t1", "10.0.1.7"), swarmTask("t2", "10.0.1.8")}, fail: map[string]bool{}}
	w, err := watch.New(watch.Config{
		PollInterval: 20 * time.Millisecond, ProbeInterval: 20 * time.Millisecond, RetryMin: 10 * time.Millisecond,
		StaleAfter: time.Second, Thresholds: probe.Thresholds{Rise: 1, Fall: 1, History: 5},
	}, fs, fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(server.Handler(server.Config{Keepalive: 50 * time.Millisecond}, w))
	defer srv.Close()

	in, err := wsd.NewInstancer(wsd.Config{WatcherURL: srv.URL, Service: "accountservice", IdleTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	ch := make(chan kitsd.Event, 128)
	in.Register(ch)

	waitSet := func(what string, want ...string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		var last kitsd.Event
		for {
			select {
			case last = <-ch:
				if last.Err == nil && slices.Equal(last.Instances, want) || last.Err == nil && len(want) == 0 && len(last.Instances) == 0 {
					return
				}
			case <-deadline:
				t.Fatalf("%s: last event %+v, want %v", what, last, want)
			}
		}
	}
	waitSet("both tasks passing", "10.0.1.7:6767", "10.0.1.8:6767")

	fs.set(func() { fs.fail["http://10.0.1.7:6767/health"] = true })
	waitSet("t1 failing its probe", "10.0.1.8:6767")

	fs.set(func() { fs.tasks = append(fs.tasks, swarmTask("t3", "10.0.1.9")) })
	waitSet("t3 added", "10.0.1.8:6767", "10.0.1.9:6767")

	fs.set(func() { fs.tasks = fs.tasks[1:]; delete(fs.fail, "http://10.0.1.7:6767/health") })
	fs.set(func() { fs.tasks = fs.tasks[1:] })
	waitSet("t1, t2 removed", "10.0.1.9:6767")

	if n := in.Malformed(); n != 0 {
		t.Fatalf("%d events from the real server could not be read", n)
	}
}
