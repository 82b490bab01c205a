package sd

import (
	"math/rand/v2"
	"slices"
)

// Subset returns the subset of backends that client clientID should use,
// with the deterministic subsetting of Google's SRE book ("Load Balancing in
// the Datacenter"): clients are grouped into rounds of
// subsetCount = len(backends)/size clients; every round shuffles the
// (sorted) backend list with the round number as seed, so all clients of a
// round agree on the order; the client takes slice clientID mod subsetCount
// of that order. Within a round every backend is used by at most one client,
// so connection counts stay even and bounded however many clients there are.
// The result is sorted. When size < 1 or size >= len(backends) it returns a
// sorted copy of all backends.
//
// Every client must call it with the same backend set for the subsets to fit
// together; a change of the set reshuffles them (the book's accepted cost).
func Subset(backends []string, clientID, size int) []string {
	sorted := slices.Clone(backends)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	if size < 1 || size >= len(sorted) || clientID < 0 {
		return sorted
	}
	subsetCount := len(sorted) / size
	round := clientID / subsetCount
	shuffle(sorted, uint64(round))
	start := (clientID % subsetCount) * size
	out := slices.Clone(sorted[start : start+size])
	slices.Sort(out)
	return out
}

// shuffle is a Fisher-Yates shuffle driven by PCG seeded with seed. It is
// spelled out (rather than rand.Shuffle) so that every client, whatever its
// Go version, computes the same order: PCG's output is fixed by its
// definition, rand.Shuffle's use of it is not promised.
func shuffle(s []string, seed uint64) {
	pcg := rand.NewPCG(seed, 0x5eed)
	for i := len(s) - 1; i > 0; i-- {
		j := int(pcg.Uint64() % uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}
