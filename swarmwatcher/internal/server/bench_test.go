package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/nettest"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

// bigSnapshot is services × tasksPer probed running tasks.
func bigSnapshot(services, tasksPer int) swarm.Snapshot {
	snap := swarm.Snapshot{Networks: []string{"goblog_net"}}
	n := 0
	for s := range services {
		svc := swarm.Service{ID: fmt.Sprintf("svc%03d", s), Name: fmt.Sprintf("bench_service%03d", s), Desired: tasksPer, Running: tasksPer,
			ProbePort: 8080, ProbePath: "/health", Mode: "replicated", EndpointMode: "vip", Logical: fmt.Sprintf("service%03d", s),
			Labels: map[string]string{"swarmwatcher.port": "8080"}}
		for i := range tasksPer {
			n++
			t := task(fmt.Sprintf("task%05d", n), fmt.Sprintf("10.1.%d.%d", n/250, n%250+1), i+1)
			t.ContainerID = fmt.Sprintf("%064d", n)
			svc.Tasks = append(svc.Tasks, t)
		}
		snap.Services = append(snap.Services, svc)
	}
	return snap
}

// countingStream reads one /api/events stream, counting the bytes after its
// opening events and signalling each event named name.
type countingStream struct {
	bytes atomic.Int64
	seen  chan struct{}
}

func followCounting(b *testing.B, url, name string) *countingStream {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { resp.Body.Close() })
	cs := &countingStream{seen: make(chan struct{}, 1024)}
	r := bufio.NewReaderSize(resp.Body, 1<<20)
	for { // the opening events: snapshot and status
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(line, "event: status") {
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cs.bytes.Add(int64(len(line)))
			if line == "event: "+name+"\n" {
				cs.seen <- struct{}{}
			}
		}
	}()
	return cs
}

func (cs *countingStream) wait(b *testing.B, what string) {
	b.Helper()
	select {
	case <-cs.seen:
	case <-time.After(30 * time.Second):
		b.Fatalf("no %s", what)
	}
}

func rssKiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb
		}
	}
	return 0
}

// BenchmarkEventStream10000Tasks serves a watcher of 200 services × 50
// tasks (20 probe results of history each) and prints issue 15's figures of
// the serving side: bytes an event-stream client receives per change (one
// task drains, then is back: one health change each), for a plain client
// and a ?views=1 one (the page), against the bytes of the whole view; the
// milliseconds of /api/services (all, and ?service=) and of a new client's
// opening snapshot; and the memory per idle event-stream client (heap and
// stacks, both ends of the loopback connection: an upper bound; and the
// resident set's growth per client).
func BenchmarkEventStream10000Tasks(b *testing.B) {
	const services, tasksPer, idle = 200, 50, 500
	if lim := nettest.RaiseFileLimit(b, 2*idle+200); lim < 2*idle+100 {
		b.Fatalf("RLIMIT_NOFILE is %d, %d idle clients need about %d", lim, idle, 2*idle+100)
	}
	snap := bigSnapshot(services, tasksPer)
	d := &fakeDisc{snap: snap}
	now := func() time.Time { return time.Now() }
	w, err := watch.New(watch.Config{
		PollInterval: time.Hour, Debounce: time.Millisecond, ProbeInterval: time.Hour, RetryMin: time.Millisecond,
		StaleAfter: time.Hour, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 20}, Now: now,
	}, d, passAll{now}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_ = w.Refresh(ctx)
	for range 20 { // a full history for every task
		w.Probe(ctx, false)
	}
	s := New(Config{Keepalive: time.Hour, MaxClientsPerIP: idle + 10, MaxClients: idle + 10}, w)
	srv := httptest.NewServer(s.Handler())
	b.Cleanup(srv.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = s.Run(rctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })

	timeGet := func(path string) (time.Duration, int) {
		t0 := time.Now()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0), int(n)
	}
	timeGet("/api/services") // warm the encodings
	allTime, viewBytes := timeGet("/api/services")
	oneTime, _ := timeGet("/api/services?service=bench_service100")

	plain := followCounting(b, srv.URL+"/api/events", "health-changed")
	views := followCounting(b, srv.URL+"/api/events?views=1", "services")
	t0 := time.Now()
	snapStream := followCounting(b, srv.URL+"/api/events?views=1", "services")
	snapTime := time.Since(t0)
	_ = snapStream

	b.ResetTimer()
	changes := 0
	for b.Loop() {
		// One task drains (desired shutdown), or comes back: one change.
		next := snap
		next.Services = append([]swarm.Service(nil), snap.Services...)
		svc := &next.Services[100]
		svc.Tasks = append([]swarm.Task(nil), svc.Tasks...)
		if changes%2 == 0 {
			svc.Tasks[7].DesiredState = "shutdown"
		}
		d.set(next, nil)
		if err := w.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		changes++
		plain.wait(b, "health-changed on the plain stream")
		views.wait(b, "services on the views stream")
	}
	b.StopTimer()
	time.Sleep(100 * time.Millisecond) // the last bytes of the last frames

	// Idle clients: the memory they add, with the garbage of the loop
	// collected first, and the snapshot cache already holding the one they
	// open with (a first client replaces the old one).
	addr := srv.Listener.Addr().String()
	const idlePath = "/api/events?service=bench_service000"
	if _, _, status := openStream(b, addr, nil, idlePath); status != "200" {
		b.Fatalf("first idle client: %s", status)
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	rss0 := rssKiB()
	conns := make([]net.Conn, 0, idle)
	for range idle {
		// Following one service: the opening snapshot of the whole
		// view (18 MB) would make the set-up, not the idle client, the cost.
		c, _, status := openStream(b, addr, nil, idlePath)
		if status != "200" {
			b.Fatalf("idle client: %s", status)
		}
		conns = append(conns, c)
	}
	debug.FreeOSMemory()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	rss1 := rssKiB()
	perClient := float64(int64(ms1.HeapInuse+ms1.StackInuse)-int64(ms0.HeapInuse+ms0.StackInuse)) / 1024 / idle

	b.ReportMetric(float64(plain.bytes.Load())/float64(changes), "bytes/change")
	b.ReportMetric(float64(views.bytes.Load())/float64(changes), "views-bytes/change")
	b.ReportMetric(float64(viewBytes), "bytes-whole-view")
	b.ReportMetric(float64(allTime.Microseconds())/1000, "ms/api-services")
	b.ReportMetric(float64(oneTime.Microseconds())/1000, "ms/api-services?service")
	b.ReportMetric(float64(snapTime.Microseconds())/1000, "ms/new-client-snapshot")
	b.ReportMetric(perClient, "KiB/idle-client")
	b.ReportMetric((rss1-rss0)/idle, "RSS-KiB/idle-client")
	for _, c := range conns {
		c.Close()
	}
}
