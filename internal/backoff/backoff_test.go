package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextGrowsDoublingToMaxWithJitterInTheUpperHalf(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter func(int64) int64
		want   []time.Duration
	}{
		{"no jitter drawn: the lower half", func(int64) int64 { return 0 },
			[]time.Duration{50, 100, 200, 400, 400, 400}},
		{"full jitter drawn: the nominal delay", func(n int64) int64 { return n },
			[]time.Duration{100, 200, 400, 800, 800, 800}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backoff{Min: 100, Max: 800, Jitter: tc.jitter}
			for i, want := range tc.want {
				if got := b.Next(); got != want {
					t.Fatalf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got, want := b.Next(), tc.want[0]; got != want {
				t.Fatalf("after Reset: %v, want %v", got, want)
			}
		})
	}
}

func TestRealJitterStaysWithinBounds(t *testing.T) {
	b := New(10*time.Millisecond, 80*time.Millisecond)
	nominal := []time.Duration{10, 20, 40, 80, 80}
	for round := 0; round < 200; round++ {
		b.Reset()
		for i, n := range nominal {
			d := b.Next()
			if n *= time.Millisecond; d < n/2 || d > n {
				t.Fatalf("round %d delay %d = %v, want within [%v, %v]", round, i, d, n/2, n)
			}
		}
	}
}

func TestDefaultsAndInvertedBounds(t *testing.T) {
	zero := func(int64) int64 { return 0 }
	if d := (&Backoff{Jitter: zero}).Next(); d != DefaultMin/2 {
		t.Fatalf("zero Backoff first delay = %v, want %v", d, DefaultMin/2)
	}
	b := &Backoff{Min: time.Second, Max: time.Millisecond, Jitter: zero}
	for i := 0; i < 3; i++ {
		if d := b.Next(); d != time.Second/2 {
			t.Fatalf("max below min: delay %d = %v, want %v", i, d, time.Second/2)
		}
	}
}

func TestWaitUsesInjectedSleepAndStopsWithContext(t *testing.T) {
	var slept []time.Duration
	b := &Backoff{Min: 10, Max: 40, Jitter: func(n int64) int64 { return n },
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			return ctx.Err()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	if !b.Wait(ctx) || !b.Wait(ctx) {
		t.Fatal("Wait reported a dead context while it was live")
	}
	cancel()
	if b.Wait(ctx) {
		t.Fatal("Wait reported a live context after cancel")
	}
	if len(slept) != 3 || slept[0] != 10 || slept[1] != 20 || slept[2] != 40 {
		t.Fatalf("slept %v, want [10 20 40]", slept)
	}
	if b.Attempt() != 3 {
		t.Fatalf("Attempt = %d, want 3", b.Attempt())
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sleep(1h) did not return when its context was cancelled")
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep(1ms) = %v, want nil", err)
	}
}
