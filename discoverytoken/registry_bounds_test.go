package discoverytoken

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// upAt is an UP of instance id of service svc at address 10.x.y.z, stamped at.
func upAt(svc, id string, n int, at time.Time) Token {
	return Token{State: StateUp, Address: fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff|1), Port: 8181,
		Service: svc, InstanceID: id, TTLSeconds: 15, Timestamp: at}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRegistryCapHoldsFor100kInstances floods the registry with 100k distinct valid
// instances: the cap holds, each refused one is counted, no live instance is evicted for
// them, and the heap after the flood is no bigger than with the registry just full.
func TestRegistryCapHoldsFor100kInstances(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now, MaxInstances: 4096, MaxPerService: 100000})
	base := heapInUse()
	const total = 100_000
	for i := range 4096 {
		r.Apply(upAt("svc", fmt.Sprintf("flood-%06d", i), i, clock.Now()))
	}
	full := heapInUse()
	before := r.Stats()
	for i := 4096; i < total; i++ {
		r.Apply(upAt("svc", fmt.Sprintf("flood-%06d", i), i, clock.Now()))
	}
	after := heapInUse()
	st := r.Stats()
	if st.Live != 4096 || r.Len() != 4096 {
		t.Fatalf("live %d (Len %d), want the cap 4096", st.Live, r.Len())
	}
	if got := st.RejectedFull - before.RejectedFull; got != total-4096 {
		t.Fatalf("RejectedFull grew by %d, want %d", got, total-4096)
	}
	if st.Removed != 0 {
		t.Fatalf("a live instance was evicted to make room: %+v", st)
	}
	// The first instances are still there, the later ones never were.
	ids := map[string]bool{}
	for _, in := range r.Instances() {
		ids[in.InstanceID] = true
	}
	if !ids["flood-000000"] || !ids["flood-004095"] || ids["flood-004096"] {
		t.Fatal("the cap kept the wrong instances")
	}
	fullGrowth := int64(full) - int64(base)
	floodGrowth := int64(after) - int64(full)
	t.Logf("heap: +%d KiB filling to the cap, +%d KiB for the %d refused", fullGrowth>>10, floodGrowth>>10, total-4096)
	if floodGrowth > fullGrowth/4+256<<10 {
		t.Fatalf("heap grew by %d bytes for refused instances (the full registry took %d)", floodGrowth, fullGrowth)
	}
}

func TestRegistryPerServiceCap(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now, MaxInstances: 10, MaxPerService: 3})
	for i := range 5 {
		r.Apply(upAt("a", fmt.Sprintf("a%d", i), i, clock.Now()))
	}
	for i := range 5 {
		r.Apply(upAt("b", fmt.Sprintf("b%d", i), 100+i, clock.Now()))
	}
	st := r.Stats()
	if st.Live != 6 || st.RejectedServiceFull != 4 || st.Services != 2 {
		t.Fatalf("stats %+v, want 6 live (3 per service), 4 refused per service", st)
	}
	// A heartbeat of a held instance is not a new one: never refused.
	clock.Advance(5 * time.Second)
	r.Apply(upAt("a", "a0", 0, clock.Now()))
	if st2 := r.Stats(); st2.RejectedServiceFull != st.RejectedServiceFull || st2.Applied != st.Applied+1 {
		t.Fatalf("a heartbeat at the cap was refused: %+v", st2)
	}
	// Room again once one leaves.
	down := upAt("a", "a0", 0, clock.Now())
	down.State = StateDown
	r.Apply(down)
	if evs := r.Apply(upAt("a", "a4", 4, clock.Now())); len(evs) != 1 || evs[0].Type != EventAdded {
		t.Fatalf("after a DOWN the service had no room: %v", eventsString(evs))
	}
}

func TestRegistryTombstoneCap(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now, MaxTombstones: 100})
	for i := range 1000 {
		d := upAt("svc", fmt.Sprintf("d%d", i), i, clock.Now())
		d.State = StateDown
		r.Apply(d)
	}
	if st := r.Stats(); st.Tombstones != 100 || st.TombstonesDropped != 900 {
		t.Fatalf("stats %+v, want 100 tombstones and 900 dropped", st)
	}
	// The newest DOWNs are the ones remembered.
	late := upAt("svc", "d999", 999, clock.Now().Add(-time.Second))
	if evs := r.Apply(late); len(evs) != 0 {
		t.Fatal("the newest tombstone was forgotten")
	}
	if evs := r.Apply(upAt("svc", "d0", 0, clock.Now().Add(-time.Second))); len(evs) != 1 {
		t.Fatal("the oldest tombstone was not the one forgotten")
	}
}

func TestRegistryRefusesMalformedTokens(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now})
	for _, addr := range []string{"127.0.0.1", "0.0.0.0", "169.254.169.254", "ff02::1", "fe80::1%eth0"} {
		tk := upAt("svc", "x", 1, clock.Now())
		tk.Address = addr
		if evs := r.Apply(tk); len(evs) != 0 {
			t.Fatalf("Apply accepted address %s", addr)
		}
	}
	tk := upAt("svc", "x", 1, clock.Now().Add(time.Hour))
	r.Apply(tk)
	tk = upAt("svc", "x", 1, clock.Now())
	tk.TTLSeconds = 86400
	r.Apply(tk)
	if st := r.Stats(); st.Malformed != 7 || st.Live != 0 {
		t.Fatalf("stats %+v, want 7 malformed and nothing live", st)
	}
}

// TestRegistryExpireBatchesReleaseTheLock: with a batch of 10, the OnEvent of an expiry of
// 100 instances runs between batches and can read the registry, which shrinks batch by batch.
func TestRegistryExpireBatchesReleaseTheLock(t *testing.T) {
	clock := newFakeClock()
	var seenLen []int
	var r *Registry
	r = NewRegistry(RegistryConfig{Now: clock.Now, ExpireBatch: 10, SelfPreservation: SelfPreservation{Disabled: true},
		OnEvent: func(e Event) {
			if e.Type == EventRemoved {
				seenLen = append(seenLen, r.Len()) // would deadlock if called under the lock
			}
		}})
	for i := range 100 {
		r.Apply(upAt("svc", fmt.Sprintf("i%03d", i), i, clock.Now()))
	}
	clock.Advance(16 * time.Second)
	evs := r.Expire()
	if len(evs) != 100 || r.Len() != 0 {
		t.Fatalf("Expire removed %d, %d left; want all 100", len(evs), r.Len())
	}
	if len(seenLen) != 100 || seenLen[0] != 90 || seenLen[99] != 0 {
		t.Fatalf("OnEvent saw registry sizes %v…, want 90 at the first batch and 0 at the last", seenLen[:min(len(seenLen), 12)])
	}
}

// TestRegistryEventsInOrder: with Apply and Expire racing, every instance's events reach
// OnEvent alternating added, removed, added, … as the registry changed.
func TestRegistryEventsInOrder(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	last := map[string]EventType{}
	bad := 0
	r := NewRegistry(RegistryConfig{Now: clock.Now, SelfPreservation: SelfPreservation{Disabled: true},
		OnEvent: func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			prev := last[e.Instance.InstanceID]
			if (e.Type == EventAdded) == (prev == EventAdded) {
				bad++
			}
			last[e.Instance.InstanceID] = e.Type
		}})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				id := fmt.Sprintf("i%d", (w*7+i)%13)
				r.Apply(upAt("svc", id, 1, clock.Now()))
				if i%5 == 0 {
					clock.Advance(4 * time.Second)
				}
				if i%11 == 0 {
					d := upAt("svc", id, 1, clock.Now())
					d.State = StateDown
					r.Apply(d)
				}
				r.Expire()
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	if bad != 0 {
		t.Fatalf("%d events out of order (stats %+v)", bad, st)
	}
	if st.Added == 0 || st.Removed == 0 {
		t.Fatalf("the race did not race: %+v", st)
	}
}

func TestRegistryStatsCopiesNothing(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now, MaxPerService: 1000})
	for i := range 1000 {
		r.Apply(upAt("svc", fmt.Sprintf("i%d", i), i, clock.Now()))
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = r.Stats() }); allocs != 0 {
		t.Fatalf("Stats allocates %v times per call", allocs)
	}
	if st := r.Stats(); st.Live != 1000 || st.Services != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRegistryConfigValidate(t *testing.T) {
	for _, cfg := range []RegistryConfig{
		{MaxInstances: -1}, {MaxPerService: -1}, {Tombstone: -time.Second}, {ExpireBatch: -1},
		{SelfPreservation: SelfPreservation{Share: 1}}, {SelfPreservation: SelfPreservation{Share: -0.1}},
		{SelfPreservation: SelfPreservation{Min: -1}}, {SelfPreservation: SelfPreservation{MaxProtection: -time.Minute}},
	} {
		if cfg.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", cfg)
		}
	}
	if err := (RegistryConfig{}).Validate(); err != nil {
		t.Fatalf("the zero config: %v", err)
	}
}

// BenchmarkExpireAtTheCap measures one Expire over a full registry (4096) when nothing is
// due, when 1 % is due, and under mass silence (every instance counted).
func BenchmarkExpireAtTheCap(b *testing.B) {
	for _, tc := range []struct {
		name   string
		silent int
	}{{"nothing due", 0}, {"1% due", 41}, {"mass silence", 4096}} {
		b.Run(tc.name, func(b *testing.B) {
			clock := newFakeClock()
			r := NewRegistry(RegistryConfig{Now: clock.Now})
			for i := range 4096 {
				r.Apply(upAt("svc", fmt.Sprintf("i%d", i), i, clock.Now()))
			}
			clock.Advance(10 * time.Second)
			for i := tc.silent; i < 4096; i++ {
				r.Apply(upAt("svc", fmt.Sprintf("i%d", i), i, clock.Now()))
			}
			clock.Advance(6 * time.Second)
			b.ResetTimer()
			for range b.N {
				r.Expire()
			}
		})
	}
}
