package discoverytoken

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// EventType says what happened to an instance in the registry.
type EventType string

// The registry's events.
const (
	EventAdded   EventType = "added"
	EventRemoved EventType = "removed"
)

// Reasons an instance is removed.
const (
	ReasonDown  = "down"  // it said DOWN
	ReasonTTL   = "ttl"   // it was silent for longer than its TTL
	ReasonMoved = "moved" // a newer UP gave it another address or port; an add follows
)

// Instance is one live instance in the registry.
type Instance struct {
	InstanceID string        `json:"instanceId"`
	Service    string        `json:"service"`
	Address    string        `json:"address"`
	Port       int           `json:"port"`
	State      State         `json:"state"`
	FirstSeen  time.Time     `json:"firstSeen"`
	LastSeen   time.Time     `json:"lastSeen"`
	TTL        time.Duration `json:"-"`
	// Stamp is the timestamp of the newest token applied (the publisher's clock).
	Stamp time.Time `json:"-"`
}

// HostPort is address:port of the instance's metrics endpoint.
func (in Instance) HostPort() string {
	return Token{Address: in.Address, Port: in.Port}.HostPort()
}

// Event is one change to the registry.
type Event struct {
	Type     EventType
	Reason   string // for EventRemoved: ReasonDown, ReasonTTL or ReasonMoved
	Instance Instance
	At       time.Time
}

// RegistryConfig configures a Registry. The zero value is usable.
type RegistryConfig struct {
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
	// OnEvent, when set, is called for every event, in order, while the registry's lock is
	// held: it must be quick and must not call back into the registry.
	OnEvent func(Event)
	// Tombstone is how long a DOWN is remembered, so that a late UP sent before the DOWN
	// cannot resurrect the instance. Zero means one minute.
	Tombstone time.Duration
}

// Registry is the set of live instances announced by discovery tokens. It is safe for
// concurrent use; readers get copies.
type Registry struct {
	cfg RegistryConfig

	mu        sync.Mutex
	instances map[string]*Instance
	downs     map[string]tombstone // instanceId → last DOWN
	stats     RegistryStats
}

type tombstone struct {
	stamp   time.Time // publisher's clock
	expires time.Time // our clock
}

// RegistryStats counts what the registry did with the tokens it was given.
type RegistryStats struct {
	Applied uint64 `json:"applied"` // tokens that changed or refreshed the registry
	Stale   uint64 `json:"stale"`   // tokens older than what the registry already knew
	Added   uint64 `json:"added"`
	Removed uint64 `json:"removed"`
	// Removed, by reason.
	RemovedDown  uint64 `json:"removedDown"`
	RemovedTTL   uint64 `json:"removedTTL"`
	RemovedMoved uint64 `json:"removedMoved"`
}

// NewRegistry returns an empty registry.
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tombstone <= 0 {
		cfg.Tombstone = time.Minute
	}
	return &Registry{cfg: cfg, instances: map[string]*Instance{}, downs: map[string]tombstone{}}
}

// Apply brings one token into the registry and returns the events it caused:
//   - UP of an unknown instance adds it (once);
//   - UP of a known one refreshes its last-seen time (no event), or, if its address or port
//     changed, removes and re-adds it;
//   - DOWN removes it;
//   - a token older (by its timestamp) than the newest one seen for that instance, or than
//     its last DOWN, is stale and ignored, so out-of-order delivery cannot resurrect an
//     instance that said DOWN.
func (r *Registry) Apply(t Token) []Event {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()

	if ts, ok := r.downs[t.InstanceID]; ok && !t.Timestamp.After(ts.stamp) {
		r.stats.Stale++
		return nil
	}
	cur, known := r.instances[t.InstanceID]
	if known && t.Timestamp.Before(cur.Stamp) {
		r.stats.Stale++
		return nil
	}
	r.stats.Applied++

	var events []Event
	switch t.State {
	case StateDown:
		r.downs[t.InstanceID] = tombstone{stamp: t.Timestamp, expires: now.Add(r.cfg.Tombstone)}
		if known {
			delete(r.instances, t.InstanceID)
			events = append(events, r.emit(EventRemoved, ReasonDown, *cur, now))
		}
	case StateUp:
		delete(r.downs, t.InstanceID)
		if known && (cur.Address != t.Address || cur.Port != t.Port || cur.Service != t.Service) {
			delete(r.instances, t.InstanceID)
			events = append(events, r.emit(EventRemoved, ReasonMoved, *cur, now))
			known = false
		}
		if known {
			cur.LastSeen, cur.TTL, cur.Stamp = now, t.TTL(), t.Timestamp
			return nil
		}
		in := &Instance{
			InstanceID: t.InstanceID, Service: t.Service, Address: t.Address, Port: t.Port,
			State: StateUp, FirstSeen: now, LastSeen: now, TTL: t.TTL(), Stamp: t.Timestamp,
		}
		r.instances[t.InstanceID] = in
		events = append(events, r.emit(EventAdded, "", *in, now))
	}
	return events
}

// Expire removes every instance silent for longer than its TTL and forgets old DOWNs. It
// returns the removal events; call it periodically (see Sweep).
func (r *Registry) Expire() []Event {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var events []Event
	for _, id := range sortedKeys(r.instances) {
		in := r.instances[id]
		if now.Sub(in.LastSeen) > in.TTL {
			delete(r.instances, id)
			events = append(events, r.emit(EventRemoved, ReasonTTL, *in, now))
		}
	}
	for id, ts := range r.downs {
		if now.After(ts.expires) {
			delete(r.downs, id)
		}
	}
	return events
}

// emit counts and reports an event; r.mu is held.
func (r *Registry) emit(typ EventType, reason string, in Instance, now time.Time) Event {
	ev := Event{Type: typ, Reason: reason, Instance: in, At: now}
	if typ == EventAdded {
		r.stats.Added++
	} else {
		r.stats.Removed++
		switch reason {
		case ReasonDown:
			r.stats.RemovedDown++
		case ReasonTTL:
			r.stats.RemovedTTL++
		case ReasonMoved:
			r.stats.RemovedMoved++
		}
	}
	if r.cfg.OnEvent != nil {
		r.cfg.OnEvent(ev)
	}
	return ev
}

// Instances returns a copy of the live instances, sorted by service then instance ID.
func (r *Registry) Instances() []Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Instance, 0, len(r.instances))
	for _, in := range r.instances {
		out = append(out, *in)
	}
	slices.SortFunc(out, func(a, b Instance) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.InstanceID, b.InstanceID)
	})
	return out
}

// Len is the number of live instances.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.instances)
}

// Stats returns the registry's counters.
func (r *Registry) Stats() RegistryStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

func sortedKeys(m map[string]*Instance) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// RunExpiry calls Expire every interval until ctx ends. It always returns nil.
func (r *Registry) RunExpiry(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Expire()
		}
	}
}
