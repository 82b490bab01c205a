package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/goblog/goblog/internal/backoff"
)

// WatchConfig tunes the event stream's reconnects.
type WatchConfig struct {
	// ConnectTimeout bounds the wait for the stream's first answer.
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnects.
	MinBackoff, MaxBackoff time.Duration
	// ConnectGrace is how long a new stream must stay up (or deliver an
	// event) before it counts as connected; default 100ms. See stream.
	ConnectGrace time.Duration
}

// Watch follows the engine's event stream and calls trigger for every event
// that can change what a refresh sees, and once after every (re)connect, so
// that nothing that happened while disconnected is missed. It reconnects with
// the project's backoff (jittered) and returns only when ctx ends.
func (d *Discovery) Watch(ctx context.Context, cfg WatchConfig, trigger func(reason string)) error {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = d.cfg.CallTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.ConnectGrace <= 0 {
		cfg.ConnectGrace = 100 * time.Millisecond
	}
	b := backoff.New(cfg.MinBackoff, cfg.MaxBackoff)
	for {
		connected, err := d.stream(ctx, cfg, trigger)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			b.Reset()
		}
		d.log.Warn("event stream lost, reconnecting", "err", err, "attempt", b.Attempt())
		trigger("event stream lost")
		if !b.Wait(ctx) {
			return nil
		}
	}
}

// stream runs one event subscription until it fails. connected says whether
// it got as far as an open stream.
func (d *Discovery) stream(ctx context.Context, cfg WatchConfig, trigger func(string)) (connected bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ServiceEventType)),
		filters.Arg("type", string(events.NodeEventType)),
		filters.Arg("type", string(events.ContainerEventType)),
	)}
	type subscription struct {
		msgs <-chan events.Message
		errs <-chan error
	}
	opened := make(chan subscription, 1)
	// Events blocks until the engine answers; bound that wait.
	go func() {
		m, e := d.api.Events(sctx, opts)
		opened <- subscription{m, e}
	}()
	var sub subscription
	t := time.NewTimer(cfg.ConnectTimeout)
	select {
	case sub = <-opened:
		t.Stop()
	case <-t.C:
		cancel()
		<-opened
		return false, fmt.Errorf("events: no answer within %s", cfg.ConnectTimeout)
	case <-ctx.Done():
		t.Stop()
		cancel()
		<-opened
		return false, ctx.Err()
	}
	// The client returns before it reports a refused subscription (an HTTP
	// error) on errs, and nothing marks a stream that is open. So a stream
	// counts as connected once it has delivered an event or stayed up for
	// the grace; otherwise a failing engine would look connected every time
	// and the backoff would never grow.
	var first *events.Message
	grace := time.NewTimer(cfg.ConnectGrace)
	select {
	case err, ok := <-sub.errs:
		grace.Stop()
		if !ok || err == nil {
			err = errors.New("closed")
		}
		return false, fmt.Errorf("events: %w", err)
	case m, ok := <-sub.msgs:
		grace.Stop()
		if !ok {
			return false, errors.New("events: closed")
		}
		first = &m
	case <-grace.C:
	case <-ctx.Done():
		grace.Stop()
		return false, ctx.Err()
	}
	trigger("event stream connected")
	if first != nil && relevant(*first) {
		trigger(string(first.Type) + " " + string(first.Action))
	}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err, ok := <-sub.errs:
			if !ok || err == nil {
				err = errors.New("closed")
			}
			return true, fmt.Errorf("events: %w", err)
		case m, ok := <-sub.msgs:
			if !ok {
				return true, errors.New("events: closed")
			}
			if relevant(m) {
				trigger(string(m.Type) + " " + string(m.Action))
			}
		}
	}
}

// relevant keeps the events that can change the task list or addresses;
// containers' exec_* events (every HEALTHCHECK run) are noise.
func relevant(m events.Message) bool {
	if m.Type != events.ContainerEventType {
		return true
	}
	a := string(m.Action)
	switch {
	case a == "start", a == "die", a == "destroy", a == "oom", a == "kill":
		return true
	case strings.HasPrefix(a, "health_status"):
		return true
	}
	return false
}
