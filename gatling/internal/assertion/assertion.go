// Package assertion parses and checks the load test's -assert expressions,
// in the spirit of Gatling's assertions: a metric, a comparison and a
// threshold, checked against the run's summary once it has ended.
//
//	ko=0  ko<1%  ok>=1000  requests>0  reqPerSec>=990  okPerSec>=990
//	p99<5ms  p95<=800ms  mean<100ms  max<1.5s
//
// Latency metrics (min, mean, p50, p75, p95, p99, max) are over OK responses
// only; with no OK response they fail rather than pass vacuously. Count
// metrics (requests, ok, ko) take a count or, for ok and ko, a percentage of
// all requests (which fails when there was no request).
package assertion

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goblog/goblog/gatling/internal/stats"
)

// Metric kinds.
type kind int

const (
	kindCount kind = iota
	kindRate
	kindLatency
)

var metrics = map[string]kind{
	"requests": kindCount, "ok": kindCount, "ko": kindCount,
	"reqPerSec": kindRate, "okPerSec": kindRate,
	"min": kindLatency, "mean": kindLatency, "p50": kindLatency, "p75": kindLatency,
	"p95": kindLatency, "p99": kindLatency, "max": kindLatency,
}

// Metrics lists the metric names an expression may use, for usage texts.
const Metrics = "requests, ok, ko (a count, or N% of requests for ok and ko); reqPerSec, okPerSec (per second over the whole run); min, mean, p50, p75, p95, p99, max (a duration such as 5ms or 1.2s, over OK responses)"

// operators, longest first so "<=" is not read as "<".
var operators = []string{"<=", ">=", "==", "!=", "<", ">", "="}

// Assertion is one parsed expression.
type Assertion struct {
	// Expr is the expression as given, spaces trimmed.
	Expr      string
	Metric    string
	Op        string // one of <, <=, >, >=, =, !=  ("==" is read as "=")
	Threshold float64
	// Percent is true for a count given as a percentage of all requests.
	Percent bool
	kind    kind
}

// Parse reads one expression such as "p99<5ms" or "ko<1%".
func Parse(expr string) (Assertion, error) {
	a := Assertion{Expr: strings.TrimSpace(expr)}
	if a.Expr == "" {
		return a, errors.New("empty assertion: want METRIC OP VALUE, e.g. p99<5ms")
	}
	at, op := -1, ""
	for _, o := range operators {
		if i := strings.Index(a.Expr, o); i >= 0 && (at < 0 || i < at || (i == at && len(o) > len(op))) {
			at, op = i, o
		}
	}
	if at < 0 {
		return a, fmt.Errorf("assertion %q: no comparison (<, <=, >, >=, =, !=): want METRIC OP VALUE, e.g. p99<5ms", a.Expr)
	}
	a.Metric = strings.TrimSpace(a.Expr[:at])
	value := strings.TrimSpace(a.Expr[at+len(op):])
	if op == "==" {
		op = "="
	}
	a.Op = op
	k, ok := metrics[a.Metric]
	if !ok {
		if a.Metric == "" {
			return a, fmt.Errorf("assertion %q: no metric before %s; metrics: %s", a.Expr, op, Metrics)
		}
		return a, fmt.Errorf("assertion %q: unknown metric %q; metrics: %s", a.Expr, a.Metric, Metrics)
	}
	a.kind = k
	if value == "" {
		return a, fmt.Errorf("assertion %q: no value after %s", a.Expr, op)
	}
	if strings.ContainsAny(value, "<>=!") {
		return a, fmt.Errorf("assertion %q: more than one comparison", a.Expr)
	}
	switch k {
	case kindCount:
		if num, found := strings.CutSuffix(value, "%"); found {
			if a.Metric == "requests" {
				return a, fmt.Errorf("assertion %q: requests is a count, not a percentage", a.Expr)
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
				return a, fmt.Errorf("assertion %q: %q is not a percentage from 0%% to 100%%", a.Expr, value)
			}
			a.Threshold, a.Percent = f, true
			return a, nil
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 0 {
			return a, fmt.Errorf("assertion %q: %q is not a count (0, 1, …) or a percentage (1%%)", a.Expr, value)
		}
		a.Threshold = float64(n)
	case kindRate:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return a, fmt.Errorf("assertion %q: %q is not a rate (a number of requests per second, e.g. 990)", a.Expr, value)
		}
		a.Threshold = f
	case kindLatency:
		value = strings.ReplaceAll(value, " ", "") // "5 ms" reads as 5ms
		if _, err := strconv.ParseFloat(value, 64); err == nil {
			return a, fmt.Errorf("assertion %q: %q needs a unit (e.g. %sms or %ss)", a.Expr, value, value, value)
		}
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return a, fmt.Errorf("assertion %q: %q is not a duration (e.g. 5ms, 800us, 1.2s)", a.Expr, value)
		}
		a.Threshold = float64(d) / float64(time.Millisecond)
	}
	return a, nil
}

// Result is the outcome of one assertion, as stats.json records it.
type Result struct {
	Expression string `json:"expression"`
	Passed     bool   `json:"passed"`
	// Actual is the measured value in the metric's unit (ms for latencies,
	// percent for a percentage); null when there was nothing to measure.
	Actual *float64 `json:"actual"`
	// Detail says what was measured, e.g. "p99 3.21 ms" or
	// "ko 75 of 75 requests (100 %)".
	Detail string `json:"detail"`
}

// String is the line the summary prints.
func (r Result) String() string {
	verdict := "failed"
	if r.Passed {
		verdict = "passed"
	}
	return fmt.Sprintf("assertion %s: %s (%s)", r.Expression, verdict, r.Detail)
}

// Check evaluates a against the summary of a run.
func (a Assertion) Check(s stats.Summary) Result {
	r := Result{Expression: a.Expr}
	var v float64
	switch a.kind {
	case kindCount:
		n := map[string]int64{"requests": s.Requests.Total, "ok": s.Requests.OK, "ko": s.Requests.KO}[a.Metric]
		if a.Percent {
			if s.Requests.Total == 0 {
				r.Detail = fmt.Sprintf("%s %% not measured: no requests", a.Metric)
				return r
			}
			v = round2(100 * float64(n) / float64(s.Requests.Total))
			r.Detail = fmt.Sprintf("%s %s %%, %d of %d requests", a.Metric, num(v), n, s.Requests.Total)
		} else {
			v = float64(n)
			r.Detail = fmt.Sprintf("%s %d of %d requests", a.Metric, n, s.Requests.Total)
			if a.Metric == "requests" {
				r.Detail = fmt.Sprintf("requests %d", n)
			}
		}
	case kindRate:
		v = s.ReqPerSec
		if a.Metric == "okPerSec" {
			v = 0
			if s.DurationS > 0 {
				v = round2(float64(s.Requests.OK) / s.DurationS)
			}
		}
		r.Detail = fmt.Sprintf("%s %s", a.Metric, num(v))
	case kindLatency:
		ms, ok := s.LatencyMs.Get(a.Metric)
		if !ok {
			r.Detail = fmt.Sprintf("%s not measured: no OK responses", a.Metric)
			return r
		}
		v = ms
		r.Detail = fmt.Sprintf("%s %s ms", a.Metric, num(v))
	}
	r.Actual = &v
	r.Passed = compare(v, a.Op, a.Threshold)
	return r
}

func compare(v float64, op string, t float64) bool {
	switch op {
	case "<":
		return v < t
	case "<=":
		return v <= t
	case ">":
		return v > t
	case ">=":
		return v >= t
	case "=":
		return v == t
	case "!=":
		return v != t
	}
	return false
}

// CheckAll evaluates every assertion; passed is true when all of them did.
func CheckAll(as []Assertion, s stats.Summary) (rs []Result, passed bool) {
	passed = true
	for _, a := range as {
		r := a.Check(s)
		passed = passed && r.Passed
		rs = append(rs, r)
	}
	return rs, passed
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

// num prints v without trailing zeros: 3.21, 0, 1000, 99.5.
func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
