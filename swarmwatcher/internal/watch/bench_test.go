package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"sync/atomic"
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
			// Every task gets its own loopback address: 127.1.x.y.
			ip := fmt.Sprintf("127.1.%d.%d", n/250, n%250+1)
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

// BenchmarkRefreshAndProbe1000Tasks measures one full cycle: a re-list of
// 1000 running tasks (10 services × 100) from a fixture-generated Engine API
// and one probe of each through real HTTP to httptest targets.
func BenchmarkRefreshAndProbe1000Tasks(b *testing.B) {
	const services, tasksPer = 10, 100
	// One target on every loopback address (0.0.0.0), answering /health.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		b.Fatal(err)
	}
	var probes atomic.Int64
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP"}`))
	}))
	_ = target.Listener.Close()
	target.Listener = ln
	target.Start()
	b.Cleanup(target.Close)
	port := ln.Addr().(*net.TCPAddr).Port

	engine := newGeneratedEngine(b, services, tasksPer, port)
	docker, err := client.NewClientWithOpts(client.WithHost("tcp://"+engine.srv.Listener.Addr().String()), client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	defer docker.Close()
	disc, err := swarm.New(swarm.Config{Networks: []string{"goblog_net"}, CallTimeout: 10 * time.Second}, docker)
	if err != nil {
		b.Fatal(err)
	}
	prober, err := probe.New(probe.Config{Timeout: 2 * time.Second, MaxBody: 64 << 10, Concurrency: 64})
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
	ctx := context.Background()
	// Warm up: negotiation ping, first full view.
	if err := w.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	engine.calls.Store(0)
	probes.Store(0)
	var failed int
	b.ReportAllocs()
	b.ResetTimer()
	var refreshTime, probeTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := w.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		w.Probe(ctx, false)
		refreshTime += t1.Sub(t0)
		probeTime += time.Since(t1)
	}
	b.StopTimer()
	view := w.State().Services
	tasks := 0
	for _, s := range view {
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
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(engine.calls.Load())/float64(b.N), "api-calls/op")
	b.ReportMetric(float64(refreshTime.Milliseconds())/float64(b.N), "refresh-ms/op")
	b.ReportMetric(float64(probeTime.Milliseconds())/float64(b.N), "probe-ms/op")
	b.ReportMetric(float64(probes.Load())/float64(b.N), "probes/op")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MB")
}
