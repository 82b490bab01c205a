package discoverytoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TokenSink receives every valid token a Consumer reads. *Registry is one.
type TokenSink interface {
	Apply(Token) []Event
}

var _ TokenSink = (*Registry)(nil)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// URL is the broker. Required.
	URL string
	// Sink receives the valid tokens. Required.
	Sink TokenSink
	// Prefetch is how many unacknowledged tokens the broker may send ahead. Default 512.
	Prefetch int
	// MinBackoff and MaxBackoff bound the reconnect delay. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds dialling and declaring. Default 5 s.
	DialTimeout time.Duration
	// Logger receives connection changes and malformed-token warnings; nil discards.
	Logger *slog.Logger
}

// Validate reports a configuration the Consumer cannot run with.
func (c ConsumerConfig) Validate() error {
	if c.URL == "" {
		return errors.New("consumer: AMQP URL is empty")
	}
	if _, err := amqp.ParseURI(c.URL); err != nil {
		return fmt.Errorf("consumer: AMQP URL: %w", err)
	}
	if c.Sink == nil {
		return errors.New("consumer: no token sink")
	}
	return nil
}

// ConsumerStats counts what a Consumer has seen.
type ConsumerStats struct {
	Received   uint64 `json:"received"`   // messages delivered
	Malformed  uint64 `json:"malformed"`  // rejected without requeue
	Subscribes uint64 `json:"subscribes"` // successful subscriptions (1 + reconnects)
	Subscribed bool   `json:"subscribed"`
}

// Consumer reads discovery tokens from its own exclusive, auto-delete queue bound to the
// fanout exchange, so any number of consumers each see every token. Valid tokens go to the
// sink and are acknowledged; malformed ones are rejected without requeue and counted.
type Consumer struct {
	cfg        ConsumerConfig
	subscribed atomic.Bool
	received   atomic.Uint64
	malformed  atomic.Uint64
	subscribes atomic.Uint64
	// lastWarn rate-limits the malformed-token log line.
	lastWarn atomic.Int64
}

// NewConsumer checks cfg and returns a Consumer.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 512
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Consumer{cfg: cfg}, nil
}

// Subscribed reports whether the consumer is subscribed to the broker right now.
func (c *Consumer) Subscribed() bool { return c.subscribed.Load() }

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Received: c.received.Load(), Malformed: c.malformed.Load(),
		Subscribes: c.subscribes.Load(), Subscribed: c.subscribed.Load(),
	}
}

// Run subscribes and consumes until ctx ends, re-subscribing with backoff whenever the
// broker goes away. It returns nil when ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.cfg.Logger
	b := newBackoff(c.cfg.MinBackoff, c.cfg.MaxBackoff)
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
		if !b.wait(ctx) {
			return nil
		}
	}
}

func (c *Consumer) session(ctx context.Context, b *backoff, log *slog.Logger) error {
	conn, ch, err := dial(ctx, c.cfg.URL, c.cfg.DialTimeout)
	if err != nil {
		return err
	}
	defer func() {
		c.subscribed.Store(false)
		_ = conn.Close()
	}()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
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
	c.subscribes.Add(1)
	b.reset()
	log.Info("discovery consumer subscribed", "exchange", Exchange, "queue", q.Name)
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
	tok, err := Parse(d.Body)
	if err != nil {
		n := c.malformed.Add(1)
		// One line per second at most: a flood of garbage must not flood the log.
		now := time.Now().UnixNano()
		if last := c.lastWarn.Load(); now-last > int64(time.Second) && c.lastWarn.CompareAndSwap(last, now) {
			log.Warn("discovery consumer rejected a malformed token", "err", err, "malformedTotal", n)
		}
		_ = d.Reject(false)
		return
	}
	c.cfg.Sink.Apply(tok)
	_ = d.Ack(false)
}
