// Package breaker puts accountservice's quote call behind a Hystrix circuit breaker
// (afex/hystrix-go) that serves the fallback quote when quotes-service fails, is slow or the
// circuit is open, and serves the breaker's metrics in Hystrix stream format for turbine.
package breaker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/internal/httpserve"
)

// Command is the circuit's name in the Hystrix stream.
const Command = "quotes-service"

// Fetcher gets one quote; quote.Client is one.
type Fetcher interface {
	Fetch(ctx context.Context) (quote.Quote, error)
}

// Config configures the breaker.
type Config struct {
	// Timeout is the longest a quote call may take before the fallback is served. It should
	// be a little above the quote client's own deadline.
	Timeout time.Duration
	// MaxConcurrent calls before further ones are rejected to the fallback. Default 1000:
	// hystrix-go's default of 10 would turn ordinary load into fallbacks.
	MaxConcurrent int
	// RequestVolume is how many calls in the 10 s window are needed before the error
	// percentage can open the circuit. Default 20.
	RequestVolume int
	// ErrorPercent that opens the circuit. Default 50.
	ErrorPercent int
	// SleepWindow is how long the circuit stays open before one trial call. Default 5 s.
	SleepWindow time.Duration
	// Logger receives a line when the fallback starts and stops being served; nil discards.
	Logger *slog.Logger
}

// Breaker is a Fetcher that never fails: errors, timeouts and an open circuit all give
// quote.Fallback. There is one circuit per process (hystrix-go's state is global).
//
// It does what hystrix.DoC does, inline on the caller's goroutine: DoC costs two goroutines,
// a timer and several channels per call, which profiles showed on every request. The circuit
// (open/closed, error percentage, sleep window) and the metrics stream stay hystrix-go's:
// the outcome of each call is reported to the circuit with ReportEvent.
type Breaker struct {
	next      Fetcher
	log       *slog.Logger
	circuit   *hystrix.CircuitBreaker
	timeout   time.Duration
	max       int64
	active    atomic.Int64
	degraded  atomic.Bool
	fallbacks atomic.Uint64
}

// New configures the circuit and wraps next. It creates the circuit at once, so the metrics
// stream reports it (with zero counts) before the first call.
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
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hystrix.ConfigureCommand(Command, hystrix.CommandConfig{
		Timeout:                int(cfg.Timeout.Milliseconds()),
		MaxConcurrentRequests:  cfg.MaxConcurrent,
		RequestVolumeThreshold: cfg.RequestVolume,
		ErrorPercentThreshold:  cfg.ErrorPercent,
		SleepWindow:            int(cfg.SleepWindow.Milliseconds()),
	})
	circuit, _, _ := hystrix.GetCircuit(Command)
	return &Breaker{next: next, log: cfg.Logger, circuit: circuit, timeout: cfg.Timeout, max: int64(cfg.MaxConcurrent)}
}

// The events reported per outcome, in hystrix-go's names (read-only).
var (
	eventsSuccess      = []string{"success"}
	eventsFailure      = []string{"failure", "fallback-success"}
	eventsTimeout      = []string{"timeout", "fallback-success"}
	eventsShortCircuit = []string{"short-circuit", "fallback-success"}
	eventsRejected     = []string{"rejected", "fallback-success"}
	eventsCanceled     = []string{"context_canceled", "fallback-success"}
)

// Fetch calls the next Fetcher through the circuit. The error is always nil; a fallback is
// quote.Fallback.
func (b *Breaker) Fetch(ctx context.Context) (quote.Quote, error) {
	start := time.Now()
	if !b.circuit.AllowRequest() {
		return b.fallback(start, eventsShortCircuit, hystrix.ErrCircuitOpen)
	}
	if b.active.Add(1) > b.max {
		b.active.Add(-1)
		return b.fallback(start, eventsRejected, hystrix.ErrMaxConcurrency)
	}
	defer b.active.Add(-1)
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) > b.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	q, err := b.next.Fetch(ctx)
	if err == nil {
		_ = b.circuit.ReportEvent(eventsSuccess, start, time.Since(start))
		if b.degraded.CompareAndSwap(true, false) {
			b.log.Info("quotes-service answers again: fallback quote no longer served")
		}
		return q, nil
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return b.fallback(start, eventsTimeout, hystrix.ErrTimeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return b.fallback(start, eventsCanceled, err)
	}
	return b.fallback(start, eventsFailure, err)
}

func (b *Breaker) fallback(start time.Time, events []string, err error) (quote.Quote, error) {
	_ = b.circuit.ReportEvent(events, start, time.Since(start))
	b.fallbacks.Add(1)
	if b.degraded.CompareAndSwap(false, true) {
		b.log.Warn("serving the fallback quote", "reason", reason(err))
	}
	return quote.Fallback, nil
}

// Fallbacks is how many calls were answered with the fallback quote.
func (b *Breaker) Fallbacks() uint64 { return b.fallbacks.Load() }

func reason(err error) string {
	var ce hystrix.CircuitError
	if errors.As(err, &ce) {
		return "circuit breaker: " + ce.Message
	}
	return err.Error()
}

// ServeMetrics serves the Hystrix stream at /hystrix.stream (and prom, when not nil, at
// /metrics: the service's Prometheus metrics) on ln until ctx ends, then
// stops the stream publisher and the server. The stream is served as every goblog stream
// is (internal/httpserve): each write has a deadline, so a reader that stops reading is
// dropped instead of holding a goroutine forever, and open streams end at shutdown (the
// instance has said DOWN by then).
func ServeMetrics(ctx context.Context, ln net.Listener, prom http.Handler, log *slog.Logger) error {
	stream := hystrix.NewStreamHandler()
	stream.Start()
	defer stream.Stop()
	mux := http.NewServeMux()
	mux.Handle("GET "+StreamPath, stream)
	if prom != nil {
		mux.Handle("GET /metrics", prom)
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP"}` + "\n"))
	})
	// hystrix-go sends a sample per circuit every second, and nothing before the first
	// call: the idle limit only ends streams nobody feeds for long.
	srv := httpserve.New("", mux, httpserve.Streaming(httpserve.StreamConfig{Idle: 10 * time.Minute}, StreamPath))
	return httpserve.Serve(ctx, srv, ln, 2*time.Second, log)
}

// StreamPath is where ServeMetrics serves the Hystrix stream.
const StreamPath = "/hystrix.stream"
