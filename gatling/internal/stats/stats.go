// Package stats records the load test's results in HDR histograms and turns
// them into the figures of the summary, the timeline and the report's
// stats.json.
package stats

import (
	"math"
	"sort"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to one hour, with three
// significant figures (values below 2048 µs are exact, above within 0.1 %).
const (
	lowestUS  = 1
	highestUS = int64(time.Hour / time.Microsecond)
	sigFigs   = 3
)

// Result is the outcome of one request.
type Result struct {
	// Latency from sending the request to having read the response body.
	Latency time.Duration
	// OK is true when the check passed (status 200).
	OK bool
	// Error names why a request is KO ("status 503", "timeout", ...); empty when OK.
	Error string
	// ServedBy is the servedBy field of the JSON answer, empty when absent.
	ServedBy string
}

// Response-time ranges, as Gatling's defaults (gatling.conf
// charting.indicators lowerBound and higherBound): OK responses faster than
// RangeLower, up to RangeHigher, and slower; KO responses count as failed
// whatever their time.
const (
	RangeLower  = 800 * time.Millisecond
	RangeHigher = 1200 * time.Millisecond
)

// Names of the four ranges, in their order in Summary.Ranges.
const (
	RangeFast   = "t < 800 ms"
	RangeMedium = "800 ms <= t < 1200 ms"
	RangeSlow   = "t >= 1200 ms"
	RangeFailed = "failed"
)

// Point is one interval of the timeline. Its latencies are over the OK
// responses of the interval and nil (JSON null) when there were none.
type Point struct {
	// T is the end of the interval, in seconds since the start of the run.
	T         float64  `json:"t"`
	Requests  int64    `json:"requests"`
	OK        int64    `json:"ok"`
	KO        int64    `json:"ko"`
	ReqPerSec float64  `json:"reqPerSec"`
	Users     int64    `json:"users"`
	P50Ms     *float64 `json:"p50Ms"`
	P95Ms     *float64 `json:"p95Ms"`
	P99Ms     *float64 `json:"p99Ms"`
	MaxMs     *float64 `json:"maxMs"`
}

// Latency holds latency figures in milliseconds over one kind of response
// (OK or KO). Every field is nil, JSON null, when there was no such response:
// a run where every request was refused has no OK latency, not a fast one.
type Latency struct {
	Min  *float64 `json:"min"`
	Mean *float64 `json:"mean"`
	P50  *float64 `json:"p50"`
	P75  *float64 `json:"p75"`
	P95  *float64 `json:"p95"`
	P99  *float64 `json:"p99"`
	Max  *float64 `json:"max"`
}

// LatencyNames are the figures of a Latency, in order.
var LatencyNames = []string{"min", "mean", "p50", "p75", "p95", "p99", "max"}

// Get returns the figure named as in LatencyNames (or its JSON field); ok is
// false for an unknown name or a figure that was not measured.
func (l Latency) Get(name string) (ms float64, ok bool) {
	var p *float64
	switch name {
	case "min":
		p = l.Min
	case "mean":
		p = l.Mean
	case "p50":
		p = l.P50
	case "p75":
		p = l.P75
	case "p95":
		p = l.P95
	case "p99":
		p = l.P99
	case "max":
		p = l.Max
	}
	if p == nil {
		return 0, false
	}
	return *p, true
}

// Measured says whether the figures exist (there was at least one response).
func (l Latency) Measured() bool { return l.Max != nil }

// Requests counts requests by outcome.
type Requests struct {
	Total int64 `json:"total"`
	OK    int64 `json:"ok"`
	KO    int64 `json:"ko"`
}

// Range is one of Gatling's response-time ranges: Count responses, which
// are Percentage percent of all requests.
type Range struct {
	Name       string  `json:"name"`
	Count      int64   `json:"count"`
	Percentage float64 `json:"percentage"`
}

// Bin is one bar of the latency distribution: Count requests took
// between FromMs (inclusive) and ToMs (exclusive).
type Bin struct {
	FromMs float64 `json:"fromMs"`
	ToMs   float64 `json:"toMs"`
	Count  int64   `json:"count"`
}

// Summary is everything the recorder knows at one moment. Its JSON form is
// the contract's stats.json (the report adds the run's settings).
type Summary struct {
	Requests  Requests `json:"requests"`
	ReqPerSec float64  `json:"reqPerSec"`
	// LatencyMs is over OK responses only, KOLatencyMs over KO ones.
	LatencyMs   Latency          `json:"latencyMs"`
	KOLatencyMs Latency          `json:"koLatencyMs"`
	ServedBy    map[string]int64 `json:"servedBy"`
	StartedAt   time.Time        `json:"startedAt"`
	DurationS   float64          `json:"durationS"`
	// Ranges are Gatling's response-time ranges, always four, in the order
	// RangeFast, RangeMedium, RangeSlow, RangeFailed.
	Ranges []Range `json:"ranges"`
	// ServedByMissing counts OK answers that named no servedBy.
	ServedByMissing int64            `json:"servedByMissing"`
	Errors          map[string]int64 `json:"errors"`
	Timeline        []Point          `json:"timeline"`
	// Distribution is over OK responses.
	Distribution []Bin `json:"distribution"`
}

// Recorder collects results from many goroutines. The zero value is not
// usable: use NewRecorder.
type Recorder struct {
	mu         sync.Mutex
	start      time.Time
	lastTick   time.Time
	ok, ko     *hdrhistogram.Histogram // the whole run, by outcome
	intervalOK *hdrhistogram.Histogram // OK responses of the current interval
	req        Requests
	iOK, iKO   int64
	ranges     [3]int64 // OK responses per range, counted from the exact latency
	servedBy   map[string]int64
	missing    int64
	errors     map[string]int64
	timeline   []Point
}

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(lowestUS, highestUS, sigFigs) }

// NewRecorder starts a recorder whose clock begins at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{
		start:      start,
		lastTick:   start,
		ok:         newHistogram(),
		ko:         newHistogram(),
		intervalOK: newHistogram(),
		servedBy:   map[string]int64{},
		errors:     map[string]int64{},
	}
}

// Record adds one result.
func (r *Recorder) Record(res Result) {
	us := res.Latency.Microseconds()
	if us < lowestUS {
		us = lowestUS
	}
	if us > highestUS {
		us = highestUS
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.req.Total++
	if res.OK {
		// Cannot fail: us is clamped to the trackable range.
		_ = r.ok.RecordValue(us)
		_ = r.intervalOK.RecordValue(us)
		r.req.OK++
		r.iOK++
		switch {
		case res.Latency < RangeLower:
			r.ranges[0]++
		case res.Latency < RangeHigher:
			r.ranges[1]++
		default:
			r.ranges[2]++
		}
		if res.ServedBy != "" {
			r.servedBy[res.ServedBy]++
		} else {
			r.missing++
		}
		return
	}
	_ = r.ko.RecordValue(us)
	r.req.KO++
	r.iKO++
	msg := res.Error
	if msg == "" {
		msg = "failed"
	}
	r.errors[msg]++
}

// Tick closes the current interval at now, appends it to the timeline with
// the number of active users, and returns it. An interval shorter than a
// millisecond is not recorded (ok is false).
func (r *Recorder) Tick(now time.Time, users int64) (p Point, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := now.Sub(r.lastTick)
	if d < time.Millisecond {
		return Point{}, false
	}
	n := r.iOK + r.iKO
	p = Point{
		T:         round3(now.Sub(r.start).Seconds()),
		Requests:  n,
		OK:        r.iOK,
		KO:        r.iKO,
		ReqPerSec: round3(float64(n) / d.Seconds()),
		Users:     users,
	}
	if h := r.intervalOK; h.TotalCount() > 0 {
		p.P50Ms = msp(h.ValueAtQuantile(50))
		p.P95Ms = msp(h.ValueAtQuantile(95))
		p.P99Ms = msp(h.ValueAtQuantile(99))
		p.MaxMs = msp(h.Max())
	}
	r.timeline = append(r.timeline, p)
	r.intervalOK.Reset()
	r.iOK, r.iKO = 0, 0
	r.lastTick = now
	return p, true
}

// Progress is what the progress line shows: totals so far and the p99 of
// the OK responses over the whole run so far (nil when none was OK).
type Progress struct {
	Requests Requests
	P99Ms    *float64
}

// Progress returns the totals so far.
func (r *Recorder) Progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Progress{Requests: r.req}
	if r.ok.TotalCount() > 0 {
		p.P99Ms = msp(r.ok.ValueAtQuantile(99))
	}
	return p
}

// Summary returns the figures of the run from its start to end.
func (r *Recorder) Summary(end time.Time) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := end.Sub(r.start).Seconds()
	s := Summary{
		Requests:        r.req,
		LatencyMs:       latency(r.ok),
		KOLatencyMs:     latency(r.ko),
		ServedBy:        make(map[string]int64, len(r.servedBy)),
		StartedAt:       r.start,
		DurationS:       round3(d),
		Ranges:          Ranges(r.ranges, r.req.KO),
		ServedByMissing: r.missing,
		Errors:          make(map[string]int64, len(r.errors)),
		Timeline:        append([]Point{}, r.timeline...),
	}
	for k, v := range r.servedBy {
		s.ServedBy[k] = v
	}
	for k, v := range r.errors {
		s.Errors[k] = v
	}
	if d > 0 {
		s.ReqPerSec = round3(float64(r.req.Total) / d)
	}
	if r.ok.TotalCount() > 0 {
		s.Distribution = distribution(r.ok, 40)
	}
	return s
}

// Ranges turns the counts of OK responses per range (fast, medium, slow)
// and of KO responses into the four ranges with their share of all requests
// in percent (two decimals; 0 when there was no request).
func Ranges(ok [3]int64, ko int64) []Range {
	total := ok[0] + ok[1] + ok[2] + ko
	out := []Range{{Name: RangeFast, Count: ok[0]}, {Name: RangeMedium, Count: ok[1]}, {Name: RangeSlow, Count: ok[2]}, {Name: RangeFailed, Count: ko}}
	if total > 0 {
		for i := range out {
			out[i].Percentage = math.Round(10000*float64(out[i].Count)/float64(total)) / 100
		}
	}
	return out
}

// latency reads the figures of h; all nil when h is empty.
func latency(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	mean := round3(h.Mean() / 1000)
	return Latency{
		Min:  msp(h.Min()),
		Mean: &mean,
		P50:  msp(h.ValueAtQuantile(50)),
		P75:  msp(h.ValueAtQuantile(75)),
		P95:  msp(h.ValueAtQuantile(95)),
		P99:  msp(h.ValueAtQuantile(99)),
		Max:  msp(h.Max()),
	}
}

// distribution spreads the recorded values over at most n equal bins from
// the minimum to the 99.9th percentile; the last bin also holds the tail
// above it, so the counts add up to the total.
func distribution(h *hdrhistogram.Histogram, n int) []Bin {
	lo := h.Min()
	hi := h.ValueAtQuantile(99.9)
	if hi <= lo {
		hi = lo + 1
	}
	width := (hi - lo + int64(n) - 1) / int64(n)
	if width < 1 {
		width = 1
	}
	bins := make([]Bin, 0, n)
	for from := lo; from <= hi && len(bins) < n; from += width {
		bins = append(bins, Bin{FromMs: ms(from), ToMs: ms(from + width)})
	}
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		i := int((b.From - lo) / width)
		if b.From < lo {
			i = 0
		}
		if i >= len(bins) {
			i = len(bins) - 1
		}
		bins[i].Count += b.Count
	}
	return bins
}

// ServedByShare is one replica's share of the answers.
type ServedByShare struct {
	ServedBy string
	Count    int64
	Share    float64 // percent of all answers that named a replica
}

// Shares returns the servedBy counts, largest first, with their share.
func Shares(m map[string]int64) []ServedByShare {
	var sum int64
	out := make([]ServedByShare, 0, len(m))
	for k, v := range m {
		sum += v
		out = append(out, ServedByShare{ServedBy: k, Count: v})
	}
	for i := range out {
		out[i].Share = round3(100 * float64(out[i].Count) / float64(sum))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].ServedBy < out[j].ServedBy
	})
	return out
}

func ms(us int64) float64 { return round3(float64(us) / 1000) }

func msp(us int64) *float64 {
	v := ms(us)
	return &v
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
