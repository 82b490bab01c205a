package discoverytoken

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is the registry's injected time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// tok builds a token for instance id, stamped at offset sec from the clock's start.
func tok(state State, id string, sec int) Token {
	return Token{State: state, Address: "10.0.1.7", Port: 8181, Service: "accountservice",
		InstanceID: id, TTLSeconds: 15,
		Timestamp: time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC).Add(time.Duration(sec) * time.Second)}
}

func eventsString(evs []Event) string {
	s := ""
	for _, e := range evs {
		s += fmt.Sprintf("%s(%s,%s) ", e.Type, e.Instance.InstanceID, e.Reason)
	}
	return s
}

func TestRegistry(t *testing.T) {
	type step struct {
		advance time.Duration // before the step
		apply   *Token        // nil means Expire
		want    string        // events
		live    int
	}
	up := func(id string, sec int) *Token { t := tok(StateUp, id, sec); return &t }
	down := func(id string, sec int) *Token { t := tok(StateDown, id, sec); return &t }
	moved := func(id string, sec int) *Token { t := tok(StateUp, id, sec); t.Address = "10.0.1.8"; return &t }
	future := func(id string, sec int) *Token {
		t := tok(StateUp, id, sec)
		t.Address = "10.0.1.8"
		t.Timestamp = t.Timestamp.AddDate(100, 0, 0)
		return &t
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first UP adds once, heartbeats only refresh", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{advance: 5 * time.Second, apply: up("a", 5), want: "", live: 1},
			{advance: 5 * time.Second, apply: up("a", 10), want: "", live: 1},
			{advance: 14 * time.Second, want: "", live: 1}, // 14 s after the last heartbeat: alive
		}},
		{"DOWN removes", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: up("b", 0), want: "added(b,) ", live: 2},
			{advance: time.Second, apply: down("a", 1), want: "removed(a,down) ", live: 1},
		}},
		{"DOWN of an unknown instance is quiet", []step{
			{apply: down("x", 0), want: "", live: 0},
		}},
		{"TTL of silence removes", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: up("b", 0), want: "added(b,) ", live: 2},
			{advance: 10 * time.Second, apply: up("b", 10), want: "", live: 2},
			{advance: 5 * time.Second, want: "", live: 2}, // exactly a's TTL: not yet
			{advance: time.Millisecond, want: "removed(a,ttl) ", live: 1},
			{advance: 10 * time.Second, want: "removed(b,ttl) ", live: 0},
		}},
		{"heartbeat after TTL expiry adds again", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{advance: 16 * time.Second, want: "removed(a,ttl) ", live: 0},
			{apply: up("a", 16), want: "added(a,) ", live: 1},
		}},
		{"late UP sent before DOWN does not resurrect", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{advance: time.Second, apply: down("a", 6), want: "removed(a,down) ", live: 0},
			{apply: up("a", 5), want: "", live: 0},
			{apply: up("a", 6), want: "", live: 0}, // same stamp as the DOWN: DOWN wins
		}},
		{"DOWN before the UP it follows (out of order)", []step{
			{apply: down("a", 5), want: "", live: 0},
			{apply: up("a", 0), want: "", live: 0},
		}},
		{"restart after DOWN with a newer UP adds again", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: down("a", 1), want: "removed(a,down) ", live: 0},
			{advance: 2 * time.Second, apply: up("a", 3), want: "added(a,) ", live: 1},
		}},
		{"old DOWN after newer UP is ignored", []step{
			{apply: up("a", 10), want: "added(a,) ", live: 1},
			{apply: down("a", 5), want: "", live: 1},
		}},
		{"a held instance cannot move: another address is a conflict", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: moved("a", 5), want: "", live: 1},
			{advance: 10 * time.Second, apply: up("a", 10), want: "", live: 1}, // the real one still refreshes
			{advance: 14 * time.Second, want: "", live: 1},
			{advance: 2 * time.Second, want: "removed(a,ttl) ", live: 0},
			{apply: moved("a", 26), want: "added(a,) ", live: 1}, // the id is free again
		}},
		{"a DOWN from another address is a conflict", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: func() *Token { t := down("a", 1); t.Address = "10.0.1.8"; return t }(), want: "", live: 1},
		}},
		{"no takeover from the future (issue 13)", []step{
			{apply: up("a", 0), want: "added(a,) ", live: 1},
			{apply: future("a", 0), want: "", live: 1},
			{advance: 5 * time.Second, apply: up("a", 5), want: "", live: 1},
			{advance: time.Second, apply: down("a", 6), want: "removed(a,down) ", live: 0},
		}},
		{"a token from the future is refused even for a new instance", []step{
			{apply: up("a", 31), want: "", live: 0},
			{apply: up("a", 30), want: "added(a,) ", live: 1},
		}},
		{"a late heartbeat of a held instance still refreshes it", []step{
			{apply: up("a", 10), want: "added(a,) ", live: 1},
			{advance: 14 * time.Second, apply: up("a", 5), want: "", live: 1},
			{advance: 14 * time.Second, want: "", live: 1},
		}},
		{"tombstones are forgotten after a minute", []step{
			{advance: 100 * time.Second, apply: down("a", 100), want: "", live: 0},
			{advance: 61 * time.Second, want: "", live: 0},
			{apply: up("a", 50), want: "added(a,) ", live: 1}, // an old stamp is no longer known to be stale
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var seen []Event
			r := NewRegistry(RegistryConfig{Now: clock.Now, OnEvent: func(e Event) { seen = append(seen, e) }})
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				var got []Event
				if s.apply != nil {
					got = r.Apply(*s.apply)
				} else {
					got = r.Expire()
				}
				if g := eventsString(got); g != s.want {
					t.Fatalf("step %d: events %q, want %q", i, g, s.want)
				}
				if n := r.Len(); n != s.live {
					t.Fatalf("step %d: %d live, want %d", i, n, s.live)
				}
			}
			st := r.Stats()
			if st.RemovedDown+st.RemovedTTL+st.RemovedProtectionEnded != st.Removed {
				t.Fatalf("removals by reason do not add up: %+v", st)
			}
			if int(st.Added+st.Removed) != len(seen) {
				t.Fatalf("stats %+v disagree with %d OnEvent calls", st, len(seen))
			}
		})
	}
}

func TestRegistryInstancesIsACopy(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now})
	r.Apply(tok(StateUp, "b", 0))
	a := tok(StateUp, "a", 0)
	a.Service = "quotes-service"
	r.Apply(a)
	got := r.Instances()
	if len(got) != 2 || got[0].InstanceID != "b" || got[1].InstanceID != "a" {
		t.Fatalf("Instances() = %+v, want sorted by service then id", got)
	}
	got[0].Address = "changed"
	if r.Instances()[0].Address != "10.0.1.7" {
		t.Fatal("Instances() handed out the registry's own data")
	}
	clock.Advance(3 * time.Second)
	r.Apply(tok(StateUp, "b", 3))
	in := r.Instances()[0]
	if !in.LastSeen.Equal(clock.Now()) || in.FirstSeen.Equal(in.LastSeen) {
		t.Fatalf("heartbeat did not refresh LastSeen only: %+v", in)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry(RegistryConfig{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("w%d-%d", w, i%10)
				r.Apply(tok(StateUp, id, i))
				if i%7 == 0 {
					r.Apply(tok(StateDown, id, i))
				}
				r.Expire()
				_ = r.Instances()
			}
		}()
	}
	wg.Wait()
	if st := r.Stats(); st.Applied == 0 {
		t.Fatalf("nothing applied: %+v", st)
	}
}
