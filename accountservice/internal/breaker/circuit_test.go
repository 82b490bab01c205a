package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goblog/goblog/accountservice/internal/quote"
)

// clock is a settable time for the breaker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// switchable answers or fails as told.
type switchable struct {
	fail  bool
	calls int
}

func (s *switchable) Fetch(context.Context) (quote.Quote, error) {
	s.calls++
	if s.fail {
		return quote.Quote{}, errors.New("503")
	}
	return quote.Quote{Text: "real"}, nil
}

func TestOpenCircuitLetsOneTrialThroughPerSleepWindowAndClosesOnSuccess(t *testing.T) {
	clk := &clock{t: time.Unix(1_000_000, 0)}
	q := &switchable{fail: true}
	b := New(q, Config{RequestVolume: 4, ErrorPercent: 50, SleepWindow: 5 * time.Second, Now: clk.now})
	for range 4 {
		_, _ = b.Fetch(context.Background())
	}
	_, _ = b.Fetch(context.Background()) // opens the circuit: short circuited
	if !b.IsOpen() || q.calls != 4 {
		t.Fatalf("after 4 failures: open %v, %d calls reached quotes-service, want open and 4", b.IsOpen(), q.calls)
	}
	clk.add(5 * time.Second) // not yet past the window
	_, _ = b.Fetch(context.Background())
	if q.calls != 4 {
		t.Fatalf("a call within the sleep window reached quotes-service")
	}
	clk.add(time.Second)
	_, _ = b.Fetch(context.Background()) // the trial, failing: stays open
	_, _ = b.Fetch(context.Background()) // no second trial in the same window
	if q.calls != 5 || !b.IsOpen() {
		t.Fatalf("failed trial: %d calls, open %v; want 5 calls and still open", q.calls, b.IsOpen())
	}
	q.fail = false
	clk.add(6 * time.Second)
	if got, _ := b.Fetch(context.Background()); got.Text != "real" {
		t.Fatalf("trial after the window: %q, want the real quote", got.Text)
	}
	if b.IsOpen() {
		t.Fatal("a successful trial must close the circuit")
	}
	if got, _ := b.Fetch(context.Background()); got.Text != "real" || q.calls != 7 {
		t.Fatalf("after closing: %q, %d calls", got.Text, q.calls)
	}
}

// The stream's counts are the calls of the last 10 s, in hystrix-go's field names.
func TestSampleCountsTheWindowInHystrixFields(t *testing.T) {
	clk := &clock{t: time.Unix(2_000_000, 0)}
	q := &switchable{}
	b := New(q, Config{RequestVolume: 100, Now: clk.now})
	for range 3 {
		_, _ = b.Fetch(context.Background())
	}
	q.fail = true
	for range 2 {
		_, _ = b.Fetch(context.Background())
	}
	var cmd, pool map[string]any
	for _, ev := range strings.Split(strings.TrimSpace(string(b.Sample())), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data:")
		if !ok {
			t.Fatalf("event %q has no data: prefix", ev)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatal(err)
		}
		switch m["type"] {
		case "HystrixCommand":
			cmd = m
		case "HystrixThreadPool":
			pool = m
		}
	}
	want := map[string]float64{
		"requestCount": 5, "errorCount": 2, "errorPercentage": 40, "rollingCountSuccess": 3,
		"rollingCountFailure": 2, "rollingCountFallbackSuccess": 2, "rollingCountTimeout": 0,
		"reportingHosts": 1, "propertyValue_metricsRollingStatisticalWindowInMilliseconds": 10000,
		"propertyValue_circuitBreakerRequestVolumeThreshold": 100,
	}
	for k, v := range want {
		if cmd[k] != v {
			t.Errorf("HystrixCommand %s = %v, want %v", k, cmd[k], v)
		}
	}
	for _, k := range []string{"latencyExecute", "latencyTotal"} {
		if _, ok := cmd[k].(map[string]any)["99.5"]; !ok {
			t.Errorf("HystrixCommand %s = %v: no 99.5 percentile", k, cmd[k])
		}
	}
	if cmd["name"] != Command || cmd["isCircuitBreakerOpen"] != false {
		t.Errorf("HystrixCommand = %v", cmd)
	}
	if pool["name"] != Command || pool["rollingCountThreadsExecuted"] != 5.0 || pool["currentPoolSize"] != 1000.0 {
		t.Errorf("HystrixThreadPool = %v", pool)
	}
	clk.add(10 * time.Second) // the window has moved past them
	if cmd, _ := b.Samples(); cmd.RequestCount != 0 || cmd.RollingCountSuccess != 0 {
		t.Errorf("10 s later: %d requests, %d successes, want 0", cmd.RequestCount, cmd.RollingCountSuccess)
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	for ms := int64(0); ms < 100; ms++ { // 0 … 99 ms, one each
		h.add(ms)
	}
	h.add(7000)
	for _, tc := range []struct {
		p    float64
		want uint32
	}{{0, 0}, {25, 20}, {50, 40}, {90, 80}, {99, 90}, {100, 7000}} { // the lower bound of the bin holding the rank (25th value: 24 ms, in 20-24)
		if got := h.percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %d ms, want %d", tc.p, got, tc.want)
		}
	}
	if m := h.mean(); m != (99*100/2+7000)/101 {
		t.Errorf("mean %d", m)
	}
}

// BenchmarkFetch is the breaker's own cost per call (the quote call answers at once).
func BenchmarkFetch(b *testing.B) {
	br := New(&constant{}, Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = br.Fetch(context.Background())
		}
	})
}

type constant struct{}

func (constant) Fetch(context.Context) (quote.Quote, error) { return quote.Quote{Text: "q"}, nil }
