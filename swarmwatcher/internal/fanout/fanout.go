// Package fanout is the swarmwatcher's one publish/subscribe mechanism: a
// Hub hands each published value to every subscriber through a bounded
// buffer, never blocking the publisher. A subscriber that lets its buffer fill
// up is dropped (its channel closed) so that it can never slow the publisher
// or the other subscribers down; it may subscribe again and start over.
//
// The watcher publishes its domain changes on one Hub (read by the server's
// encoder and the webhook forwarder); the server publishes each change,
// encoded once, on another (read by every event-stream client).
//
// Values carry a sequence number. A subscriber that needs a consistent
// starting point subscribes first, then reads the state and its sequence
// number, and skips (Sub.Skip) values up to that number: a value published
// before the state was read is then ignored, and none published after it is
// missed. No lock is held while a value is delivered to a subscriber other
// than the Hub's own, and no callback runs under it.
package fanout

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Errors of Subscribe.
var (
	// ErrFull means the Hub has MaxSubscribers already.
	ErrFull = errors.New("too many subscribers")
	// ErrKeyFull means the key (e.g. a client IP) has MaxPerKey already.
	ErrKeyFull = errors.New("too many subscribers from one client")
)

// Config bounds a Hub. Zero values mean no bound.
type Config struct {
	// MaxSubscribers bounds the subscribers overall.
	MaxSubscribers int
	// MaxPerKey bounds the subscribers sharing one key.
	MaxPerKey int
	// OnCount is told the subscriber count after every change of it, and
	// OnDrop each subscriber dropped for falling behind; OnReject each
	// refused subscription. They run after the Hub's lock is released and
	// must be cheap (metrics).
	OnCount  func(n int)
	OnDrop   func()
	OnReject func(err error)
}

// Message is one published value and its sequence number.
type Message[T any] struct {
	Seq   uint64
	Value T
}

// Hub fans values out to subscribers. The zero value is not usable: call New.
type Hub[T any] struct {
	cfg  Config
	mu   sync.Mutex
	subs map[*Sub[T]]struct{}
	keys map[string]int
}

// New returns an empty Hub.
func New[T any](cfg Config) *Hub[T] {
	return &Hub[T]{cfg: cfg, subs: map[*Sub[T]]struct{}{}, keys: map[string]int{}}
}

// Sub is one subscription.
type Sub[T any] struct {
	hub     *Hub[T]
	c       chan Message[T]
	key     string
	skip    atomic.Uint64
	dropped atomic.Bool
	closed  bool // guarded by hub.mu
}

// Subscribe adds a subscriber whose buffer holds buffer values (at least 1);
// key groups subscribers for MaxPerKey ("" for none).
func (h *Hub[T]) Subscribe(buffer int, key string) (*Sub[T], error) {
	s := &Sub[T]{hub: h, c: make(chan Message[T], max(buffer, 1)), key: key}
	h.mu.Lock()
	var err error
	switch {
	case h.cfg.MaxSubscribers > 0 && len(h.subs) >= h.cfg.MaxSubscribers:
		err = ErrFull
	case key != "" && h.cfg.MaxPerKey > 0 && h.keys[key] >= h.cfg.MaxPerKey:
		err = ErrKeyFull
	default:
		h.subs[s] = struct{}{}
		if key != "" {
			h.keys[key]++
		}
	}
	n := len(h.subs)
	h.mu.Unlock()
	if err != nil {
		if h.cfg.OnReject != nil {
			h.cfg.OnReject(err)
		}
		return nil, err
	}
	h.count(n)
	return s, nil
}

// Len returns the current number of subscribers.
func (h *Hub[T]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish hands v to every subscriber without ever blocking; subscribers
// whose buffer is full are dropped. Subscribers filter what they read
// themselves, so nothing but a channel send happens under the Hub's lock.
func (h *Hub[T]) Publish(seq uint64, v T) {
	m := Message[T]{Seq: seq, Value: v}
	var dropped int
	h.mu.Lock()
	for s := range h.subs {
		select {
		case s.c <- m:
		default:
			s.dropped.Store(true)
			h.removeLocked(s)
			dropped++
		}
	}
	n := len(h.subs)
	h.mu.Unlock()
	if dropped > 0 {
		if h.cfg.OnDrop != nil {
			for range dropped {
				h.cfg.OnDrop()
			}
		}
		h.count(n)
	}
}

func (h *Hub[T]) count(n int) {
	if h.cfg.OnCount != nil {
		h.cfg.OnCount(n)
	}
}

// removeLocked ends s. Caller holds h.mu.
func (h *Hub[T]) removeLocked(s *Sub[T]) bool {
	if s.closed {
		return false
	}
	s.closed = true
	delete(h.subs, s)
	if s.key != "" {
		if h.keys[s.key]--; h.keys[s.key] <= 0 {
			delete(h.keys, s.key)
		}
	}
	close(s.c)
	return true
}

// CloseAll ends every subscription (their channels close; Dropped stays
// false): the subscribers start over.
func (h *Hub[T]) CloseAll() {
	h.mu.Lock()
	for s := range h.subs {
		h.removeLocked(s)
	}
	h.mu.Unlock()
	h.count(0)
}

// C delivers the messages; it is closed when the subscription ends. Use
// Keep to honour Skip.
func (s *Sub[T]) C() <-chan Message[T] { return s.c }

// Skip makes Keep refuse messages with a sequence number up to seq: those the
// state the subscriber started from already holds.
func (s *Sub[T]) Skip(seq uint64) { s.skip.Store(seq) }

// Keep reports whether m is new to the subscriber (after its Skip).
func (s *Sub[T]) Keep(m Message[T]) bool { return m.Seq > s.skip.Load() }

// Key returns the key the subscriber was added with.
func (s *Sub[T]) Key() string { return s.key }

// Dropped reports whether the subscriber was dropped for falling behind.
func (s *Sub[T]) Dropped() bool { return s.dropped.Load() }

// Close ends the subscription; safe to call more than once.
func (s *Sub[T]) Close() {
	h := s.hub
	h.mu.Lock()
	removed := h.removeLocked(s)
	n := len(h.subs)
	h.mu.Unlock()
	if removed {
		h.count(n)
	}
}
