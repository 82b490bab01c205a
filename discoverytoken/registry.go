package discoverytoken

import (
	"container/heap"
	"container/list"
	"context"
	"errors"
	"fmt"
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
	ReasonDown = "down" // it said DOWN
	ReasonTTL  = "ttl"  // it was silent for longer than its TTL (and not protected)
	// ReasonProtectionEnded: it was kept by self-preservation, stayed silent and the
	// operator's maximum (SelfPreservation.MaxProtection) passed.
	ReasonProtectionEnded = "protection-ended"
)

// Defaults of RegistryConfig.
const (
	DefaultMaxInstances  = 4096
	DefaultMaxPerService = 512
	DefaultTombstone     = time.Minute
	DefaultExpireBatch   = 1024
	DefaultProtectShare  = 0.5
	DefaultProtectMin    = 3
	DefaultMaxProtection = 10 * time.Minute
)

// Instance is one instance in the registry.
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
	// Protected says the instance has been silent for longer than its TTL and is kept by
	// self-preservation (see SelfPreservation); ProtectedSince is when that began.
	Protected      bool      `json:"protected"`
	ProtectedSince time.Time `json:"protectedSince,omitzero"`
}

// HostPort is address:port of the instance's metrics endpoint.
func (in Instance) HostPort() string {
	return Token{Address: in.Address, Port: in.Port}.HostPort()
}

// Event is one change to the registry.
type Event struct {
	Type     EventType
	Reason   string // for EventRemoved: ReasonDown, ReasonTTL or ReasonProtectionEnded
	Instance Instance
	At       time.Time
}

// SelfPreservation is Eureka's answer to partitions: when heartbeats vanish en masse the
// fault is more likely between the instances and this registry than in the instances, so
// the registry keeps them (Protected) instead of evicting its whole view.
//
//   - While the broker subscription is down (SetSubscribed(false)) nothing is evicted; an
//     instance silent past its TTL is marked Protected. For one TTL after the subscription
//     comes back, nothing is evicted either: each instance's TTL is counted from the
//     re-subscription, so every live publisher has time to heartbeat again.
//   - While it is up, an instance is "silent" when it has not been heard from for more than
//     half its TTL (at the default TTL of three intervals: at least one heartbeat missed).
//     When an instance's TTL passes and more than Share of all instances, and at least Min,
//     are silent, it is kept and marked Protected until a heartbeat returns, the mass
//     silence ends (then it is evicted, ReasonTTL), or MaxProtection passes
//     (ReasonProtectionEnded). A single silent instance is evicted after its TTL as always.
type SelfPreservation struct {
	// Disabled turns both rules off: instances expire after their TTL, whatever happens.
	Disabled bool
	// Share is the fraction of instances that must be silent (strictly more than it) for
	// protection. Zero means DefaultProtectShare (0.5); otherwise within (0, 1).
	Share float64
	// Min is the least number of silent instances for protection. Zero means
	// DefaultProtectMin (3).
	Min int
	// MaxProtection is how long a silent instance is kept at most while the subscription is
	// up. Zero means DefaultMaxProtection (10 min).
	MaxProtection time.Duration
}

// RegistryConfig configures a Registry. The zero value is usable: zero fields take the
// defaults. Validate reports values that are not.
type RegistryConfig struct {
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
	// OnEvent, when set, is called for every event, in the order the registry changed,
	// after the registry's lock is released, before the Apply or Expire that caused the
	// event returns. It may read the registry (Instances, Stats, SetSubscribed) but must
	// not call Apply or Expire: those wait for it to return.
	OnEvent func(Event)
	// Tombstone is how long a DOWN is remembered, so that a late UP sent before the DOWN
	// cannot resurrect the instance. Zero means DefaultTombstone (one minute).
	Tombstone time.Duration
	// MaxInstances caps the instances held (protected ones included). An UP for a new
	// instance beyond it is refused and counted (RegistryStats.RejectedFull); a live
	// instance is never evicted to make room. Zero means DefaultMaxInstances (4096).
	MaxInstances int
	// MaxPerService caps the instances of one service (RegistryStats.RejectedServiceFull).
	// Zero means DefaultMaxPerService (512).
	MaxPerService int
	// MaxTombstones caps the remembered DOWNs; beyond it the oldest is forgotten (counted).
	// Zero means MaxInstances.
	MaxTombstones int
	// ExpireBatch bounds the work Expire does under the lock in one go; it releases the
	// lock between batches. Zero means DefaultExpireBatch (1024).
	ExpireBatch int
	// SelfPreservation configures when silent instances are kept.
	SelfPreservation SelfPreservation
}

// Validate reports every setting the Registry cannot run with.
func (c RegistryConfig) Validate() error {
	var errs []error
	neg := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("registry: %s is negative", name))
		}
	}
	neg("tombstone duration", int64(c.Tombstone))
	neg("max instances", int64(c.MaxInstances))
	neg("max instances per service", int64(c.MaxPerService))
	neg("max tombstones", int64(c.MaxTombstones))
	neg("expire batch", int64(c.ExpireBatch))
	neg("self-preservation minimum", int64(c.SelfPreservation.Min))
	neg("self-preservation maximum", int64(c.SelfPreservation.MaxProtection))
	if s := c.SelfPreservation.Share; s < 0 || s >= 1 || s != s {
		errs = append(errs, fmt.Errorf("registry: self-preservation share %v is outside (0, 1)", s))
	}
	return errors.Join(errs...)
}

func (c *RegistryConfig) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tombstone == 0 {
		c.Tombstone = DefaultTombstone
	}
	if c.MaxInstances == 0 {
		c.MaxInstances = DefaultMaxInstances
	}
	if c.MaxPerService == 0 {
		c.MaxPerService = DefaultMaxPerService
	}
	if c.MaxTombstones == 0 {
		c.MaxTombstones = c.MaxInstances
	}
	if c.ExpireBatch == 0 {
		c.ExpireBatch = DefaultExpireBatch
	}
	sp := &c.SelfPreservation
	if sp.Share == 0 {
		sp.Share = DefaultProtectShare
	}
	if sp.Min == 0 {
		sp.Min = DefaultProtectMin
	}
	if sp.MaxProtection == 0 {
		sp.MaxProtection = DefaultMaxProtection
	}
}

// RegistryStats counts what the registry holds and did with the tokens it was given.
type RegistryStats struct {
	// Gauges.
	Live       int  `json:"live"`       // instances held, protected ones included
	Protected  int  `json:"protected"`  // of which kept by self-preservation
	Services   int  `json:"services"`   // distinct services among them
	Tombstones int  `json:"tombstones"` // DOWNs remembered
	Subscribed bool `json:"subscribed"` // as the consumer last said (SetSubscribed)

	// Counters.
	Applied uint64 `json:"applied"` // tokens that changed or refreshed the registry
	Stale   uint64 `json:"stale"`   // tokens older than what the registry already knew
	// Malformed tokens given to Apply (the contract checked with the registry's clock).
	Malformed uint64 `json:"malformed"`
	// Conflicts: tokens for a held instanceId claiming another address, port or service.
	Conflicts           uint64 `json:"conflicts"`
	RejectedFull        uint64 `json:"rejectedFull"`        // new instances refused at MaxInstances
	RejectedServiceFull uint64 `json:"rejectedServiceFull"` // new instances refused at MaxPerService
	TombstonesDropped   uint64 `json:"tombstonesDropped"`   // DOWNs forgotten early at MaxTombstones
	ProtectedTotal      uint64 `json:"protectedTotal"`      // times an instance entered protection
	Added               uint64 `json:"added"`
	Removed             uint64 `json:"removed"`
	// Removed, by reason.
	RemovedDown            uint64 `json:"removedDown"`
	RemovedTTL             uint64 `json:"removedTTL"`
	RemovedProtectionEnded uint64 `json:"removedProtectionEnded"`
}

// entry is one instance with its place in the due-heap.
type entry struct {
	in Instance
	// due is when Expire must look at the entry next: when its TTL runs out, or, once
	// protected while subscribed, when its protection ends.
	due time.Time
	// protectUntil is the end of protection granted while subscribed; zero otherwise
	// (unprotected, or protected during an outage, which has no end).
	protectUntil time.Time
	idx          int // index in the heap; -1 when not in it
}

// dueHeap orders entries by due, so Expire touches only the ones whose time has come.
type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *dueHeap) Push(x any) { e := x.(*entry); e.idx = len(*h); *h = append(*h, e) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}

type tombstone struct {
	id      string
	stamp   time.Time // publisher's clock
	expires time.Time // our clock
}

// Registry is the set of instances announced by discovery tokens. It is safe for
// concurrent use; readers get copies.
//
// Tokens are claims, and the registry treats them so: every token is checked against the
// contract with the registry's own clock (no timestamp more than MaxClockSkew ahead, so no
// token can make an instance's real heartbeats look stale for longer than that); the number
// of instances is capped overall and per service, and a new instance beyond a cap is refused,
// never a live one evicted; and an instance's address, port and service are fixed by the UP
// that added it: while it is held, a token for its instanceId that claims another address,
// port or service is refused and counted (Conflicts). A real instance never moves (a
// restarted one announces a new instanceId); once the held one is gone (DOWN, or silence
// beyond its TTL and any protection) the instanceId is free again.
type Registry struct {
	cfg RegistryConfig

	// dispatch is held by the one goroutine handing queued events (pending) to OnEvent.
	dispatch sync.Mutex

	mu         sync.Mutex
	entries    map[string]*entry
	due        dueHeap
	protected  map[string]*entry
	perService map[string]int
	downs      map[string]*list.Element // of tombstone, oldest first in downList
	downList   *list.List
	subscribed bool
	stats      RegistryStats
	pending    []Event // changed, not yet handed to OnEvent
}

// NewRegistry returns an empty registry, subscribed (see SetSubscribed). A cfg that fails
// Validate is a programmer error (settings are validated where they are read) and panics.
func NewRegistry(cfg RegistryConfig) *Registry {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.defaults()
	return &Registry{
		cfg:        cfg,
		entries:    map[string]*entry{},
		protected:  map[string]*entry{},
		perService: map[string]int{},
		downs:      map[string]*list.Element{},
		downList:   list.New(),
		subscribed: true,
	}
}

// unlockAndDispatch queues evs, releases mu and hands every queued event to OnEvent, in
// order, without mu: whoever holds dispatch drains the queue, so events reach OnEvent in
// the order the registry changed, and by the time this returns evs have been delivered
// (by this goroutine or the one that held dispatch). mu is never held while waiting for
// dispatch, so OnEvent may read the registry.
func (r *Registry) unlockAndDispatch(evs []Event) {
	if r.cfg.OnEvent == nil || len(evs) == 0 {
		r.mu.Unlock()
		return
	}
	r.pending = append(r.pending, evs...)
	r.mu.Unlock()
	r.dispatch.Lock()
	defer r.dispatch.Unlock()
	for {
		r.mu.Lock()
		batch := r.pending
		r.pending = nil
		r.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, ev := range batch {
			r.cfg.OnEvent(ev)
		}
	}
}

// Apply brings one token into the registry and returns the events it caused:
//   - a token that breaks the contract (ValidateAt with the registry's clock) is refused;
//   - UP of an unknown instance adds it (once), unless a cap is reached;
//   - UP of a known one refreshes its last-seen time and ends its protection (no event);
//   - DOWN removes it;
//   - a token for a held instanceId with another address, port or service is refused;
//   - a DOWN older (by its timestamp) than the newest token seen for that instance, and any
//     token older than its last DOWN, is stale and ignored, so out-of-order delivery cannot
//     resurrect an instance that said DOWN. (A late UP of a held instance still proves it
//     alive and refreshes it.)
//
// OnEvent, if set, sees the events before Apply returns.
func (r *Registry) Apply(t Token) []Event {
	now := r.cfg.Now()
	r.mu.Lock()
	evs := r.apply(t, now)
	r.unlockAndDispatch(evs)
	return evs
}

func (r *Registry) apply(t Token, now time.Time) []Event {
	if err := t.ValidateAt(now); err != nil {
		r.stats.Malformed++
		return nil
	}
	if el, ok := r.downs[t.InstanceID]; ok && !t.Timestamp.After(el.Value.(*tombstone).stamp) {
		r.stats.Stale++
		return nil
	}
	e, known := r.entries[t.InstanceID]
	if known && (e.in.Address != t.Address || e.in.Port != t.Port || e.in.Service != t.Service) {
		r.stats.Conflicts++
		return nil
	}
	switch t.State {
	case StateDown:
		if known && t.Timestamp.Before(e.in.Stamp) {
			r.stats.Stale++
			return nil
		}
		r.stats.Applied++
		r.remember(t, now)
		if known {
			return []Event{r.remove(e, ReasonDown, now)}
		}
		return nil
	case StateUp:
		if el, ok := r.downs[t.InstanceID]; ok {
			r.forget(el)
		}
		if known {
			r.stats.Applied++
			r.refresh(e, t, now)
			return nil
		}
		switch {
		case len(r.entries) >= r.cfg.MaxInstances:
			r.stats.RejectedFull++
			return nil
		case r.perService[t.Service] >= r.cfg.MaxPerService:
			r.stats.RejectedServiceFull++
			return nil
		}
		r.stats.Applied++
		e := &entry{in: Instance{
			InstanceID: t.InstanceID, Service: t.Service, Address: t.Address, Port: t.Port,
			State: StateUp, FirstSeen: now, LastSeen: now, TTL: t.TTL(), Stamp: t.Timestamp,
		}, due: now.Add(t.TTL()), idx: -1}
		r.entries[t.InstanceID] = e
		r.perService[t.Service]++
		heap.Push(&r.due, e)
		r.stats.Added++
		return []Event{{Type: EventAdded, Instance: e.in, At: now}}
	}
	return nil
}

// refresh records a heartbeat of a held instance: it is alive, whatever protection it had.
func (r *Registry) refresh(e *entry, t Token, now time.Time) {
	e.in.LastSeen, e.in.TTL = now, t.TTL()
	if t.Timestamp.After(e.in.Stamp) {
		e.in.Stamp = t.Timestamp
	}
	if e.in.Protected {
		e.in.Protected, e.in.ProtectedSince, e.protectUntil = false, time.Time{}, time.Time{}
		delete(r.protected, e.in.InstanceID)
	}
	e.due = now.Add(e.in.TTL)
	if e.idx >= 0 {
		heap.Fix(&r.due, e.idx)
	} else {
		heap.Push(&r.due, e)
	}
}

// remove takes e out of every structure and returns its removal event.
func (r *Registry) remove(e *entry, reason string, now time.Time) Event {
	id := e.in.InstanceID
	delete(r.entries, id)
	delete(r.protected, id)
	if e.idx >= 0 {
		heap.Remove(&r.due, e.idx)
	}
	if r.perService[e.in.Service]--; r.perService[e.in.Service] <= 0 {
		delete(r.perService, e.in.Service)
	}
	r.stats.Removed++
	switch reason {
	case ReasonDown:
		r.stats.RemovedDown++
	case ReasonTTL:
		r.stats.RemovedTTL++
	case ReasonProtectionEnded:
		r.stats.RemovedProtectionEnded++
	}
	return Event{Type: EventRemoved, Reason: reason, Instance: e.in, At: now}
}

// remember records a DOWN, forgetting the oldest one at MaxTombstones.
func (r *Registry) remember(t Token, now time.Time) {
	if el, ok := r.downs[t.InstanceID]; ok {
		ts := el.Value.(*tombstone)
		if t.Timestamp.After(ts.stamp) {
			ts.stamp = t.Timestamp
		}
		ts.expires = now.Add(r.cfg.Tombstone)
		r.downList.MoveToBack(el)
		return
	}
	for len(r.downs) >= r.cfg.MaxTombstones {
		r.forget(r.downList.Front())
		r.stats.TombstonesDropped++
	}
	r.downs[t.InstanceID] = r.downList.PushBack(&tombstone{id: t.InstanceID, stamp: t.Timestamp, expires: now.Add(r.cfg.Tombstone)})
}

func (r *Registry) forget(el *list.Element) {
	delete(r.downs, el.Value.(*tombstone).id)
	r.downList.Remove(el)
}

// SetSubscribed is how the consumer tells the registry whether its broker subscription is
// up. While it is down nothing is evicted (silent instances are marked Protected); when it
// comes back every instance's TTL counts from that moment, so nothing is evicted for one TTL.
// *Consumer calls it; the registry starts subscribed.
func (r *Registry) SetSubscribed(up bool) {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	was := r.subscribed
	r.subscribed = up
	if !up || was || r.cfg.SelfPreservation.Disabled {
		return
	}
	// Back after an outage: grace of one TTL for everyone. Protected entries go back on the
	// heap still marked (they are still silent) with no protection end: when their grace
	// runs out they are judged like any other silent instance.
	for _, e := range r.entries {
		if grace := now.Add(e.in.TTL); e.due.Before(grace) {
			e.due = grace
		}
		if e.in.Protected {
			e.protectUntil = time.Time{}
			e.due = now.Add(e.in.TTL)
		}
		if e.idx < 0 {
			e.idx = len(r.due)
			r.due = append(r.due, e)
		}
	}
	heap.Init(&r.due)
}

// Expire evicts the instances silent for longer than their TTL (within the rules of
// SelfPreservation) and forgets old DOWNs. It returns the removal events; RunExpiry calls it
// periodically. It works in batches of at most ExpireBatch instances, releasing the lock
// between them (and dispatching their events), so it never holds the lock for long: the work
// per batch is proportional to the instances whose time has come, plus one pass counting the
// silent instances when some are due (bounded by MaxInstances).
func (r *Registry) Expire() []Event {
	var all []Event
	for {
		now := r.cfg.Now()
		r.mu.Lock()
		evs, more := r.expire(now)
		r.unlockAndDispatch(evs)
		all = append(all, evs...)
		if !more {
			return all
		}
	}
}

// expire does one batch; more says another batch has work to do.
func (r *Registry) expire(now time.Time) (evs []Event, more bool) {
	budget := r.cfg.ExpireBatch
	for budget > 0 && r.downList.Len() > 0 {
		el := r.downList.Front()
		if !now.After(el.Value.(*tombstone).expires) {
			break
		}
		r.forget(el)
		budget--
	}
	sp := r.cfg.SelfPreservation
	var due []*entry
	for budget > 0 && len(r.due) > 0 && now.After(r.due[0].due) {
		due = append(due, heap.Pop(&r.due).(*entry))
		budget--
	}
	more = budget == 0
	switch {
	case sp.Disabled:
		for _, e := range due {
			evs = append(evs, r.remove(e, ReasonTTL, now))
		}
		return evs, more
	case !r.subscribed:
		// No evictions while the subscription is down; the silent are kept, off the heap,
		// with no end to their protection until it comes back (SetSubscribed).
		for _, e := range due {
			r.protect(e, now)
			e.protectUntil = time.Time{}
		}
		return nil, more
	}
	if len(due) == 0 && len(r.protected) == 0 {
		return nil, more
	}
	if r.massSilence(now) {
		for _, e := range due {
			switch {
			case !e.protectUntil.IsZero() && !now.Before(e.protectUntil):
				evs = append(evs, r.remove(e, ReasonProtectionEnded, now))
			default:
				if e.protectUntil.IsZero() {
					r.protect(e, now)
					e.protectUntil = now.Add(sp.MaxProtection)
				}
				e.due = e.protectUntil
				heap.Push(&r.due, e)
			}
		}
		return evs, more
	}
	// No mass silence (any more): the due are evicted, and so is everyone kept only because
	// of one, i.e. protected and past its grace (protectUntil set).
	for _, e := range due {
		reason := ReasonTTL
		if !e.protectUntil.IsZero() && !now.Before(e.protectUntil) {
			reason = ReasonProtectionEnded
		}
		evs = append(evs, r.remove(e, reason, now))
	}
	for _, e := range r.protected {
		if budget == 0 {
			return evs, true
		}
		if !e.protectUntil.IsZero() {
			evs = append(evs, r.remove(e, ReasonTTL, now))
			budget--
		}
	}
	return evs, more
}

// protect marks e as kept by self-preservation (it stays so until a heartbeat or removal).
func (r *Registry) protect(e *entry, now time.Time) {
	if e.in.Protected {
		return
	}
	e.in.Protected, e.in.ProtectedSince = true, now
	r.protected[e.in.InstanceID] = e
	r.stats.ProtectedTotal++
}

// massSilence reports whether more than Share of the instances, and at least Min, have not
// been heard from for more than half their TTL.
func (r *Registry) massSilence(now time.Time) bool {
	sp := r.cfg.SelfPreservation
	if len(r.entries) < sp.Min {
		return false
	}
	silent := 0
	for _, e := range r.entries {
		if now.Sub(e.in.LastSeen) > e.in.TTL/2 {
			silent++
		}
	}
	return silent >= sp.Min && float64(silent) > sp.Share*float64(len(r.entries))
}

// Instances returns a copy of the instances held (protected ones included), sorted by
// service then instance ID.
func (r *Registry) Instances() []Instance {
	r.mu.Lock()
	out := make([]Instance, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e.in)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Instance) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return strings.Compare(a.InstanceID, b.InstanceID)
	})
	return out
}

// ProtectedIDs returns the IDs of the instances kept by self-preservation, sorted. It copies
// only those IDs (Instance.Protected says the same per instance, Stats the count).
func (r *Registry) ProtectedIDs() []string {
	r.mu.Lock()
	ids := make([]string, 0, len(r.protected))
	for id := range r.protected {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Len is the number of instances held.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Stats returns the registry's gauges and counters; it copies no instance.
func (r *Registry) Stats() RegistryStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Live, s.Protected, s.Services, s.Tombstones = len(r.entries), len(r.protected), len(r.perService), len(r.downs)
	s.Subscribed = r.subscribed
	return s
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
