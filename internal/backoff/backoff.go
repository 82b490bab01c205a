// Package backoff is the one reconnect and retry delay of goblog: capped
// exponential growth with jitter, and a sleep that ends with its context.
//
// Every loop that reconnects to something (the broker, the engine's event
// stream, the watcher's feed, an instance's stream, a webhook receiver) keeps
// one Backoff, calls Wait after a failure and Reset after a success:
//
//	b := backoff.New(100*time.Millisecond, 10*time.Second)
//	for {
//		err := connectAndServe(ctx)
//		if err == nil { b.Reset() }
//		if !b.Wait(ctx) { return ctx.Err() }
//	}
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults used when Min or Max is not positive.
const (
	DefaultMin = 100 * time.Millisecond
	DefaultMax = 10 * time.Second
)

// Backoff hands out growing delays: the n-th delay after a Reset is drawn
// from [d/2, d] where d = Min·2ⁿ capped at Max ("equal jitter"), so many
// clients that lost the same server do not come back in step, and no delay is
// ever shorter than half the nominal one. A Backoff is not safe for
// concurrent use: each loop owns its own.
type Backoff struct {
	Min, Max time.Duration
	// Sleep waits for d or until ctx ends; nil means the real clock (Sleep
	// below). Tests inject one that records the delays and returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter draws from [0, n]; nil means math/rand/v2. Tests inject a fixed one.
	Jitter func(n int64) int64

	attempt int
}

// New returns a Backoff from min to max.
func New(min, max time.Duration) *Backoff { return &Backoff{Min: min, Max: max} }

// Next returns the next delay and advances the attempt count.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < b.attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	b.attempt++
	jitter := b.Jitter
	if jitter == nil {
		jitter = func(n int64) int64 { return rand.Int64N(n + 1) }
	}
	half := int64(d / 2)
	return time.Duration(half + jitter(int64(d)-half))
}

// Attempt is how many delays have been handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts the growth again from Min: call it after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for the next delay and reports whether ctx is still live.
func (b *Backoff) Wait(ctx context.Context) bool {
	sleep := b.Sleep
	if sleep == nil {
		sleep = Sleep
	}
	return sleep(ctx, b.Next()) == nil
}

// Sleep waits for d or until ctx ends, whichever is first, and returns
// ctx.Err() in the second case. It is the one context-aware sleep of the
// project: loops use it instead of time.Sleep.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
