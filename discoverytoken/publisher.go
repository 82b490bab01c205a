package discoverytoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goblog/goblog/internal/backoff"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// URL is the broker, e.g. amqp://publisher:secret@rabbitmq:5672/. Required. It may hold
	// credentials: the Publisher never logs it (RedactURL shows it safely).
	URL string
	// Service, Address, Port and InstanceID describe the instance; all required.
	Service    string
	Address    string
	Port       int
	InstanceID string
	// Interval is the heartbeat cadence: UP is sent again this often. Default 5 s.
	Interval time.Duration
	// TTL is how long a consumer keeps the instance without a heartbeat. Default 3×Interval.
	TTL time.Duration
	// Ready, when set, delays the first UP until it is closed (the service is ready).
	Ready <-chan struct{}
	// MinBackoff and MaxBackoff bound the reconnect delay. Defaults 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// ConfirmTimeout bounds dialling, one publish and its broker confirm. Default 2 s.
	ConfirmTimeout time.Duration
	// Heartbeat is the AMQP heartbeat. Default 10 s.
	Heartbeat time.Duration
	// Logger receives connection changes; nil discards.
	Logger *slog.Logger
	// Now is the clock for token timestamps; nil means time.Now.
	Now func() time.Time
}

func (c *PublisherConfig) defaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = 3 * c.Interval
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = 2 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a configuration the Publisher cannot run with.
func (c PublisherConfig) Validate() error {
	if err := checkURL(c.URL); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	if c.TTL > MaxTTL {
		return fmt.Errorf("publisher: TTL %s is over the contract's %s", c.TTL, MaxTTL)
	}
	for name, d := range map[string]time.Duration{"interval": c.Interval, "TTL": c.TTL, "min backoff": c.MinBackoff,
		"max backoff": c.MaxBackoff, "confirm timeout": c.ConfirmTimeout, "heartbeat": c.Heartbeat} {
		if d < 0 {
			return fmt.Errorf("publisher: %s is negative", name)
		}
	}
	c.defaults()
	if _, err := c.token(StateUp).Marshal(); err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	return nil
}

func (c PublisherConfig) token(s State) Token {
	ttl := int((c.TTL + time.Second - 1) / time.Second)
	return Token{
		State: s, Address: c.Address, Port: c.Port, Service: c.Service,
		InstanceID: c.InstanceID, TTLSeconds: ttl, Timestamp: c.Now().UTC(),
	}
}

// Publisher announces one instance on the discovery exchange. It runs in its own goroutine
// (Run) and shares nothing with the service's request path, so a slow or absent broker never
// delays a request.
//
// Broker permissions it needs: write on the exchange. It declares the exchange only if it is
// missing (see ensureExchange), so a user without configure permission can publish.
type Publisher struct {
	cfg       PublisherConfig
	connected atomic.Bool
	published atomic.Uint64
}

// NewPublisher checks cfg and returns a Publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	return &Publisher{cfg: cfg}, nil
}

// Connected reports whether the publisher has a live, confirmed channel.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// Published is the number of tokens the broker has confirmed.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Run waits until the service is ready, publishes UP and then a heartbeat UP every
// interval, reconnecting with backoff whenever the broker goes away. When ctx ends it
// publishes DOWN (waiting for the broker's confirm, at most ConfirmTimeout) before it closes
// the connection, and returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	if p.cfg.Ready != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-p.cfg.Ready:
		}
	}
	log := p.cfg.Logger.With("instanceId", p.cfg.InstanceID, "broker", RedactURL(p.cfg.URL))
	b := backoff.New(p.cfg.MinBackoff, p.cfg.MaxBackoff)
	failing := false
	for {
		conn, ch, err := p.dial(ctx)
		if err == nil {
			before := p.published.Load()
			err = p.session(ctx, conn, ch, log)
			if err == nil {
				return nil
			}
			if p.published.Load() != before {
				b.Reset()
				failing = false // it was publishing: this is a new outage, say so
			}
		}
		if ctx.Err() != nil {
			log.Info("discovery publisher stopped while disconnected: no DOWN sent, consumers will expire the instance after its TTL")
			return nil
		}
		if !failing {
			log.Warn("discovery publisher lost the broker, retrying with backoff", "err", err)
			failing = true
		}
		if !b.Wait(ctx) {
			return nil
		}
	}
}

// session publishes on one connection until it fails (returns the error) or ctx ends
// (publishes DOWN, closes, returns nil).
func (p *Publisher) session(ctx context.Context, conn *amqp.Connection, ch *amqp.Channel, log *slog.Logger) error {
	defer func() {
		p.connected.Store(false)
		_ = conn.Close()
	}()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := p.publish(ctx, ch, StateUp); err != nil {
		return err
	}
	p.connected.Store(true)
	log.Info("discovery publisher connected, UP sent", "interval", p.cfg.Interval.String(), "ttl", p.cfg.TTL.String())
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// A fresh context: the service's one has ended, but DOWN must still go out.
			if err := p.publish(context.Background(), ch, StateDown); err != nil {
				log.Warn("discovery publisher could not send DOWN", "err", err)
			} else {
				log.Info("discovery publisher sent DOWN")
			}
			return nil
		case amqpErr, ok := <-closed:
			if !ok || amqpErr == nil {
				return errors.New("connection closed")
			}
			return amqpErr
		case <-tick.C:
			if err := p.publish(ctx, ch, StateUp); err != nil {
				if ctx.Err() != nil {
					continue // the DOWN case above handles shutdown
				}
				return err
			}
		}
	}
}

func (p *Publisher) publish(ctx context.Context, ch *amqp.Channel, s State) error {
	body, err := p.cfg.token(s).Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConfirmTimeout)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, Exchange, "", false, false, amqp.Publishing{
		ContentType: "application/json",
		Timestamp:   p.cfg.Now(),
		// A token older than its TTL says nothing any more; let the broker drop it.
		Expiration: strconv.FormatInt(p.cfg.TTL.Milliseconds(), 10),
		Body:       body,
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", s, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("confirm %s: %w", s, err)
	}
	if !ok {
		return fmt.Errorf("publish %s: broker nacked the token", s)
	}
	p.published.Add(1)
	return nil
}

// dial opens a connection and a channel in confirm mode on which the exchange exists.
func (p *Publisher) dial(ctx context.Context) (*amqp.Connection, *amqp.Channel, error) {
	conn, ch, err := dial(ctx, p.cfg.URL, p.cfg.ConfirmTimeout, p.cfg.Heartbeat, "goblog-discovery-publisher")
	if err != nil {
		return nil, nil, err
	}
	if ch, err = ensureExchange(conn, ch); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("confirm mode: %w", err)
	}
	return conn, ch, nil
}
