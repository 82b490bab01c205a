package discoverytoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goblog/goblog/internal/backoff"
)

// TokenSink receives every valid token a Consumer reads, and hears whether the consumer is
// subscribed (so it can hold its evictions while tokens cannot arrive). *Registry is one.
type TokenSink interface {
	Apply(Token) []Event
	SetSubscribed(up bool)
}

var _ TokenSink = (*Registry)(nil)

// Defaults of ConsumerConfig.
const (
	DefaultPrefetch       = 512
	DefaultMaxQueueLength = 10000
	DefaultMaxQueueBytes  = 16 << 20
	DefaultHeartbeat      = 5 * time.Second
)

// ConsumerConfig configures a Consumer. Zero fields take the defaults.
type ConsumerConfig struct {
	// URL is the broker. Required. It may hold credentials: the Consumer never logs it
	// (RedactURL shows it safely).
	URL string
	// Sink receives the valid tokens. Required.
	Sink TokenSink
	// Prefetch is how many unacknowledged tokens the broker may send ahead. Default 512.
	Prefetch int
	// MaxQueueLength and MaxQueueBytes bound the consumer's queue on the broker
	// (x-max-length, x-max-length-bytes); beyond them the broker drops the oldest tokens
	// (x-overflow: drop-head): a newer heartbeat says more than an older one. Defaults 10000
	// tokens and 16 MiB.
	MaxQueueLength int
	MaxQueueBytes  int
	// MinBackoff and MaxBackoff bound the reconnect delay. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds dialling and the AMQP handshake. Default 5 s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat: a silently dead broker is noticed (and the sink told
	// it is unsubscribed) after about three of them. Default 5 s.
	Heartbeat time.Duration
	// Now is the clock tokens' timestamps are checked against; nil means time.Now.
	Now func() time.Time
	// Logger receives connection changes and malformed-token warnings; nil discards.
	Logger *slog.Logger
}

// Validate reports every setting the Consumer cannot run with.
func (c ConsumerConfig) Validate() error {
	var errs []error
	if err := checkURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("consumer: %w", err))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("consumer: no token sink"))
	}
	for name, v := range map[string]int64{
		"prefetch": int64(c.Prefetch), "max queue length": int64(c.MaxQueueLength),
		"max queue bytes": int64(c.MaxQueueBytes), "min backoff": int64(c.MinBackoff),
		"max backoff": int64(c.MaxBackoff), "dial timeout": int64(c.DialTimeout),
		"heartbeat": int64(c.Heartbeat),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("consumer: %s is negative", name))
		}
	}
	if c.Prefetch > 65535 {
		errs = append(errs, errors.New("consumer: prefetch is over 65535"))
	}
	return errors.Join(errs...)
}

// ConsumerStats counts what a Consumer has seen.
type ConsumerStats struct {
	Received  uint64 `json:"received"`  // messages delivered
	Malformed uint64 `json:"malformed"` // rejected without requeue
	// MalformedByKind splits Malformed by MalformedError.Kind (a small fixed set).
	MalformedByKind map[string]uint64 `json:"malformedByKind"`
	Subscribes      uint64            `json:"subscribes"` // successful subscriptions (1 + reconnects)
	Subscribed      bool              `json:"subscribed"`
}

// Consumer reads discovery tokens from its own exclusive, auto-delete, server-named queue
// bound to the fanout exchange, so any number of consumers each see every token. Valid
// tokens go to the sink and are acknowledged; malformed ones are rejected without requeue,
// counted per kind and logged once per kind.
//
// Broker permissions it needs: configure on its own queue (server-named, amq.gen-.*), write
// on that queue and read on the exchange (to bind), read on the queue (to consume). It
// declares the exchange only if it is missing (see ensureExchange).
type Consumer struct {
	cfg        ConsumerConfig
	subscribed atomic.Bool
	received   atomic.Uint64
	malformed  atomic.Uint64
	subscribes atomic.Uint64

	mu     sync.Mutex
	byKind map[string]uint64 // malformed tokens by kind; the first of each kind is logged
}

// NewConsumer checks cfg and returns a Consumer.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.MaxQueueLength == 0 {
		cfg.MaxQueueLength = DefaultMaxQueueLength
	}
	if cfg.MaxQueueBytes == 0 {
		cfg.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Consumer{cfg: cfg, byKind: map[string]uint64{}}, nil
}

// Subscribed reports whether the consumer is subscribed to the broker right now.
func (c *Consumer) Subscribed() bool { return c.subscribed.Load() }

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	c.mu.Lock()
	byKind := maps.Clone(c.byKind)
	c.mu.Unlock()
	return ConsumerStats{
		Received: c.received.Load(), Malformed: c.malformed.Load(), MalformedByKind: byKind,
		Subscribes: c.subscribes.Load(), Subscribed: c.subscribed.Load(),
	}
}

// Run subscribes and consumes until ctx ends, re-subscribing with backoff whenever the
// broker goes away, and tells the sink each time the subscription comes or goes. It returns
// nil when ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.cfg.Logger.With("broker", RedactURL(c.cfg.URL))
	c.cfg.Sink.SetSubscribed(false)
	b := backoff.New(c.cfg.MinBackoff, c.cfg.MaxBackoff)
	failing := false
	for {
		before := c.subscribes.Load()
		err := c.session(ctx, b, log)
		if ctx.Err() != nil {
			return nil
		}
		if c.subscribes.Load() != before {
			failing = false // it was subscribed: this is a new outage
		}
		if !failing {
			log.Warn("discovery consumer lost the broker, retrying with backoff", "err", err)
			failing = true
		}
		if !b.Wait(ctx) {
			return nil
		}
	}
}

func (c *Consumer) session(ctx context.Context, b *backoff.Backoff, log *slog.Logger) error {
	conn, ch, err := dial(ctx, c.cfg.URL, c.cfg.DialTimeout, c.cfg.Heartbeat, "goblog-discovery-consumer")
	if err != nil {
		return err
	}
	defer func() {
		if c.subscribed.Swap(false) {
			c.cfg.Sink.SetSubscribed(false)
		}
		_ = conn.Close()
	}()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if ch, err = ensureExchange(conn, ch); err != nil {
		return err
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{
		"x-max-length":       int64(c.cfg.MaxQueueLength),
		"x-max-length-bytes": int64(c.cfg.MaxQueueBytes),
		"x-overflow":         "drop-head",
	})
	if err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(q.Name, "", Exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, q.Name, "", false, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	c.subscribed.Store(true)
	c.cfg.Sink.SetSubscribed(true)
	c.subscribes.Add(1)
	b.Reset()
	log.Info("discovery consumer subscribed", "exchange", Exchange, "queue", q.Name,
		"maxQueueLength", c.cfg.MaxQueueLength, "maxQueueBytes", c.cfg.MaxQueueBytes)
	for {
		select {
		case <-ctx.Done():
			return nil
		case amqpErr, ok := <-closed:
			if !ok || amqpErr == nil {
				return errors.New("connection closed")
			}
			return amqpErr
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			c.handle(d, log)
		}
	}
}

func (c *Consumer) handle(d amqp.Delivery, log *slog.Logger) {
	c.received.Add(1)
	tok, err := Parse(d.Body, c.cfg.Now())
	if err != nil {
		c.countMalformed(err, log)
		_ = d.Reject(false)
		return
	}
	c.cfg.Sink.Apply(tok)
	_ = d.Ack(false)
}

// countMalformed counts a malformed token and logs the first of its kind: a flood of garbage
// shows up in the counters (Stats), not as a flood of log lines.
func (c *Consumer) countMalformed(err error, log *slog.Logger) {
	n := c.malformed.Add(1)
	kind := MalformedKind(err)
	c.mu.Lock()
	c.byKind[kind]++
	first := c.byKind[kind] == 1
	c.mu.Unlock()
	if first {
		log.Warn("discovery consumer rejected a malformed token; further ones of this kind are only counted",
			"kind", kind, "err", err, "malformedTotal", n)
	}
}
