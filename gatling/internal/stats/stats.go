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

// Point is one interval of the timeline.
type Point struct {
	// T is the end of the interval, in seconds since the start of the run.
	T         float64 `json:"t"`
	Requests  int64   `json:"requests"`
	OK        int64   `json:"ok"`
	KO        int64   `json:"ko"`
	ReqPerSec float64 `json:"reqPerSec"`
	Users     int64   `json:"users"`
	P50Ms     float64 `json:"p50Ms"`
	P95Ms     float64 `json:"p95Ms"`
	P99Ms     float64 `json:"p99Ms"`
	MaxMs     float64 `json:"maxMs"`
}

// Latency holds the latency figures in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P75  float64 `json:"p75"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// Requests counts requests by outcome.
type Requests struct {
	Total int64 `json:"total"`
	OK    int64 `json:"ok"`
	KO    int64 `json:"ko"`
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
	Requests  Requests         `json:"requests"`
	ReqPerSec float64          `json:"reqPerSec"`
	LatencyMs Latency          `json:"latencyMs"`
	ServedBy  map[string]int64 `json:"servedBy"`
	StartedAt time.Time        `json:"startedAt"`
	DurationS float64          `json:"durationS"`
	// ServedByMissing counts OK answers that named no servedBy.
	ServedByMissing int64            `json:"servedByMissing"`
	Errors          map[string]int64 `json:"errors"`
	Timeline        []Point          `json:"timeline"`
	Distribution    []Bin            `json:"distribution"`
}

// Recorder collects results from many goroutines. The zero value is not
// usable: use NewRecorder.
type Recorder struct {
	mu        sync.Mutex
	start     time.Time
	lastTick  time.Time
	total     *hdrhistogram.Histogram
	interval  *hdrhistogram.Histogram
	req       Requests
	iOK, iKO  int64
	servedBy  map[string]int64
	missing   int64
	errors    map[string]int64
	timeline  []Point
	saturated int64
}

// NewRecorder starts a recorder whose clock begins at start.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{
		start:    start,
		lastTick: start,
		total:    hdrhistogram.New(lowestUS, highestUS, sigFigs),
		interval: hdrhistogram.New(lowestUS, highestUS, sigFigs),
		servedBy: map[string]int64{},
		errors:   map[string]int64{},
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
	// Cannot fail: us is clamped to the trackable range.
	_ = r.total.RecordValue(us)
	_ = r.interval.RecordValue(us)
	r.req.Total++
	if res.OK {
		r.req.OK++
		r.iOK++
		if res.ServedBy != "" {
			r.servedBy[res.ServedBy]++
		} else {
			r.missing++
		}
		return
	}
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
	if n > 0 {
		p.P50Ms = ms(r.interval.ValueAtQuantile(50))
		p.P95Ms = ms(r.interval.ValueAtQuantile(95))
		p.P99Ms = ms(r.interval.ValueAtQuantile(99))
		p.MaxMs = ms(r.interval.Max())
	}
	r.timeline = append(r.timeline, p)
	r.interval.Reset()
	r.iOK, r.iKO = 0, 0
	r.lastTick = now
	return p, true
}

// Progress is what the progress line shows: totals so far and the p99 over
// the whole run so far.
type Progress struct {
	Requests Requests
	P99Ms    float64
}

// Progress returns the totals so far.
func (r *Recorder) Progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Progress{Requests: r.req, P99Ms: ms(r.total.ValueAtQuantile(99))}
}

// Summary returns the figures of the run from its start to end.
func (r *Recorder) Summary(end time.Time) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := end.Sub(r.start).Seconds()
	s := Summary{
		Requests:        r.req,
		ServedBy:        make(map[string]int64, len(r.servedBy)),
		StartedAt:       r.start,
		DurationS:       round3(d),
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
	if r.total.TotalCount() > 0 {
		h := r.total
		s.LatencyMs = Latency{
			Min:  ms(h.Min()),
			Mean: round3(h.Mean() / 1000),
			P50:  ms(h.ValueAtQuantile(50)),
			P75:  ms(h.ValueAtQuantile(75)),
			P95:  ms(h.ValueAtQuantile(95)),
			P99:  ms(h.ValueAtQuantile(99)),
			Max:  ms(h.Max()),
		}
		s.Distribution = distribution(h, 40)
	}
	return s
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

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
