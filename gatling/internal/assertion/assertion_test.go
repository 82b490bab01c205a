package assertion

import (
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/gatling/internal/stats"
)

func TestParse(t *testing.T) {
	good := []struct {
		expr      string
		metric    string
		op        string
		threshold float64
		percent   bool
	}{
		{"ko=0", "ko", "=", 0, false},
		{"ko==0", "ko", "=", 0, false},
		{" ko = 0 ", "ko", "=", 0, false},
		{"ko<1%", "ko", "<", 1, true},
		{"ok>=99.5%", "ok", ">=", 99.5, true},
		{"ok>=1000", "ok", ">=", 1000, false},
		{"requests>0", "requests", ">", 0, false},
		{"ko!=3", "ko", "!=", 3, false},
		{"p99<5ms", "p99", "<", 5, false},
		{"p95<=800ms", "p95", "<=", 800, false},
		{"p50 < 5 ms", "p50", "<", 5, false},
		{"mean<100ms", "mean", "<", 100, false},
		{"max<1.5s", "max", "<", 1500, false},
		{"min>250us", "min", ">", 0.25, false},
		{"p75>=0s", "p75", ">=", 0, false},
		{"reqPerSec>=990", "reqPerSec", ">=", 990, false},
		{"okPerSec>12.5", "okPerSec", ">", 12.5, false},
	}
	for _, tt := range good {
		a, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		if a.Metric != tt.metric || a.Op != tt.op || a.Threshold != tt.threshold || a.Percent != tt.percent || a.Expr != strings.TrimSpace(tt.expr) {
			t.Errorf("Parse(%q) = %+v", tt.expr, a)
		}
	}

	bad := []struct{ expr, want string }{
		{"", "empty assertion"},
		{"   ", "empty assertion"},
		{"p99", "no comparison"},
		{"p99 5ms", "no comparison"},
		{"<5ms", "no metric"},
		{"p98<5ms", `unknown metric "p98"`},
		{"P99<5ms", `unknown metric "P99"`},
		{"latency<5ms", "unknown metric"},
		{"p99<", "no value"},
		{"p99<<5ms", "more than one comparison"},
		{"p99=<5ms", "more than one comparison"},
		{"ko<1<2", "more than one comparison"},
		{"p99<5", "needs a unit"},
		{"p99<5parsecs", "not a duration"},
		{"p99<-5ms", "not a duration"},
		{"p99<5%", "not a duration"},
		{"ko=-1", "not a count"},
		{"ko=1.5", "not a count"},
		{"ko=x", "not a count"},
		{"ko<101%", "not a percentage"},
		{"ko<-1%", "not a percentage"},
		{"ko<x%", "not a percentage"},
		{"requests>10%", "not a percentage"},
		{"reqPerSec>=fast", "not a rate"},
		{"reqPerSec>=-1", "not a rate"},
		{"reqPerSec>=NaN", "not a rate"},
		{"reqPerSec>=5ms", "not a rate"},
	}
	for _, tt := range bad {
		_, err := Parse(tt.expr)
		if err == nil {
			t.Errorf("Parse(%q) accepted", tt.expr)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q): %v; want it to say %q", tt.expr, err, tt.want)
		}
		if strings.TrimSpace(tt.expr) != "" && !strings.Contains(err.Error(), strings.TrimSpace(tt.expr)) {
			t.Errorf("Parse(%q): %v does not name the expression", tt.expr, err)
		}
	}
}

// summary records ok answers of okLatency and ko refusals over 10 s.
func summary(ok int, okLatency time.Duration, ko int) stats.Summary {
	start := time.Unix(0, 0)
	r := stats.NewRecorder(start)
	for range ok {
		r.Record(stats.Result{Latency: okLatency, OK: true, ServedBy: "a"})
	}
	for range ko {
		r.Record(stats.Result{Latency: 500 * time.Microsecond, Error: "connection refused"})
	}
	return r.Summary(start.Add(10 * time.Second))
}

func TestCheck(t *testing.T) {
	healthy := summary(100, 1500*time.Microsecond, 0) // 10 req/s, every latency 1.5 ms
	mixed := summary(99, 1500*time.Microsecond, 1)
	refused := summary(0, 0, 75)
	empty := summary(0, 0, 0)
	tests := []struct {
		expr   string
		s      stats.Summary
		passed bool
		detail string
	}{
		{"ko=0", healthy, true, "ko 0 of 100 requests"},
		{"ko=0", mixed, false, "ko 1 of 100 requests"},
		{"ko=0", refused, false, "ko 75 of 75 requests"},
		{"ko<1%", mixed, false, "ko 1 %, 1 of 100 requests"},
		{"ko<=1%", mixed, true, "ko 1 %, 1 of 100 requests"},
		{"ko<1%", empty, false, "ko % not measured: no requests"},
		{"ok>=99%", mixed, true, "ok 99 %, 99 of 100 requests"},
		{"ok>=1000", healthy, false, "ok 100 of 100 requests"},
		{"ok>=100", healthy, true, "ok 100 of 100 requests"},
		{"requests>0", refused, true, "requests 75"},
		{"requests>0", empty, false, "requests 0"},
		{"ko!=0", refused, true, "ko 75 of 75 requests"},
		{"p99<5ms", healthy, true, "p99 1.5 ms"},
		{"p99<1ms", healthy, false, "p99 1.5 ms"},
		{"p99<=1.5ms", healthy, true, "p99 1.5 ms"},
		{"p99>1.5ms", healthy, false, "p99 1.5 ms"},
		{"mean=1500us", healthy, true, "mean 1.5 ms"},
		{"max<1s", healthy, true, "max 1.5 ms"},
		// A latency assertion with no OK response fails; the KO refusals'
		// 0.5 ms never count as fast answers.
		{"p99<5ms", refused, false, "p99 not measured: no OK responses"},
		{"max>=0ms", refused, false, "max not measured: no OK responses"},
		{"reqPerSec>=10", healthy, true, "reqPerSec 10"},
		{"reqPerSec>=990", healthy, false, "reqPerSec 10"},
		{"reqPerSec>=7", refused, true, "reqPerSec 7.5"},
		{"okPerSec>0", refused, false, "okPerSec 0"},
		{"okPerSec>=9.9", mixed, true, "okPerSec 9.9"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.expr)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.expr, err)
		}
		r := a.Check(tt.s)
		if r.Passed != tt.passed || r.Detail != tt.detail || r.Expression != tt.expr {
			t.Errorf("%s on %+v: %+v, want passed %v detail %q", tt.expr, tt.s.Requests, r, tt.passed, tt.detail)
		}
		if (r.Actual == nil) != strings.Contains(tt.detail, "not measured") {
			t.Errorf("%s: actual %v with detail %q", tt.expr, r.Actual, r.Detail)
		}
	}
}

func TestCheckAllAndString(t *testing.T) {
	var as []Assertion
	for _, e := range []string{"ko=0", "p99<5ms"} {
		a, err := Parse(e)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	rs, passed := CheckAll(as, summary(10, 1210*time.Microsecond, 0))
	if !passed || len(rs) != 2 {
		t.Fatalf("%v %v", rs, passed)
	}
	if got := rs[1].String(); got != "assertion p99<5ms: passed (p99 1.21 ms)" {
		t.Fatalf("line %q", got)
	}
	rs, passed = CheckAll(as, summary(0, 0, 75))
	if passed || rs[0].Passed || rs[1].Passed {
		t.Fatalf("refused run passed: %v", rs)
	}
	if got := rs[1].String(); got != "assertion p99<5ms: failed (p99 not measured: no OK responses)" {
		t.Fatalf("line %q", got)
	}
	if rs, passed := CheckAll(nil, summary(0, 0, 75)); !passed || rs != nil {
		t.Fatalf("no assertions: %v %v", rs, passed)
	}
}
