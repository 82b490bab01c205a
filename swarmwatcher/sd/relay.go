package sd

import (
	"sync"

	kitsd "github.com/go-kit/kit/sd"
)

// relay stands between an Instancer and go-kit's Endpointer and tells when
// the Endpointer has applied the Instancer's first event, without polling:
// go-kit's Endpointer applies one event before it reads the next, so once a
// second copy of the first event has been taken, the first is applied
// (applying the same set twice changes nothing).
type relay struct {
	inst    kitsd.Instancer
	applied chan struct{} // closed once the first event is applied

	mu    sync.Mutex
	links map[chan<- kitsd.Event]*link
}

type link struct {
	in   chan kitsd.Event
	quit chan struct{}
	done chan struct{}
}

var _ kitsd.Instancer = (*relay)(nil)

func newRelay(inst kitsd.Instancer) *relay {
	return &relay{inst: inst, applied: make(chan struct{}), links: map[chan<- kitsd.Event]*link{}}
}

// Register implements kitsd.Instancer: ch receives inst's events through a
// goroutine of the relay.
func (r *relay) Register(ch chan<- kitsd.Event) {
	l := &link{in: make(chan kitsd.Event), quit: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	r.links[ch] = l
	r.mu.Unlock()
	go r.forward(l, ch)
	r.inst.Register(l.in)
}

// Deregister implements kitsd.Instancer. The forwarding goroutine has ended
// when it returns, so the caller may close ch (go-kit's Endpointer does).
func (r *relay) Deregister(ch chan<- kitsd.Event) {
	r.mu.Lock()
	l := r.links[ch]
	delete(r.links, ch)
	r.mu.Unlock()
	if l == nil {
		return
	}
	r.inst.Deregister(l.in)
	close(l.quit)
	<-l.done
}

// Stop implements kitsd.Instancer; the Instancer stays its owner's to stop.
func (r *relay) Stop() {}

func (r *relay) forward(l *link, ch chan<- kitsd.Event) {
	defer close(l.done)
	first := true
	for {
		var ev kitsd.Event
		select {
		case ev = <-l.in:
		case <-l.quit:
			return
		}
		copies := 1
		if first {
			copies = 2
		}
		for range copies {
			select {
			case ch <- ev:
			case <-l.quit:
				return
			}
		}
		if first {
			first = false
			r.once()
		}
	}
}

func (r *relay) once() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.applied:
	default:
		close(r.applied)
	}
}
