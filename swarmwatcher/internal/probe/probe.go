// Package probe checks a task's HTTP health endpoint and turns the results
// into a health state with Consul-like thresholds (successes before passing,
// failures before critical) and a short history.
package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Outcome classifies one probe.
type Outcome string

// The outcomes of one probe: 2xx passes, 429 warns, anything else fails.
const (
	Pass Outcome = "pass"
	Warn Outcome = "warn"
	Fail Outcome = "fail"
)

// Result is one probe of one target.
type Result struct {
	At        time.Time
	Outcome   Outcome
	Code      int // HTTP status, 0 when none arrived
	Latency   time.Duration
	Err       string // short reason when not Pass
	BodyBytes int64  // bytes read from the body (capped)
}

// Config tunes the Prober.
type Config struct {
	// Timeout bounds each probe: connect, headers and body.
	Timeout time.Duration
	// MaxBody caps the bytes read from a body.
	MaxBody int64
	// Concurrency bounds the probes in flight in CheckAll.
	Concurrency int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Dial opens a probe's connection (nil: a net.Dialer with Timeout).
	// Benchmarks point thousands of task addresses at in-process targets
	// with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return errors.New("probe timeout must be positive")
	case c.MaxBody <= 0:
		return errors.New("probe body cap must be positive")
	case c.Concurrency <= 0:
		return errors.New("probe concurrency must be positive")
	}
	return nil
}

// Prober performs HTTP health probes.
type Prober struct {
	cfg  Config
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	sem  chan struct{} // a slot per probe in flight, across CheckAll calls
}

// maxHeaderBytes is the room for a probe answer's status line and headers
// in what a probe reads.
const maxHeaderBytes = 16 << 10

// New returns a Prober. Redirects are never followed (a 3xx fails) and
// connections are not reused, so every probe also proves the task accepts.
func New(cfg Config) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("probe config: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: cfg.Timeout}).DialContext
	}
	return &Prober{cfg: cfg, dial: dial, sem: make(chan struct{}, cfg.Concurrency)}, nil
}

// readers are the probes' read buffers (1 KiB: a health answer's headers
// and body fit), reused: a fresh one per probe was a third of the bytes a
// probe round allocated (profiled).
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 1<<10) }}

// Check probes url once: one GET on a connection of its own, closed after
// the answer. It never takes longer than the configured timeout (or ctx,
// whichever ends first), reads at most MaxBody of body and at most 16 KiB
// plus twice MaxBody from the connection in all.
//
// It speaks HTTP/1.1 on the connection itself rather than through an
// http.Transport: a connection used once needs none of a Transport's pooling
// (two goroutines, queues and buffers per connection), which was most of the
// probe cost at 10,000 probes a second (profiled).
func (p *Prober) Check(ctx context.Context, rawURL string) Result {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	start := p.cfg.Now()
	res := Result{At: start, Outcome: Fail}
	finish := func() Result {
		res.Latency = p.cfg.Now().Sub(start)
		return res
	}
	u, err := url.Parse(rawURL)
	if err == nil && (u.Scheme != "http" || u.Host == "" || u.User != nil) {
		err = errors.New("want http://host[:port]/path")
	}
	if err != nil {
		res.Err = "bad probe URL: " + err.Error()
		return finish()
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	conn, err := p.dial(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		res.Err = reason(err, p.cfg.Timeout)
		return finish()
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// The caller's cancellation ends reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: swarmwatcher\r\nAccept: */*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		res.Err = reason(ctxErr(ctx, err), p.cfg.Timeout)
		return finish()
	}
	// Everything the probe reads from the connection is bounded: headers,
	// and the body cap with room for chunk framing.
	br := readers.Get().(*bufio.Reader)
	br.Reset(io.LimitReader(conn, maxHeaderBytes+2*p.cfg.MaxBody))
	defer func() {
		br.Reset(nil) // holds no connection while pooled
		readers.Put(br)
	}()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		res.Err = reason(ctxErr(ctx, err), p.cfg.Timeout)
		return finish()
	}
	defer resp.Body.Close()
	res.Code = resp.StatusCode
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, p.cfg.MaxBody))
	res.BodyBytes = n
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.Outcome = Pass
	case resp.StatusCode == http.StatusTooManyRequests:
		res.Outcome, res.Err = Warn, "HTTP 429"
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Err = fmt.Sprintf("HTTP %d redirect (not followed)", resp.StatusCode)
	default:
		res.Err = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if err != nil && res.Outcome == Pass {
		// Headers said yes but the body broke off: not healthy.
		res.Outcome, res.Err = Fail, "reading body: "+reason(ctxErr(ctx, err), p.cfg.Timeout)
	}
	return finish()
}

// ctxErr prefers the context's end to the error it caused on the
// connection (a deadline set to the past reads as a timeout).
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// reason shortens a client error for people.
func reason(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("timeout after %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i > 3 {
		s = s[i+2:]
	}
	return s
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CheckAll probes every URL and returns the results in the same order. At
// most Concurrency probes are in flight, across all CheckAll calls running
// at once; calls waiting for a slot get them in turn.
//
// A call runs at most Concurrency workers, each taking the next URL and a
// slot for it: a goroutine per probe grew its stack through the dial on
// every probe (profiled: 6% of a 10,000-task round's CPU).
func (p *Prober) CheckAll(ctx context.Context, urls []string) []Result {
	out := make([]Result, len(urls))
	var next atomic.Int64 // the next URL to take
	worker := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(urls) {
				return
			}
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = Result{At: p.cfg.Now(), Outcome: Fail, Err: "canceled"}
				continue
			}
			out[i] = p.Check(ctx, urls[i])
			<-p.sem
		}
	}
	var wg sync.WaitGroup
	for range min(len(urls), p.cfg.Concurrency) - 1 {
		wg.Go(worker)
	}
	if len(urls) > 0 {
		worker() // this goroutine is one of them
	}
	wg.Wait()
	return out
}
