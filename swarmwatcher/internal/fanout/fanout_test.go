package fanout

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestHubDeliversInOrderAndDropsTheSlowSubscriber(t *testing.T) {
	var drops atomic.Int64
	var count atomic.Int64
	h := New[int](Config{OnDrop: func() { drops.Add(1) }, OnCount: func(n int) { count.Store(int64(n)) }})
	fast, _ := h.Subscribe(10, "")
	slow, _ := h.Subscribe(1, "")
	before := drops.Load()
	for i := 1; i <= 3; i++ {
		h.Publish(uint64(i), i*10)
	}
	if got := drops.Load() - before; got != 1 {
		t.Fatalf("drops = %d, want 1 (the slow subscriber)", got)
	}
	if !slow.Dropped() || fast.Dropped() || count.Load() != 1 {
		t.Fatalf("slow dropped %v, fast dropped %v, count %d", slow.Dropped(), fast.Dropped(), count.Load())
	}
	if m, ok := <-slow.C(); !ok || m.Value != 10 {
		t.Fatalf("slow got %v %v, want its one buffered value", m, ok)
	}
	if _, ok := <-slow.C(); ok {
		t.Fatal("a dropped subscriber's channel stays open")
	}
	fast.Skip(1)
	var got []int
	for range 3 {
		if m := <-fast.C(); fast.Keep(m) {
			got = append(got, m.Value)
		}
	}
	if len(got) != 2 || got[0] != 20 || got[1] != 30 {
		t.Fatalf("fast kept %v, want [20 30] (seq 1 skipped)", got)
	}
	fast.Close()
	fast.Close()
	if h.Len() != 0 || count.Load() != 0 {
		t.Fatalf("after Close: %d subscribers, count %d", h.Len(), count.Load())
	}
}

func TestHubBoundsSubscribersOverallAndPerKey(t *testing.T) {
	var rejected atomic.Int64
	h := New[int](Config{MaxSubscribers: 3, MaxPerKey: 2, OnReject: func(error) { rejected.Add(1) }})
	a1, err1 := h.Subscribe(1, "a")
	_, err2 := h.Subscribe(1, "a")
	_, err3 := h.Subscribe(1, "a")
	if err1 != nil || err2 != nil || !errors.Is(err3, ErrKeyFull) {
		t.Fatalf("per key: %v %v %v", err1, err2, err3)
	}
	_, err4 := h.Subscribe(1, "b")
	_, err5 := h.Subscribe(1, "c")
	if err4 != nil || !errors.Is(err5, ErrFull) {
		t.Fatalf("overall: %v %v", err4, err5)
	}
	if rejected.Load() != 2 {
		t.Fatalf("rejected = %d, want 2", rejected.Load())
	}
	a1.Close()
	if _, err := h.Subscribe(1, "a"); err != nil {
		t.Fatalf("after a close the key has room again: %v", err)
	}
}
