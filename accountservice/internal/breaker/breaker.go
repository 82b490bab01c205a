// Package breaker puts accountservice's quote call behind a circuit breaker that serves the
// fallback quote when quotes-service fails, is slow or the circuit is open, and serves the
// breaker's metrics in Hystrix stream format for turbine and the Hystrix dashboard.
//
// The circuit follows Hystrix's rules, as hystrix-go implements them: over a rolling 10 s
// window, once RequestVolume calls were made and ErrorPercent of them failed (failure,
// timeout, rejection, short circuit), the circuit opens; while open, calls get the fallback
// at once, except one trial call per SleepWindow; a trial that succeeds closes the circuit
// and clears the window.
//
// It is its own code, not hystrix-go's, because of what hystrix-go costs per call: every
// outcome goes through a channel to a metrics goroutine that starts one more goroutine per
// collector per call, and its latency window keeps every duration of the last 60 s and sorts
// them every second. Profiles of accountservice under the workload showed those on every
// request. Here an outcome is counted under one mutex in a per-second bucket (counts, and a
// latency histogram with fixed bounds), nothing runs per call on another goroutine, and the
// memory is fixed (60 buckets) whatever the request rate.
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/internal/httpserve"
)

// Command is the circuit's name in the Hystrix stream.
const Command = "quotes-service"

// StreamPath is where ServeMetrics serves the Hystrix stream.
const StreamPath = "/hystrix.stream"

// Fetcher gets one quote; quote.Client is one.
type Fetcher interface {
	Fetch(ctx context.Context) (quote.Quote, error)
}

// Config configures the breaker.
type Config struct {
	// Timeout is the longest a quote call may take before the fallback is served. It should
	// be a little above the quote client's own deadline.
	Timeout time.Duration
	// MaxConcurrent calls before further ones are rejected to the fallback. Default 1000.
	MaxConcurrent int
	// RequestVolume is how many calls in the 10 s window are needed before the error
	// percentage can open the circuit. Default 20.
	RequestVolume int
	// ErrorPercent that opens the circuit. Default 50.
	ErrorPercent int
	// SleepWindow is how long the circuit stays open before one trial call. Default 5 s.
	SleepWindow time.Duration
	// StreamInterval is how often the stream sends a sample. Default 1 s (Hystrix's).
	StreamInterval time.Duration
	// Logger receives a line when the fallback starts and stops being served; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Breaker is a Fetcher that never fails: errors, timeouts and an open circuit all give
// quote.Fallback.
type Breaker struct {
	next      Fetcher
	log       *slog.Logger
	cfg       Config
	active    atomic.Int64
	degraded  atomic.Bool
	fallbacks atomic.Uint64

	mu       sync.Mutex
	ring     [ringSeconds]bucket
	open     bool
	openedAt time.Time // when it opened, or when the last trial call was let through
}

// New configures the circuit and wraps next.
func New(next Fetcher, cfg Config) *Breaker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 1000
	}
	if cfg.RequestVolume <= 0 {
		cfg.RequestVolume = 20
	}
	if cfg.ErrorPercent <= 0 {
		cfg.ErrorPercent = 50
	}
	if cfg.SleepWindow <= 0 {
		cfg.SleepWindow = 5 * time.Second
	}
	if cfg.StreamInterval <= 0 {
		cfg.StreamInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{next: next, log: cfg.Logger, cfg: cfg}
}

// Errors the fallback is logged with.
var (
	ErrCircuitOpen    = errors.New("circuit open")
	ErrMaxConcurrency = errors.New("max concurrency")
	ErrTimeout        = errors.New("timeout")
)

// Fetch calls the next Fetcher through the circuit. The error is always nil; a fallback is
// quote.Fallback.
func (b *Breaker) Fetch(ctx context.Context) (quote.Quote, error) {
	start := b.cfg.Now()
	if !b.allow(start) {
		return b.fallback(start, shortCircuited, 0, ErrCircuitOpen)
	}
	active := b.active.Add(1)
	if active > int64(b.cfg.MaxConcurrent) {
		b.active.Add(-1)
		return b.fallback(start, rejected, 0, ErrMaxConcurrency)
	}
	defer b.active.Add(-1)
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > b.cfg.Timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.Timeout)
		defer cancel()
	}
	q, err := b.next.Fetch(ctx)
	if err == nil {
		b.record(start, succeeded, active)
		if b.degraded.CompareAndSwap(true, false) {
			b.log.Info("quotes-service answers again: fallback quote no longer served")
		}
		return q, nil
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return b.fallback(start, timedOut, active, ErrTimeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return b.fallback(start, canceled, active, err)
	}
	return b.fallback(start, failed, active, err)
}

func (b *Breaker) fallback(start time.Time, o outcome, active int64, err error) (quote.Quote, error) {
	b.record(start, o|withFallback, active)
	b.fallbacks.Add(1)
	if b.degraded.CompareAndSwap(false, true) {
		b.log.Warn("serving the fallback quote", "reason", "circuit breaker: "+err.Error())
	}
	return quote.Fallback, nil
}

// Fallbacks is how many calls were answered with the fallback quote.
func (b *Breaker) Fallbacks() uint64 { return b.fallbacks.Load() }

// IsOpen says whether the circuit is open now.
func (b *Breaker) IsOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// allow says whether a call may go to quotes-service: the circuit is closed and healthy,
// or it is open and the sleep window has passed since it opened or since the last trial
// (one trial per window).
func (b *Breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		w := b.window(now)
		if w.requests() < uint32(b.cfg.RequestVolume) || w.errorPercent() < uint32(b.cfg.ErrorPercent) {
			return true
		}
		b.open, b.openedAt = true, now
		return false
	}
	if now.Sub(b.openedAt) > b.cfg.SleepWindow {
		b.openedAt = now
		return true
	}
	return false
}

// record counts one call's outcome in the bucket of the second it ended in. A success
// closes an open circuit and clears the window, as in Hystrix.
func (b *Breaker) record(start time.Time, o outcome, active int64) {
	end := b.cfg.Now()
	ms := end.Sub(start).Milliseconds()
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == succeeded && b.open {
		b.open = false
		b.ring = [ringSeconds]bucket{}
	}
	bk := b.bucket(end.Unix())
	bk.counts[o&^withFallback]++
	if o&withFallback != 0 {
		bk.fallbackSuccess++
	}
	if active > 0 {
		bk.executed++
		if uint32(active) > bk.maxActive {
			bk.maxActive = uint32(active)
		}
	}
	bk.latency.add(ms)
}

// bucket returns the bucket of second sec, emptied when it held an older second.
func (b *Breaker) bucket(sec int64) *bucket {
	bk := &b.ring[uint64(sec)%ringSeconds]
	if bk.sec != sec {
		*bk = bucket{sec: sec}
	}
	return bk
}

// window sums the buckets of the last windowSeconds seconds.
func (b *Breaker) window(now time.Time) (w bucket) {
	sec := now.Unix()
	for i := range b.ring {
		bk := &b.ring[i]
		if bk.sec > sec-windowSeconds && bk.sec <= sec {
			for o := range bk.counts {
				w.counts[o] += bk.counts[o]
			}
			w.fallbackSuccess += bk.fallbackSuccess
			w.executed += bk.executed
			w.maxActive = max(w.maxActive, bk.maxActive)
		}
	}
	return w
}

// latencies merges the histograms of the last ringSeconds seconds (Hystrix's percentiles
// cover a minute).
func (b *Breaker) latencies(now time.Time) (h histogram) {
	sec := now.Unix()
	for i := range b.ring {
		bk := &b.ring[i]
		if bk.sec > sec-ringSeconds && bk.sec <= sec {
			h.merge(&bk.latency)
		}
	}
	return h
}

const (
	windowSeconds = 10 // Hystrix's rolling statistical window
	ringSeconds   = 60 // seconds of latencies kept
)

// outcome is what became of one call; withFallback is or-ed in when the fallback was served.
type outcome uint8

const (
	succeeded outcome = iota
	failed
	timedOut
	rejected
	shortCircuited
	canceled
	outcomes

	withFallback outcome = 0x80
)

// bucket is one second of outcomes.
type bucket struct {
	sec             int64
	counts          [outcomes]uint32
	fallbackSuccess uint32
	executed        uint32 // calls that reached quotes-service
	maxActive       uint32
	latency         histogram
}

// requests is what Hystrix counts as requests: every call.
func (w *bucket) requests() uint32 {
	var n uint32
	for _, c := range w.counts {
		n += c
	}
	return n
}

func (w *bucket) errors() uint32 {
	return w.counts[failed] + w.counts[timedOut] + w.counts[rejected] + w.counts[shortCircuited]
}

// errorPercent rounds as hystrix-go does.
func (w *bucket) errorPercent() uint32 {
	n := w.requests()
	if n == 0 {
		return 0
	}
	return uint32((float64(w.errors())/float64(n))*100 + 0.5)
}

// bounds are the histogram's bins' lower bounds in milliseconds: 1 ms steps where the
// quote call's latencies are, coarser above.
var bounds = [...]uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 25, 30, 35, 40, 50,
	60, 70, 80, 90, 100, 125, 150, 175, 200, 250, 300, 400, 500, 600, 800, 1000, 1500, 2000, 3000, 5000}

// histogram counts latencies in bins of bounds, with their sum and maximum.
type histogram struct {
	bins  [len(bounds)]uint32
	n     uint32
	sumMs uint64
	maxMs uint32
}

func (h *histogram) add(ms int64) {
	if ms < 0 {
		ms = 0
	}
	v := uint32(min(ms, 1<<31))
	i := len(bounds) - 1
	for i > 0 && bounds[i] > v {
		i--
	}
	h.bins[i]++
	h.n++
	h.sumMs += uint64(v)
	h.maxMs = max(h.maxMs, v)
}

func (h *histogram) merge(o *histogram) {
	for i := range h.bins {
		h.bins[i] += o.bins[i]
	}
	h.n += o.n
	h.sumMs += o.sumMs
	h.maxMs = max(h.maxMs, o.maxMs)
}

// percentile is the lower bound of the bin holding the p-th percentile (the maximum for
// 100), in milliseconds; 0 when empty.
func (h *histogram) percentile(p float64) uint32 {
	if h.n == 0 {
		return 0
	}
	if p >= 100 {
		return h.maxMs
	}
	rank := uint32(p / 100 * float64(h.n))
	if rank < 1 {
		rank = 1
	}
	var seen uint32
	for i, c := range h.bins {
		seen += c
		if seen >= rank {
			return bounds[i]
		}
	}
	return h.maxMs
}

func (h *histogram) mean() uint32 {
	if h.n == 0 {
		return 0
	}
	return uint32(h.sumMs / uint64(h.n))
}

// ServeMetrics serves the Hystrix stream at /hystrix.stream (and GET /health) on ln until
// ctx ends. The stream is served as every goblog stream is (internal/httpserve): each write
// has a deadline, so a reader that stops reading is dropped instead of holding a goroutine
// forever, and open streams end at shutdown (the instance has said DOWN by then).
func (b *Breaker) ServeMetrics(ctx context.Context, ln net.Listener, prom http.Handler, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StreamPath, b.stream)
	if prom != nil {
		mux.Handle("GET /metrics", prom)
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP"}` + "\n"))
	})
	srv := httpserve.New("", mux, httpserve.Streaming(httpserve.StreamConfig{Idle: 10 * time.Minute}, StreamPath))
	return httpserve.Serve(ctx, srv, ln, 2*time.Second, log)
}

// stream sends a sample at once and then every StreamInterval until the reader goes or
// the server stops.
func (b *Breaker) stream(w http.ResponseWriter, r *http.Request) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	t := time.NewTicker(b.cfg.StreamInterval)
	defer t.Stop()
	for {
		if _, err := w.Write(b.Sample()); err != nil {
			return
		}
		f.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
