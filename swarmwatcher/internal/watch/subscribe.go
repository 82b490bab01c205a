package watch

// Subscription receives the watcher's messages through a bounded buffer.
// A subscriber that lets the buffer fill up is dropped (its channel closed,
// Dropped true) so that it can never slow the watcher down; it may subscribe
// again and start over from a fresh view.
type Subscription struct {
	w       *Watcher
	c       chan Message
	views   bool
	dropped bool // guarded by w.mu
	closed  bool // guarded by w.mu
}

// Subscribe returns the current view and status together with a
// subscription that receives every message after them, so a subscriber
// neither misses nor repeats a change. With views, it also receives the
// whole view after every update (for the page); buffer bounds how many
// messages may wait.
func (w *Watcher) Subscribe(buffer int, views bool) ([]Service, Status, *Subscription) {
	if buffer < 1 {
		buffer = 1
	}
	s := &Subscription{w: w, c: make(chan Message, buffer), views: views}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.subs[s] = struct{}{}
	if w.m != nil {
		w.m.subscribers.Set(float64(len(w.subs)))
	}
	return w.view, w.status, s
}

// C delivers the messages; it is closed when the subscription ends.
func (s *Subscription) C() <-chan Message { return s.c }

// Dropped reports whether the subscriber was dropped for falling behind.
func (s *Subscription) Dropped() bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.dropped
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.remove(s)
}

// remove ends s. Caller holds w.mu.
func (w *Watcher) remove(s *Subscription) {
	if s.closed {
		return
	}
	s.closed = true
	delete(w.subs, s)
	close(s.c)
	if w.m != nil {
		w.m.subscribers.Set(float64(len(w.subs)))
	}
}

// publish hands m to every subscriber without ever blocking. Caller holds w.mu.
func (w *Watcher) publish(m Message) {
	for s := range w.subs {
		if m.Kind == KindServices && !s.views {
			continue
		}
		select {
		case s.c <- m:
		default:
			s.dropped = true
			w.remove(s)
			if w.m != nil {
				w.m.dropped.Inc()
			}
			w.log.Warn("subscriber fell behind: dropped")
		}
	}
}
