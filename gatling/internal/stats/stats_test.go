package stats

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fixedSample records 10 µs, 20 µs, … 1000 µs, all OK, spread over four
// replicas. HDR records values below 2048 µs exactly, so the figures are exact.
func fixedSample(r *Recorder) {
	for i := 1; i <= 100; i++ {
		r.Record(Result{Latency: time.Duration(i*10) * time.Microsecond, OK: true, ServedBy: fmt.Sprintf("10.0.1.%d", i%4+1)})
	}
}

func TestSummaryArithmetic(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	r := NewRecorder(start)
	fixedSample(r)
	r.Record(Result{Latency: 2 * time.Millisecond, Error: "status 503"})
	r.Record(Result{Latency: 2 * time.Millisecond, Error: "status 503"})
	r.Record(Result{Latency: 20 * time.Microsecond, OK: true}) // no servedBy

	s := r.Summary(start.Add(10 * time.Second))
	if s.Requests != (Requests{Total: 103, OK: 101, KO: 2}) {
		t.Fatalf("requests %+v", s.Requests)
	}
	if s.ReqPerSec != 10.3 {
		t.Fatalf("reqPerSec %v, want 10.3", s.ReqPerSec)
	}
	if s.DurationS != 10 || !s.StartedAt.Equal(start) {
		t.Fatalf("durationS %v startedAt %v", s.DurationS, s.StartedAt)
	}
	// 103 sorted values: 10, 20, 20, 30, … 1000, 2000, 2000 µs, so the value
	// k·10 µs is the (k+1)th for k ≥ 2. HDR's percentile q is the value at rank
	// int(q/100·103 + 0.5): p50 → 52nd = 510, p75 → 77th = 760, p95 → 98th = 970,
	// p99 → 102nd = 2000. Sum = 50500 + 20 + 4000 = 54520 µs → mean 529.3 µs.
	want := Latency{Min: 0.01, Mean: 0.529, P50: 0.51, P75: 0.76, P95: 0.97, P99: 2, Max: 2}
	if s.LatencyMs != want {
		t.Fatalf("latency %+v\nwant    %+v", s.LatencyMs, want)
	}
	var sum int64
	for _, v := range s.ServedBy {
		sum += v
	}
	if len(s.ServedBy) != 4 || sum != 100 || s.ServedBy["10.0.1.1"] != 25 || s.ServedByMissing != 1 {
		t.Fatalf("servedBy %v missing %d", s.ServedBy, s.ServedByMissing)
	}
	if s.Errors["status 503"] != 2 || len(s.Errors) != 1 {
		t.Fatalf("errors %v", s.Errors)
	}
	var binned int64
	for i, b := range s.Distribution {
		binned += b.Count
		if b.ToMs <= b.FromMs || (i > 0 && b.FromMs != s.Distribution[i-1].ToMs) {
			t.Fatalf("bin %d %+v not contiguous", i, b)
		}
	}
	if binned != 103 {
		t.Fatalf("distribution holds %d values, want 103", binned)
	}
	if s.Distribution[0].FromMs != 0.01 {
		t.Fatalf("first bin starts at %v, want the minimum 0.01", s.Distribution[0].FromMs)
	}
}

func TestSummaryJSONHasContractFields(t *testing.T) {
	r := NewRecorder(time.Unix(0, 0))
	fixedSample(r)
	b, err := json.Marshal(r.Summary(time.Unix(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "reqPerSec", "latencyMs", "servedBy", "startedAt", "durationS"} {
		if _, ok := m[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, b)
		}
	}
	lat := m["latencyMs"].(map[string]any)
	for _, k := range []string{"min", "mean", "p50", "p75", "p95", "p99", "max"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latencyMs lacks number %q", k)
		}
	}
	req := m["requests"].(map[string]any)
	if req["total"] != 100.0 || req["ok"] != 100.0 || req["ko"] != 0.0 {
		t.Errorf("requests %v", req)
	}
}

func TestTickTimeline(t *testing.T) {
	start := time.Unix(1000, 0)
	r := NewRecorder(start)
	for i := 1; i <= 10; i++ {
		r.Record(Result{Latency: time.Duration(i) * 100 * time.Microsecond, OK: true, ServedBy: "a"})
	}
	p, ok := r.Tick(start.Add(time.Second), 7)
	if !ok {
		t.Fatal("tick not recorded")
	}
	want := Point{T: 1, Requests: 10, OK: 10, ReqPerSec: 10, Users: 7, P50Ms: 0.5, P95Ms: 1, P99Ms: 1, MaxMs: 1}
	if p != want {
		t.Fatalf("point %+v\nwant  %+v", p, want)
	}
	r.Record(Result{Latency: 3 * time.Millisecond, Error: "timeout"})
	p, _ = r.Tick(start.Add(1500*time.Millisecond), 0)
	// Above 2048 µs HDR keeps 3 significant figures: 3000 µs reads back as the
	// top of its 2 µs bucket.
	if p.T != 1.5 || p.Requests != 1 || p.KO != 1 || p.ReqPerSec != 2 || p.MaxMs != 3.001 {
		t.Fatalf("second point %+v", p)
	}
	if _, ok := r.Tick(start.Add(1500*time.Millisecond), 0); ok {
		t.Fatal("an empty zero-length interval was recorded")
	}
	if pr := r.Progress(); pr.Requests.Total != 11 || pr.Requests.KO != 1 || pr.P99Ms != 3.001 {
		t.Fatalf("progress %+v", pr)
	}
	if tl := r.Summary(start.Add(2 * time.Second)).Timeline; len(tl) != 2 {
		t.Fatalf("timeline has %d points, want 2", len(tl))
	}
}

func TestRecordClampsAndIsConcurrent(t *testing.T) {
	r := NewRecorder(time.Unix(0, 0))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				r.Record(Result{Latency: time.Duration(g*i) * time.Microsecond, OK: true, ServedBy: "x"})
			}
		}()
	}
	wg.Wait()
	r.Record(Result{Latency: 2 * time.Hour, Error: "timeout"}) // beyond the trackable range
	s := r.Summary(time.Unix(10, 0))
	if s.Requests.Total != 4001 || s.ServedBy["x"] != 4000 {
		t.Fatalf("summary %+v", s.Requests)
	}
	if s.LatencyMs.Min != 0.001 {
		t.Fatalf("min %v, want clamped to 1 µs", s.LatencyMs.Min)
	}
}

func TestShares(t *testing.T) {
	got := Shares(map[string]int64{"b": 25, "a": 25, "c": 50})
	want := []ServedByShare{{"c", 50, 50}, {"a", 25, 25}, {"b", 25, 25}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shares %v, want %v", got, want)
	}
	if len(Shares(nil)) != 0 {
		t.Fatal("shares of nothing")
	}
}
