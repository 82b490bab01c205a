// Package webhook delivers the swarmwatcher's changes to HTTP receivers, the
// way Docker Flow Swarm Listener users expect: every change is POSTed as JSON
// to each configured URL, with a deadline per call and retries with backoff.
// Each URL has its own bounded queue and worker, so a slow or dead receiver
// delays only itself; when its queue is full the oldest change is dropped
// and counted. Send never blocks.
//
// Delivery is at least once: a POST whose answer is lost or late is retried
// with the same X-Swarmwatcher-Delivery header, by which a receiver can drop
// the duplicate. A 2xx answer is success; 408, 429, 5xx and network errors
// are retried; any other answer is a permanent refusal.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Dispatcher. Zero values take the documented defaults.
type Config struct {
	// URLs receive a POST of every change.
	URLs []string
	// Timeout bounds one POST, response included. Default 5 s.
	Timeout time.Duration
	// MaxAttempts per change and URL, the first included. Default 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the delay between attempts, which
	// doubles per attempt. Defaults 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// QueueSize is how many changes wait per URL; past it the oldest is
	// dropped. Default 256.
	QueueSize int
	// Client makes the POSTs; default a plain http.Client (the deadline
	// comes from Timeout).
	Client *http.Client
	// Sleep waits d or until ctx ends; tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used for the delivery delay; default time.Now.
	Now func() time.Time
	// Logger receives failed deliveries and drops; nil discards.
	Logger *slog.Logger
	// Registerer receives the dispatcher's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// ParseURLs splits a comma-separated list (the WEBHOOK_URLS variable) and
// checks each entry is an absolute http(s) URL. Empty input gives none.
func ParseURLs(s string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if err := checkURL(raw); err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error repeats the input, credentials included: say less.
		return fmt.Errorf("webhook url %q: not a valid URL", redact(raw))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook url %q: want http(s)://host[:port]/path", redact(raw))
	}
	return nil
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	for _, u := range c.URLs {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	if c.Timeout < 0 || c.MaxAttempts < 0 || c.QueueSize < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("webhook: timeout, attempts, queue size and backoff must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.QueueSize == 0 {
		c.QueueSize = 256
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Dispatcher queues changes and POSTs them to every configured URL. Create
// it with New, start delivery with Run, hand it changes with Send.
type Dispatcher struct {
	cfg     Config
	targets []*target
	seq     atomic.Uint64
	m       metrics
}

type target struct {
	url   string
	label string // the URL without credentials or query, for metrics and logs
	log   *slog.Logger

	mu   sync.Mutex
	q    []item
	wake chan struct{} // capacity 1: "the queue may have items"
}

type item struct {
	id   uint64
	body []byte
	at   time.Time
}

type metrics struct {
	sent, failed, retries, dropped *prometheus.CounterVec
	queued                         *prometheus.GaugeVec
	delay                          *prometheus.HistogramVec
}

func newMetrics() metrics {
	const ns, sub = "swarmwatcher", "webhook"
	labels := []string{"url"}
	return metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "delivered_total", Help: "Changes a receiver accepted with a 2xx answer."}, labels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "failed_total", Help: "Changes given up on after the last attempt or a permanent 4xx answer."}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "retries_total", Help: "Attempts after a failed one."}, labels),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dropped_total", Help: "Changes dropped, oldest first, because the URL's queue was full."}, labels),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "queue_length", Help: "Changes waiting for delivery."}, labels),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "delivery_delay_seconds", Help: "Time from Send to the receiver's 2xx answer.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 120}}, labels),
	}
}

func (m metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.retries, m.dropped, m.queued, m.delay} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return nil
}

// New validates cfg and returns a Dispatcher with an empty queue per URL.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	d := &Dispatcher{cfg: cfg, m: newMetrics()}
	if cfg.Registerer != nil {
		if err := d.m.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	for _, u := range cfg.URLs {
		label := redact(u)
		t := &target{url: u, label: label, log: cfg.Logger.With("webhook", label), wake: make(chan struct{}, 1)}
		d.targets = append(d.targets, t)
		// Make the series exist at 0 so a dashboard can tell "none yet" from "absent".
		d.m.sent.WithLabelValues(label)
		d.m.failed.WithLabelValues(label)
		d.m.retries.WithLabelValues(label)
		d.m.dropped.WithLabelValues(label)
		d.m.queued.WithLabelValues(label).Set(0)
	}
	return d, nil
}

// Send queues change for every URL and returns at once; it never blocks on
// a receiver. change is marshalled to JSON here. A nil Dispatcher or one
// without URLs ignores it.
func (d *Dispatcher) Send(change any) {
	if d == nil || len(d.targets) == 0 {
		return
	}
	body, err := json.Marshal(change)
	if err != nil {
		d.cfg.Logger.Error("webhook: change not sent, cannot marshal it", "err", err)
		return
	}
	it := item{id: d.seq.Add(1), body: body, at: d.cfg.Now()}
	for _, t := range d.targets {
		t.mu.Lock()
		if len(t.q) >= d.cfg.QueueSize {
			n := len(t.q) - d.cfg.QueueSize + 1
			t.q = append(t.q[:0], t.q[n:]...)
			d.m.dropped.WithLabelValues(t.label).Add(float64(n))
			t.log.Warn("webhook queue full, dropped the oldest change", "dropped", n)
		}
		t.q = append(t.q, it)
		d.m.queued.WithLabelValues(t.label).Set(float64(len(t.q)))
		t.mu.Unlock()
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// Run delivers queued changes, one worker per URL, until ctx ends; then it
// returns nil. Changes still queued then are not delivered.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, t := range d.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx, t)
		}()
	}
	wg.Wait()
	return nil
}

func (d *Dispatcher) work(ctx context.Context, t *target) {
	for {
		it, ok := d.pop(t)
		if !ok {
			select {
			case <-t.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		d.deliver(ctx, t, it)
		if ctx.Err() != nil {
			return
		}
	}
}

func (d *Dispatcher) pop(t *target) (item, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.q) == 0 {
		return item{}, false
	}
	it := t.q[0]
	t.q[0] = item{}
	t.q = t.q[1:]
	d.m.queued.WithLabelValues(t.label).Set(float64(len(t.q)))
	return it, true
}

// deliver POSTs one change until a 2xx answer, a permanent refusal, the
// last attempt, or the end of ctx.
func (d *Dispatcher) deliver(ctx context.Context, t *target, it item) {
	for attempt := 1; ; attempt++ {
		retry, err := d.post(ctx, t, it, attempt)
		if err == nil {
			d.m.sent.WithLabelValues(t.label).Inc()
			d.m.delay.WithLabelValues(t.label).Observe(d.cfg.Now().Sub(it.at).Seconds())
			return
		}
		if ctx.Err() != nil {
			return // shutting down: not a receiver's failure
		}
		if !retry || attempt >= d.cfg.MaxAttempts {
			d.m.failed.WithLabelValues(t.label).Inc()
			t.log.Warn("webhook delivery failed, giving up on this change", "delivery", it.id, "attempts", attempt, "err", err)
			return
		}
		d.m.retries.WithLabelValues(t.label).Inc()
		if d.cfg.Sleep(ctx, d.backoff(attempt)) != nil {
			return
		}
	}
}

// backoff is the delay after failed attempt n (1-based): MinBackoff doubled
// n-1 times, capped at MaxBackoff.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.cfg.MinBackoff
	for i := 1; i < n && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.cfg.MaxBackoff)
}

// post makes one attempt; retry says whether another may succeed.
func (d *Dispatcher) post(ctx context.Context, t *target, it item, attempt int) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(it.body))
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "goblog-swarmwatcher")
	// Receivers can drop duplicates of a retried change by this id.
	req.Header.Set("X-Swarmwatcher-Delivery", strconv.FormatUint(it.id, 10))
	req.Header.Set("X-Swarmwatcher-Attempt", strconv.Itoa(attempt))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return false, fmt.Errorf("receiver refused with %s", resp.Status)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// redact drops credentials and the query (tokens often live there) from a
// URL so it can be logged and used as a metric label.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "…" + raw[i:]
			}
		}
		return "invalid-url"
	}
	u.User = nil
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	return u.String()
}
