package watch

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	dto "github.com/prometheus/client_model/go"

	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// cpuTime is the process's user and system CPU time so far: the watcher's
// (the fakes run in a process of their own).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// statusMiB reads a size field of /proc/self/status ("VmRSS", "VmHWM") in
// MiB (0 where there is none).
func statusMiB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// benchSwarm is a watcher over the fake engine, whose every task answers
// its probe; both fakes run in a process of their own (startFakes), so the
// benchmark process's memory and CPU time are the watcher's.
type benchSwarm struct {
	fakes *fakes
	w     *Watcher
}

// benchProbeTimeout is the probes' deadline in the benchmarks.
const benchProbeTimeout = time.Second

// reportMemory prints the heap in use and the resident set after a
// collection, with bs's watcher alive (kept so: it would be garbage
// otherwise), and the resident set's peak (the process's so far).
func reportMemory(b *testing.B, bs *benchSwarm) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	runtime.KeepAlive(bs)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap-watcher")
	b.ReportMetric(statusMiB("VmRSS"), "MiB-RSS-watcher")
	b.ReportMetric(statusMiB("VmHWM"), "MiB-RSS-peak-watcher")
}

func newBenchSwarm(b *testing.B, services, tasksPer int) *benchSwarm {
	b.Helper()
	f := startFakes(b, services, tasksPer)
	docker, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(f.engine, "http://")), client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = docker.Close() })
	disc, err := swarm.New(swarm.Config{Networks: []string{"goblog_net"}, CallTimeout: 10 * time.Second}, docker)
	if err != nil {
		b.Fatal(err)
	}
	prober, err := probe.New(probe.Config{Timeout: benchProbeTimeout, MaxBody: 64 << 10, Concurrency: 64, Dial: f.Dial})
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
	return &benchSwarm{fakes: f, w: w}
}

// benchCycle measures re-lists and full probe rounds of services × tasksPer
// simulated tasks, and prints the figures of issue 15: ms per re-list, Engine
// API calls per re-list, ms per probe round, probes per round, the CPU time
// of each (the watcher's, and the fakes' apart), and the watcher's heap and
// resident set.
func benchCycle(b *testing.B, services, tasksPer int) {
	bs := newBenchSwarm(b, services, tasksPer)
	ctx := context.Background()
	f0 := bs.fakes.stats(b, true, time.Time{})
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
	f1 := bs.fakes.stats(b, false, time.Time{})
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
	b.ReportMetric(float64(f1.EngineCalls)/n, "api-calls/relist")
	b.ReportMetric(float64(refreshTime.Microseconds())/1000/n, "ms/relist")
	b.ReportMetric(float64(probeTime.Microseconds())/1000/n, "ms/probe-round")
	b.ReportMetric(float64(refreshCPU.Microseconds())/1000/n, "cpu-ms/relist")
	b.ReportMetric(float64(probeCPU.Microseconds())/1000/n, "cpu-ms/probe-round")
	b.ReportMetric(float64((f1.CPU-f0.CPU).Microseconds())/1000/n, "fakes-cpu-ms/cycle")
	b.ReportMetric(float64(f1.Probes)/n, "probes/round")
	reportMemory(b, bs)
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
// is under 2 s), the longest lateness of a probe behind its turn (the
// swarmwatcher_probe_lateness_seconds histogram's bucket) and the
// watcher's CPU time per round; the probes in flight are bounded by the
// prober's Concurrency (64).
func BenchmarkProbeSchedule10000Tasks(b *testing.B) {
	const services, tasksPer = 200, 50
	bs := newBenchSwarm(b, services, tasksPer)
	ctx, cancel := context.WithCancel(context.Background())
	bs.w.Probe(ctx, true) // every task's first probe, at once
	done := make(chan struct{})
	go func() { bs.w.probeLoop(ctx); close(done) }()
	defer cancel()
	round := func() time.Duration {
		t0 := time.Now()
		for bs.fakes.stats(b, false, t0).ProbedSince < services*tasksPer {
			time.Sleep(50 * time.Millisecond) // each look costs the watcher process a request
		}
		return time.Since(t0)
	}
	// The figures leave out the first round of the loop, which catches up
	// on the turns that passed while every task's first probe ran.
	round()
	bs.fakes.stats(b, true, time.Time{}) // counts from zero
	before := latenessHistogram(b, bs.w)
	b.ResetTimer()
	var rounds time.Duration
	c0 := cpuTime()
	for b.Loop() {
		rounds += round()
	}
	b.StopTimer()
	cpu := cpuTime() - c0
	cancel()
	<-done
	st := bs.fakes.stats(b, false, time.Time{})
	b.ReportMetric(float64(rounds.Microseconds())/1000/float64(b.N), "ms/probe-round")
	// A late round lasts beyond the interval, and the tasks not late are
	// probed again meanwhile: the CPU time per probe compares runs.
	b.ReportMetric(float64(st.Probes)/float64(b.N), "probes/round")
	b.ReportMetric(float64(cpu.Microseconds())/float64(st.Probes), "cpu-µs/probe")
	b.ReportMetric(float64(st.MaxGap.Microseconds())/1000, "max-gap-ms")
	p99, worst := latenessBounds(b, bs.w, before)
	b.ReportMetric(p99, "lateness-p99-le-ms")
	b.ReportMetric(worst, "lateness-max-le-ms")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/probe-round")
	reportMemory(b, bs)
}

// latenessHistogram reads the swarmwatcher_probe_lateness_seconds
// histogram.
func latenessHistogram(b *testing.B, w *Watcher) *dto.Histogram {
	var m dto.Metric
	if err := w.m.probeLateness.Write(&m); err != nil {
		b.Fatal(err)
	}
	return m.GetHistogram()
}

// latenessBounds reads the probes' lateness since the histogram was
// before: the upper bounds (ms) of the buckets holding the 99th percentile
// and the latest probe (-1: beyond the last bucket).
func latenessBounds(b *testing.B, w *Watcher, before *dto.Histogram) (p99, worst float64) {
	h := latenessHistogram(b, w)
	n := h.GetSampleCount() - before.GetSampleCount()
	p99, worst = -1, -1
	for i, bk := range h.GetBucket() {
		c := bk.GetCumulativeCount() - before.GetBucket()[i].GetCumulativeCount()
		if p99 < 0 && float64(c) >= 0.99*float64(n) {
			p99 = bk.GetUpperBound() * 1000
		}
		if c == n {
			worst = bk.GetUpperBound() * 1000
			break
		}
	}
	return p99, worst
}
