// Package load runs the tutorial's Gatling simulation: Users virtual users,
// started evenly over Ramp, each looping for Duration from its own start:
// take the next id from the shared circular feeder, GET /accounts/{id} with
// Accept: application/json, check for 200, pause.
//
// Like Gatling, every user has its own connection (userConn: written and read
// on the user's goroutine), so the load spreads over replicas the way the
// tutorial's did; MaxRequestsPerConn and KeepAlive change that.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/gatling/internal/stats"
)

// Config is one run's settings.
type Config struct {
	// BaseURL is where /accounts/{id} is asked, e.g. http://localhost:6767.
	BaseURL string
	// Path is the request path with {id} standing for the feeder's id.
	Path string
	// Users, Ramp, Duration and Pause shape the workload as in the tutorial.
	Users    int
	Ramp     time.Duration
	Duration time.Duration
	Pause    time.Duration
	// Timeout is every request's deadline (connect, send, answer, body).
	Timeout time.Duration
	// KeepAlive reuses a user's connection; off, every request dials anew.
	KeepAlive bool
	// MaxRequestsPerConn closes a user's connection after that many requests
	// (0: no limit), so new replicas behind a VIP get their share.
	MaxRequestsPerConn int
	// Interval is how often the timeline gets a point (and the progress line
	// is printed). Default 1s.
	Interval time.Duration
}

// Defaults are the tutorial's settings.
func Defaults() Config {
	return Config{
		BaseURL:   "http://localhost:6767",
		Path:      "/accounts/{id}",
		Users:     1000,
		Ramp:      10 * time.Second,
		Duration:  30 * time.Second,
		Pause:     time.Second,
		Timeout:   10 * time.Second,
		KeepAlive: true,
		Interval:  time.Second,
	}
}

// Validate says what is wrong with the config, if anything.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("base-url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("base-url %q: scheme must be http or https", c.BaseURL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("base-url %q: no host", c.BaseURL))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("base-url %q: no query or fragment allowed", c.BaseURL))
	}
	if !strings.HasPrefix(c.Path, "/") || !strings.Contains(c.Path, "{id}") {
		errs = append(errs, fmt.Errorf("request-path %q: must start with / and contain {id}", c.Path))
	}
	if c.Users < 1 || c.Users > 100000 {
		errs = append(errs, fmt.Errorf("users %d: must be 1 … 100000", c.Users))
	}
	if c.Ramp < 0 {
		errs = append(errs, fmt.Errorf("ramp %v: must not be negative", c.Ramp))
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration %v: must be positive", c.Duration))
	}
	if c.Pause < 0 {
		errs = append(errs, fmt.Errorf("pause %v: must not be negative", c.Pause))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must be positive", c.Timeout))
	}
	if c.MaxRequestsPerConn < 0 {
		errs = append(errs, fmt.Errorf("max-requests-per-conn %d: must be 0 (no limit) or more", c.MaxRequestsPerConn))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %v: must be positive", c.Interval))
	}
	return errors.Join(errs...)
}

// Feeder hands out the next id.
type Feeder interface {
	Next() string
}

// Tick is passed to the progress callback once per interval.
type Tick struct {
	Elapsed  time.Duration
	Users    int64 // users running now
	Started  int64 // users started so far
	Point    stats.Point
	Progress stats.Progress
}

// Runner runs one simulation.
type Runner struct {
	cfg      Config
	feeder   Feeder
	rec      *stats.Recorder
	progress func(Tick)
	target   target
	active   atomic.Int64
	started  atomic.Int64
}

// NewRunner checks cfg and prepares a run that records into rec and calls
// progress (which may be nil) once per interval from one goroutine.
func NewRunner(cfg Config, f Feeder, rec *stats.Recorder, progress func(Tick)) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if f == nil || rec == nil {
		return nil, errors.New("load: feeder and recorder are required")
	}
	if progress == nil {
		progress = func(Tick) {}
	}
	t, err := parseTarget(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg, feeder: f, rec: rec, progress: progress, target: t}, nil
}

// Run starts the users over the ramp and returns when all of them have
// finished their loop or ctx is done; in both cases the timeline holds the
// last partial interval. It returns ctx's error when interrupted.
func (r *Runner) Run(ctx context.Context, start time.Time) error {
	var wg sync.WaitGroup
	monitorDone := make(chan struct{})
	stopMonitor := make(chan struct{})
	go func() {
		defer close(monitorDone)
		r.monitor(start, stopMonitor)
	}()

	n := r.cfg.Users
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(int64(r.cfg.Ramp) * int64(i) / int64(n)))
		if !sleepUntil(ctx, at) {
			break
		}
		wg.Add(1)
		r.active.Add(1)
		r.started.Add(1)
		go func(userStart time.Time) {
			defer wg.Done()
			defer r.active.Add(-1)
			r.user(ctx, userStart.Add(r.cfg.Duration))
		}(time.Now())
	}
	wg.Wait()
	close(stopMonitor)
	<-monitorDone
	return ctx.Err()
}

func (r *Runner) monitor(start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	emit := func(now time.Time) {
		p, ok := r.rec.Tick(now, r.active.Load())
		if !ok {
			return
		}
		r.progress(Tick{Elapsed: now.Sub(start), Users: r.active.Load(), Started: r.started.Load(), Point: p, Progress: r.rec.Progress()})
	}
	for {
		select {
		case now := <-t.C:
			emit(now)
		case <-stop:
			emit(time.Now())
			return
		}
	}
}

// user loops until end or ctx is done, on its own connection.
func (r *Runner) user(ctx context.Context, end time.Time) {
	c := newUserConn(&r.cfg, r.target)
	defer c.close()
	for time.Now().Before(end) {
		res, ok := r.do(ctx, c)
		if !ok { // interrupted: not a result
			return
		}
		r.rec.Record(res)
		if r.cfg.Pause > 0 {
			if !sleepUntil(ctx, time.Now().Add(r.cfg.Pause)) {
				return
			}
		} else if ctx.Err() != nil {
			return
		}
	}
}

// maxBody is how much of an answer is read for servedBy; the rest is drained
// up to maxDrain so the connection can be reused.
const (
	maxBody  = 64 << 10
	maxDrain = 1 << 20
)

// do sends one request. ok is false when ctx ended before it completed.
func (r *Runner) do(ctx context.Context, c *userConn) (res stats.Result, ok bool) {
	path := escapePath(r.cfg.Path, r.feeder.Next())
	t0 := time.Now()
	status, body, err := c.get(ctx, path, t0.Add(r.cfg.Timeout))
	res.Latency = time.Since(t0)
	if err != nil {
		if ctx.Err() != nil {
			return res, false
		}
		res.Error = classify(err)
		return res, true
	}
	if status != http.StatusOK {
		res.Error = fmt.Sprintf("status %d", status)
		return res, true
	}
	res.OK = true
	var answer struct {
		ServedBy string `json:"servedBy"`
	}
	if json.Unmarshal(body, &answer) == nil {
		res.ServedBy = answer.ServedBy
	}
	return res, true
}

// classify turns a transport error into a short, countable reason.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed early"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// sleepUntil waits until t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Started is the number of users started so far.
func (r *Runner) Started() int64 { return r.started.Load() }
