package sd

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func backends(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:6767", i/250, i%250)
	}
	return out
}

// TestSubsetBalance checks the connection counts that many clients place on
// many backends. Within one round every backend serves at most one client,
// so no backend serves more clients than there are rounds; when the subset
// size divides the backend count, every full round covers every backend
// once and the spread (max - min) is at most 1. Otherwise the backends left
// over in each round are drawn by the shuffle, and the spread grows like the
// square root of the number of rounds.
func TestSubsetBalance(t *testing.T) {
	for _, tc := range []struct{ clients, backends, size int }{
		{10, 10, 5},
		{300, 100, 10},
		{1000, 100, 10},
		{37, 12, 4},
		{5, 20, 4},
		{10, 10, 3},
		{100, 10, 3},
		{1000, 97, 10},
		{500, 30, 7},
		{999, 100, 9},
		{3, 5, 2},
	} {
		t.Run(fmt.Sprintf("c%d_b%d_k%d", tc.clients, tc.backends, tc.size), func(t *testing.T) {
			be := backends(tc.backends)
			count := map[string]int{}
			for id := 0; id < tc.clients; id++ {
				sub := Subset(be, id, tc.size)
				if len(sub) != tc.size || len(slices.Compact(slices.Clone(sub))) != tc.size {
					t.Fatalf("client %d got %d distinct backends %v, want %d", id, len(slices.Compact(slices.Clone(sub))), sub, tc.size)
				}
				for _, b := range sub {
					count[b]++
				}
			}
			subsetCount := tc.backends / tc.size
			rounds := (tc.clients + subsetCount - 1) / subsetCount
			lo, hi := math.MaxInt, 0
			for _, b := range be {
				lo, hi = min(lo, count[b]), max(hi, count[b])
			}
			mean := float64(tc.clients*tc.size) / float64(tc.backends)
			t.Logf("rounds=%d mean=%.1f min=%d max=%d spread=%d", rounds, mean, lo, hi, hi-lo)
			if hi > rounds {
				t.Errorf("a backend serves %d clients, more than the %d rounds", hi, rounds)
			}
			bound := 1
			if tc.backends%tc.size != 0 {
				bound = max(1, int(math.Ceil(3*math.Sqrt(float64(rounds)))))
			}
			if hi-lo > bound {
				t.Errorf("spread %d (min %d, max %d), want at most %d", hi-lo, lo, hi, bound)
			}
		})
	}
}

func TestSubsetDeterministic(t *testing.T) {
	be := backends(40)
	rev := slices.Clone(be)
	slices.Reverse(rev)
	for id := 0; id < 50; id++ {
		a, b := Subset(be, id, 6), Subset(rev, id, 6)
		if !slices.Equal(a, b) {
			t.Fatalf("client %d: subset depends on input order: %v vs %v", id, a, b)
		}
		if !slices.IsSorted(a) {
			t.Fatalf("client %d: subset not sorted: %v", id, a)
		}
	}
	// Two clients of the same round never share a backend.
	seen := map[string]int{}
	for id := 0; id < 40/6; id++ {
		for _, b := range Subset(be, id, 6) {
			if other, ok := seen[b]; ok {
				t.Fatalf("clients %d and %d of round 0 share %s", other, id, b)
			}
			seen[b] = id
		}
	}
	if got := Subset(be, 0, 6); slices.Equal(got, Subset(be, 40/6, 6)) {
		t.Fatalf("rounds 0 and 1 give client slot 0 the same subset %v; the shuffle is not seeded by round", got)
	}
}

func TestSubsetSmallSets(t *testing.T) {
	be := []string{"b:1", "a:1", "c:1", "a:1"}
	for _, size := range []int{0, -1, 3, 4, 10} {
		if got := Subset(be, 7, size); !slices.Equal(got, []string{"a:1", "b:1", "c:1"}) {
			t.Errorf("Subset(size %d) = %v, want all distinct backends sorted", size, got)
		}
	}
	if got := Subset(nil, 3, 2); len(got) != 0 {
		t.Errorf("Subset(nil) = %v", got)
	}
	if got := Subset(be, -1, 2); len(got) != 3 {
		t.Errorf("Subset(negative client) = %v, want all", got)
	}
}
