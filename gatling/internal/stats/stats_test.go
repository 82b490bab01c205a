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
	// OK: 101 sorted values: 10, 20, 20, 30, … 1000 µs, so the value k·10 µs
	// is the (k+1)th for k ≥ 2. HDR's percentile q is the value at rank
	// int(q/100·101 + 0.5): p50 → 51st = 500, p75 → 76th = 750, p95 → 96th =
	// 950, p99 → 100th = 990. Sum = 50500 + 20 = 50520 µs → mean 500.2 µs.
	// The two KO answers of 2 ms are not among them.
	want := []float64{0.01, 0.5, 0.5, 0.75, 0.95, 0.99, 1}
	if got := figures(t, s.LatencyMs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("OK latency %v\nwant       %v", got, want)
	}
	if got := figures(t, s.KOLatencyMs); fmt.Sprint(got) != fmt.Sprint([]float64{2, 2, 2, 2, 2, 2, 2}) {
		t.Fatalf("KO latency %v, want 2 ms throughout", got)
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
	if binned != 101 {
		t.Fatalf("distribution holds %d values, want the 101 OK ones", binned)
	}
	if s.Distribution[0].FromMs != 0.01 {
		t.Fatalf("first bin starts at %v, want the minimum 0.01", s.Distribution[0].FromMs)
	}
}

// figures lists the seven figures of l in LatencyNames' order; all must be
// measured.
func figures(t *testing.T, l Latency) []float64 {
	t.Helper()
	var out []float64
	for _, name := range LatencyNames {
		v, ok := l.Get(name)
		if !ok {
			t.Fatalf("latency %s not measured: %+v", name, l)
		}
		out = append(out, v)
	}
	return out
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
	ko := m["koLatencyMs"].(map[string]any)
	for _, k := range []string{"min", "mean", "p50", "p75", "p95", "p99", "max"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latencyMs lacks number %q", k)
		}
		if v, ok := ko[k]; !ok || v != nil {
			t.Errorf("koLatencyMs.%s = %v (present %v), want null: no KO response", k, v, ok)
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
	if got := pointText(p); got != "t=1 n=10 ok=10 ko=0 rps=10 users=7 p50=0.5 p95=1 p99=1 max=1" {
		t.Fatalf("point %s", got)
	}
	// An interval of KO only has no latency: the timeouts are not OK figures.
	r.Record(Result{Latency: 3 * time.Millisecond, Error: "timeout"})
	p, _ = r.Tick(start.Add(1500*time.Millisecond), 0)
	if got := pointText(p); got != "t=1.5 n=1 ok=0 ko=1 rps=2 users=0 p50=- p95=- p99=- max=-" {
		t.Fatalf("second point %s", got)
	}
	if _, ok := r.Tick(start.Add(1500*time.Millisecond), 0); ok {
		t.Fatal("an empty zero-length interval was recorded")
	}
	// Above 2048 µs HDR keeps 3 significant figures: 3000 µs reads back as the
	// top of its 2 µs bucket.
	r.Record(Result{Latency: 3 * time.Millisecond, OK: true})
	if pr := r.Progress(); pr.Requests.Total != 12 || pr.Requests.KO != 1 || pr.P99Ms == nil || *pr.P99Ms != 3.001 {
		t.Fatalf("progress %+v", pr)
	}
	if tl := r.Summary(start.Add(2 * time.Second)).Timeline; len(tl) != 2 {
		t.Fatalf("timeline has %d points, want 2", len(tl))
	}
}

func pointText(p Point) string {
	f := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprintf("t=%v n=%d ok=%d ko=%d rps=%v users=%d p50=%s p95=%s p99=%s max=%s",
		p.T, p.Requests, p.OK, p.KO, p.ReqPerSec, p.Users, f(p.P50Ms), f(p.P95Ms), f(p.P99Ms), f(p.MaxMs))
}

// TestSplitHistograms: OK and KO latencies never mix, and a run without OK
// responses has no OK figures at all (JSON null), not zeros.
func TestSplitHistograms(t *testing.T) {
	start := time.Unix(0, 0)
	r := NewRecorder(start)
	for range 75 {
		r.Record(Result{Latency: 850 * time.Microsecond, Error: "connection refused"})
	}
	s := r.Summary(start.Add(10 * time.Second))
	if s.LatencyMs.Measured() || s.Distribution != nil {
		t.Fatalf("OK latency %+v distribution %v from KO answers only", s.LatencyMs, s.Distribution)
	}
	if got := figures(t, s.KOLatencyMs); fmt.Sprint(got) != fmt.Sprint([]float64{0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85}) {
		t.Fatalf("KO latency %v", got)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		LatencyMs map[string]any `json:"latencyMs"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.LatencyMs) != 7 {
		t.Fatalf("latencyMs %v: want the seven fields", m.LatencyMs)
	}
	for k, v := range m.LatencyMs {
		if v != nil {
			t.Errorf("latencyMs.%s = %v, want null", k, v)
		}
	}
	if pr := r.Progress(); pr.P99Ms != nil {
		t.Errorf("progress p99 %v with no OK response", *pr.P99Ms)
	}

	// One OK answer later: the OK figures are its own, the KO ones unchanged.
	r.Record(Result{Latency: 2 * time.Millisecond, OK: true, ServedBy: "a"})
	s = r.Summary(start.Add(10 * time.Second))
	if got := figures(t, s.LatencyMs); fmt.Sprint(got) != fmt.Sprint([]float64{2, 2, 2, 2, 2, 2, 2}) {
		t.Fatalf("OK latency %v, want 2 ms", got)
	}
	if v, _ := s.KOLatencyMs.Get("max"); v != 0.85 {
		t.Fatalf("KO max %v, want 0.85", v)
	}
}

// TestRanges: Gatling's ranges on a fixed sample, the bounds exact (799.999 ms
// is fast, 800 ms medium, 1200 ms slow) and KO failed whatever its time.
func TestRanges(t *testing.T) {
	start := time.Unix(0, 0)
	r := NewRecorder(start)
	rec := func(n int, d time.Duration, ok bool) {
		for range n {
			r.Record(Result{Latency: d, OK: ok, Error: map[bool]string{false: "status 500"}[ok]})
		}
	}
	rec(5, time.Millisecond, true)
	rec(1, 800*time.Millisecond-time.Microsecond, true)
	rec(1, 800*time.Millisecond, true)
	rec(1, 1200*time.Millisecond-time.Microsecond, true)
	rec(1, 1200*time.Millisecond, true)
	rec(2, 5*time.Second, true)
	rec(3, time.Millisecond, false)
	rec(2, 2*time.Second, false)
	want := []Range{
		{RangeFast, 6, 37.5},
		{RangeMedium, 2, 12.5},
		{RangeSlow, 3, 18.75},
		{RangeFailed, 5, 31.25},
	}
	got := r.Summary(start.Add(time.Second)).Ranges
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ranges %v\nwant   %v", got, want)
	}
	if got := Ranges([3]int64{}, 0); len(got) != 4 || got[0].Percentage != 0 || got[3].Name != "failed" {
		t.Fatalf("ranges of nothing %v", got)
	}
	// Percentages round to two decimals: 1 of 3 is 33.33 %.
	if got := Ranges([3]int64{1, 1, 1}, 0); got[0].Percentage != 33.33 {
		t.Fatalf("1 of 3: %v", got)
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
	if v, _ := s.LatencyMs.Get("min"); v != 0.001 {
		t.Fatalf("min %v, want clamped to 1 µs", v)
	}
	if v, _ := s.KOLatencyMs.Get("max"); v < 3_600_000 {
		t.Fatalf("KO max %v ms, want clamped to an hour", v)
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
