// Package webhook delivers the swarmwatcher's changes to HTTP receivers, the
// way Docker Flow Swarm Listener users expect: every change is POSTed as JSON
// to each configured URL, with a deadline per call and retries with backoff.
// Each URL has its own bounded queue and worker, so a slow or dead receiver
// delays only itself; when its queue is full the oldest change is dropped
// and counted. Send never blocks.
//
// Delivery is at least once: a POST whose answer is lost or late is retried
// with the same webhook-id (and X-Swarmwatcher-Delivery) header, by which a
// receiver can drop the duplicate. A 2xx answer is success; 408, 429, 5xx and
// network errors are retried, after the receiver's Retry-After when a 429 or
// 503 carries one; any other answer, redirects included (they are never
// followed), is a permanent refusal.
//
// With a secret, every POST is signed as the Standard Webhooks specification
// says: webhook-id, webhook-timestamp (Unix seconds of the attempt) and
// webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
//
// URLs are logged and used as metric labels without credentials or query
// (tokens often live there).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goblog/goblog/internal/backoff"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// Config configures a Dispatcher. Zero values take the documented defaults.
type Config struct {
	// URLs receive a POST of every change.
	URLs []string
	// Timeout bounds one POST, response included. Default 5 s.
	Timeout time.Duration
	// MaxAttempts per change and URL, the first included. Default 5.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the delay between attempts (the
	// project's backoff: doubling, jittered). Defaults 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps a receiver's Retry-After. Default 5 min.
	MaxRetryAfter time.Duration
	// Secret, when set, signs every POST (see the package comment); see
	// ParseSecret for its format.
	Secret []byte
	// Events, when not empty, are the only change types sent.
	Events []api.EventType
	// QueueSize is how many changes wait per URL; past it the oldest is
	// dropped. Default 256.
	QueueSize int
	// Client makes the POSTs; default a plain http.Client (the deadline
	// comes from Timeout).
	Client *http.Client
	// Sleep waits d or until ctx ends; tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter draws the backoff's jitter from [0, n]; tests inject it.
	Jitter func(n int64) int64
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

// maxURLLen bounds one webhook URL.
const maxURLLen = 2048

func checkURL(raw string) error {
	if len(raw) > maxURLLen {
		return fmt.Errorf("webhook url %q: longer than %d bytes", redact(raw), maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url's error repeats the input, credentials included: say less.
		return fmt.Errorf("webhook url %q: not a valid URL", redact(raw))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return fmt.Errorf("webhook url %q: want http(s)://host[:port]/path", redact(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("webhook url %q: port out of range", redact(raw))
		}
	}
	return nil
}

// ParseSecret reads WEBHOOK_SECRET: "whsec_<base64>" as the Standard Webhooks
// specification serialises a secret (the base64 decodes to the key), or any
// other string used as its own bytes. Empty gives none (no signing). A key
// shorter than 16 bytes is refused: it would sign nothing worth trusting.
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	key := []byte(s)
	if b64, ok := strings.CutPrefix(s, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return nil, errors.New("webhook secret: whsec_ is not followed by standard base64")
		}
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("webhook secret: the key is %d bytes, want at least 16", len(key))
	}
	return key, nil
}

// ParseEvents reads WEBHOOK_EVENTS, a comma-separated list of change types;
// empty means every type.
func ParseEvents(s string) ([]api.EventType, error) {
	var out []api.EventType
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !slices.Contains(api.EventTypes, api.EventType(raw)) {
			return nil, fmt.Errorf("webhook event %q: want one of %v", raw, api.EventTypes)
		}
		out = append(out, api.EventType(raw))
	}
	return out, nil
}

// Sign returns the webhook-signature value for one delivery: "v1," and the
// base64 HMAC-SHA256, keyed by key, of "id.timestamp.body".
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	for _, u := range c.URLs {
		if err := checkURL(u); err != nil {
			return err
		}
	}
	if c.Timeout < 0 || c.MaxAttempts < 0 || c.QueueSize < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MaxRetryAfter < 0 {
		return errors.New("webhook: timeout, attempts, queue size and backoff must not be negative")
	}
	for _, e := range c.Events {
		if !slices.Contains(api.EventTypes, e) {
			return fmt.Errorf("webhook event %q: unknown", e)
		}
	}
	if c.Secret != nil && len(c.Secret) < 16 {
		return errors.New("webhook secret: want at least 16 bytes")
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
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = 5 * time.Minute
	}
	if c.Client == nil {
		c.Client = &http.Client{}
	}
	// A receiver's redirect is its answer, never followed: the change goes
	// only where it was configured to go.
	cl := *c.Client
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Client = &cl
	if c.Sleep == nil {
		c.Sleep = backoff.Sleep
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
	idBase  string // makes webhook-id unique across restarts
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
	filtered                       prometheus.Counter
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
		filtered: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "filtered_total", Help: "Changes not sent because their type is not in WEBHOOK_EVENTS."}),
	}
}

func (m metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.sent, m.failed, m.retries, m.dropped, m.queued, m.delay, m.filtered} {
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
	d := &Dispatcher{cfg: cfg, m: newMetrics(), idBase: strconv.FormatInt(cfg.Now().UnixNano(), 36)}
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
// a receiver. change is marshalled to JSON here. A nil Dispatcher, one
// without URLs, or one whose Events leave change's type out ignores it.
func (d *Dispatcher) Send(change api.Change) {
	if d == nil || len(d.targets) == 0 {
		return
	}
	if len(d.cfg.Events) > 0 && !slices.Contains(d.cfg.Events, change.Type) {
		d.m.filtered.Inc()
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
	b := &backoff.Backoff{Min: d.cfg.MinBackoff, Max: d.cfg.MaxBackoff, Jitter: d.cfg.Jitter}
	for attempt := 1; ; attempt++ {
		retry, after, err := d.post(ctx, t, it, attempt)
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
		// The receiver's Retry-After, when longer, wins over the backoff.
		if d.cfg.Sleep(ctx, max(b.Next(), min(after, d.cfg.MaxRetryAfter))) != nil {
			return
		}
	}
}

// post makes one attempt; retry says whether another may succeed, after
// the wait the receiver asked for (0: none).
func (d *Dispatcher) post(ctx context.Context, t *target, it item, attempt int) (retry bool, after time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(it.body))
	if err != nil {
		return false, 0, errors.New("build request: invalid URL") // the error would repeat the URL
	}
	id := "msg_" + d.idBase + "_" + strconv.FormatUint(it.id, 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "goblog-swarmwatcher")
	// Receivers can drop duplicates of a retried change by its id.
	req.Header.Set("webhook-id", id)
	req.Header.Set("X-Swarmwatcher-Delivery", strconv.FormatUint(it.id, 10))
	req.Header.Set("X-Swarmwatcher-Attempt", strconv.Itoa(attempt))
	if d.cfg.Secret != nil {
		ts := d.cfg.Now().Unix()
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(d.cfg.Secret, id, ts, it.body))
	}
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return true, 0, fmt.Errorf("post: %w", redactErr(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return false, 0, nil
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable:
		return true, retryAfter(resp.Header.Get("Retry-After"), d.cfg.Now()), fmt.Errorf("receiver answered %s", resp.Status)
	case code == http.StatusRequestTimeout, code >= 500:
		return true, 0, fmt.Errorf("receiver answered %s", resp.Status)
	default:
		return false, 0, fmt.Errorf("receiver refused with %s", resp.Status)
	}
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date; 0
// when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redactErr keeps the URL out of a client error (url.Error repeats it,
// credentials and query included).
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redact(ue.URL), ue.Err)
	}
	return err
}

// redact drops credentials, query values and the fragment from a URL (tokens
// often live there; query keys stay, so "?token=…" still says which URL it
// is) so that it can be logged and used as a metric label.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid-url"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, url.QueryEscape(k)+"=…")
		}
		slices.Sort(keys)
		if err != nil {
			keys = []string{"…"}
		}
		u.RawQuery = strings.Join(keys, "&")
	}
	u.ForceQuery = false
	return u.String()
}
