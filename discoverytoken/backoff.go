package discoverytoken

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter, for reconnect loops.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	if min <= 0 {
		min = 100 * time.Millisecond
	}
	if max < min {
		max = min
	}
	return &backoff{min: min, max: max, next: min}
}

// wait sleeps for the next delay (between half and all of it) or until ctx ends, and
// reports whether ctx is still live.
func (b *backoff) wait(ctx context.Context) bool {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(b.next*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (b *backoff) reset() { b.next = b.min }
