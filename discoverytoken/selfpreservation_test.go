package discoverytoken

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// spHarness drives a registry with instances i0 … i(n-1) (TTL 15 s) on an injected clock.
type spHarness struct {
	t     *testing.T
	clock *fakeClock
	r     *Registry
	n     int
}

func newSP(t *testing.T, n int, sp SelfPreservation) *spHarness {
	t.Helper()
	h := &spHarness{t: t, clock: newFakeClock(), n: n}
	h.r = NewRegistry(RegistryConfig{Now: h.clock.Now, SelfPreservation: sp})
	h.beat(h.all()...)
	if h.r.Len() != n {
		t.Fatalf("%d instances, want %d", h.r.Len(), n)
	}
	return h
}

func (h *spHarness) all() []int {
	ids := make([]int, h.n)
	for i := range ids {
		ids[i] = i
	}
	return ids
}

func (h *spHarness) beat(ids ...int) {
	for _, i := range ids {
		h.r.Apply(upAt("svc", fmt.Sprintf("i%d", i), i, h.clock.Now()))
	}
}

// run advances the clock by d in steps of one heartbeat interval (5 s) or less, the
// instances in alive heartbeating at each step and Expire called after it, and returns the
// removals, sorted: "i3:ttl".
func (h *spHarness) run(d time.Duration, alive ...int) []string {
	var out []string
	for d > 0 {
		step := min(d, 5*time.Second)
		h.clock.Advance(step)
		d -= step
		h.beat(alive...)
		for _, e := range h.r.Expire() {
			out = append(out, e.Instance.InstanceID+":"+e.Reason)
		}
	}
	slices.Sort(out)
	return out
}

func (h *spHarness) protected() []string {
	var out []string
	for _, in := range h.r.Instances() {
		if in.Protected {
			out = append(out, in.InstanceID)
		}
	}
	slices.Sort(out)
	return out
}

func ids(prefix string, from, to int, suffix string) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s%d%s", prefix, i, suffix))
	}
	slices.Sort(out)
	return out
}

func same(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestSelfPreservationSilentShareThresholds(t *testing.T) {
	tests := []struct {
		name        string
		n, silent   int
		wantProtect bool
	}{
		{"a single silent instance of three is evicted", 3, 1, false},
		{"a single silent instance alone is evicted", 1, 1, false},
		{"two of two silent: fewer than Min (3)", 2, 2, false},
		{"three of three silent: protected", 3, 3, true},
		{"exactly half silent is not more than half", 6, 3, false},
		{"more than half silent: protected", 6, 4, true},
		{"three of ten silent: evicted", 10, 3, false},
		{"six of ten silent: protected", 10, 6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newSP(t, tt.n, SelfPreservation{})
			alive := h.all()[tt.silent:]
			// Well past the TTL (15 s) but not past MaxProtection.
			removed := h.run(30*time.Second, alive...)
			silent := ids("i", 0, tt.silent, "")
			if tt.wantProtect {
				if len(removed) != 0 || !same(h.protected(), silent) {
					t.Fatalf("removed %v, protected %v; want nothing removed and %v protected", removed, h.protected(), silent)
				}
				if got := h.r.ProtectedIDs(); !same(got, silent) {
					t.Fatalf("ProtectedIDs() = %v, want %v", got, silent)
				}
				if st := h.r.Stats(); st.Protected != tt.silent || st.ProtectedTotal != uint64(tt.silent) {
					t.Fatalf("stats %+v, want %d protected", st, tt.silent)
				}
				return
			}
			if want := ids("i", 0, tt.silent, ":ttl"); !same(removed, want) || len(h.protected()) != 0 || len(h.r.ProtectedIDs()) != 0 {
				t.Fatalf("removed %v, protected %v; want %v removed, none protected", removed, h.protected(), want)
			}
		})
	}
}

// TestSelfPreservationStaggeredHeartbeats: instances whose last heartbeats were spread over
// one interval all fall silent at once; the first to pass its TTL is protected, not evicted
// alone (the others have already missed a heartbeat: silent for more than half a TTL).
func TestSelfPreservationStaggeredHeartbeats(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now})
	for i := range 5 {
		r.Apply(upAt("svc", fmt.Sprintf("i%d", i), i, clock.Now()))
		clock.Advance(time.Second)
	}
	// i0 was heard 5 s ago, i4 just now. Silence: i0's TTL runs out first.
	clock.Advance(10*time.Second + time.Millisecond)
	if evs := r.Expire(); len(evs) != 0 {
		t.Fatalf("the first to pass its TTL was evicted: %s", eventsString(evs))
	}
	for range 10 {
		clock.Advance(time.Second)
		if evs := r.Expire(); len(evs) != 0 {
			t.Fatalf("evicted during mass silence: %s", eventsString(evs))
		}
	}
	if st := r.Stats(); st.Protected != 5 {
		t.Fatalf("stats %+v, want all 5 protected", st)
	}
}

func TestSelfPreservationHeartbeatEndsProtection(t *testing.T) {
	h := newSP(t, 10, SelfPreservation{})
	h.run(30*time.Second, h.all()[6:]...)
	if got := h.protected(); len(got) != 6 {
		t.Fatalf("protected %v, want 6", got)
	}
	// Three come back: no longer protected at once.
	h.beat(0, 1, 2)
	if got := h.protected(); !same(got, []string{"i3", "i4", "i5"}) {
		t.Fatalf("protected %v after i0…i2 beat, want i3…i5", got)
	}
	// With 3 of 10 silent the mass silence is over: the other three, long past their TTL,
	// are evicted at the next Expire.
	removed := h.run(time.Second, 0, 1, 2, 6, 7, 8, 9)
	if want := []string{"i3:ttl", "i4:ttl", "i5:ttl"}; !same(removed, want) {
		t.Fatalf("removed %v when the mass silence ended, want %v", removed, want)
	}
	if st := h.r.Stats(); st.Protected != 0 || st.Live != 7 {
		t.Fatalf("stats %+v, want 7 live, none protected", st)
	}
}

func TestSelfPreservationMaxProtection(t *testing.T) {
	h := newSP(t, 4, SelfPreservation{MaxProtection: time.Minute})
	if removed := h.run(15*time.Second+time.Millisecond, 3); len(removed) != 0 {
		t.Fatalf("removed %v at the TTL, want 3 of 4 protected", removed)
	}
	if removed := h.run(59*time.Second, 3); len(removed) != 0 {
		t.Fatalf("removed %v before MaxProtection", removed)
	}
	removed := h.run(2*time.Second, 3)
	if want := ids("i", 0, 3, ":"+ReasonProtectionEnded); !same(removed, want) {
		t.Fatalf("removed %v after MaxProtection, want %v", removed, want)
	}
	if st := h.r.Stats(); st.RemovedProtectionEnded != 3 || st.Protected != 0 || st.Live != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSelfPreservationSubscriptionDown(t *testing.T) {
	h := newSP(t, 5, SelfPreservation{MaxProtection: time.Minute})
	h.r.SetSubscribed(false)
	// No tokens can arrive; an hour (past every TTL and MaxProtection) evicts nobody.
	if removed := h.run(time.Hour); len(removed) != 0 {
		t.Fatalf("removed %v while unsubscribed", removed)
	}
	if st := h.r.Stats(); st.Protected != 5 || st.Subscribed {
		t.Fatalf("stats %+v, want 5 protected, unsubscribed", st)
	}
	// Back: one TTL of grace. Three heartbeat within it, two never do.
	h.r.SetSubscribed(true)
	if removed := h.run(14*time.Second, 0, 1, 2); len(removed) != 0 {
		t.Fatalf("removed %v within one TTL of re-subscribing", removed)
	}
	if got := h.protected(); !same(got, []string{"i3", "i4"}) {
		t.Fatalf("protected %v, want the two still silent", got)
	}
	// Grace over: 2 of 5 silent is no mass silence, they go.
	removed := h.run(2*time.Second, 0, 1, 2)
	if want := []string{"i3:ttl", "i4:ttl"}; !same(removed, want) {
		t.Fatalf("removed %v after the grace, want %v", removed, want)
	}
}

func TestSelfPreservationGraceAfterResubscribeForEveryone(t *testing.T) {
	// An outage shorter than a TTL: nobody was protected yet, but everyone's heartbeats
	// were lost. After re-subscribing each gets a full TTL again.
	h := newSP(t, 2, SelfPreservation{}) // 2 < Min: the mass rule cannot save them
	h.r.SetSubscribed(false)
	h.run(10 * time.Second)
	h.r.SetSubscribed(true)
	if removed := h.run(14 * time.Second); len(removed) != 0 {
		t.Fatalf("removed %v within one TTL of re-subscribing", removed)
	}
	if removed := h.run(2 * time.Second); len(removed) != 2 {
		t.Fatalf("removed %v, want both after the grace", removed)
	}
}

func TestSelfPreservationOutageDuringProtection(t *testing.T) {
	// Protected while subscribed, then the broker goes: MaxProtection does not run out
	// during the outage.
	h := newSP(t, 4, SelfPreservation{MaxProtection: time.Minute})
	h.run(20*time.Second, 3)
	if len(h.protected()) != 3 {
		t.Fatalf("protected %v, want 3", h.protected())
	}
	h.r.SetSubscribed(false)
	if removed := h.run(5 * time.Minute); len(removed) != 0 {
		t.Fatalf("removed %v during the outage", removed)
	}
	h.r.SetSubscribed(true)
	if removed := h.run(10*time.Second, 0, 1, 2, 3); len(removed) != 0 || len(h.protected()) != 0 {
		t.Fatalf("removed %v, protected %v after heartbeats returned", removed, h.protected())
	}
}

func TestSelfPreservationDisabled(t *testing.T) {
	h := newSP(t, 5, SelfPreservation{Disabled: true})
	h.r.SetSubscribed(false)
	if removed := h.run(16 * time.Second); len(removed) != 5 {
		t.Fatalf("removed %v, want all 5 (self-preservation off)", removed)
	}
}
