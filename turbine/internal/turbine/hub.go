package turbine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errTooManyClusters is returned by Frame for a new cluster beyond the per-tick cap.
var errTooManyClusters = errors.New("too many distinct clusters asked for in this round")

// Hub computes the aggregate once per tick and cluster and hands the same encoded frame to
// every /turbine.stream client, so a hundred clients cost one aggregation per tick, not a
// hundred.
type Hub struct {
	agg         *Aggregator
	interval    time.Duration
	maxClusters int

	mu     sync.Mutex
	next   chan struct{} // closed at the next tick
	frames map[Cluster][]byte
	done   chan struct{}

	aggregations, capped atomic.Uint64
}

// NewHub returns a Hub over agg; Run ticks it every interval.
func NewHub(agg *Aggregator, interval time.Duration, maxClusters int) *Hub {
	return &Hub{
		agg: agg, interval: interval, maxClusters: maxClusters,
		next: make(chan struct{}), frames: map[Cluster][]byte{}, done: make(chan struct{}),
	}
}

// Run ticks every interval until ctx ends, then closes Done and returns nil.
func (h *Hub) Run(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	defer close(h.done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.Tick()
		}
	}
}

// Done is closed when Run has returned: streaming clients end then.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Tick starts a new round: the cached frames are dropped and waiting clients woken.
func (h *Hub) Tick() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.frames)
	close(h.next)
	h.next = make(chan struct{})
}

// Frame returns this round's encoded aggregate of cluster (the zero Cluster for every host)
// and a channel closed when the next round starts. The frame is computed on the round's
// first call and shared afterwards; callers must not modify it.
func (h *Hub) Frame(cluster Cluster) ([]byte, <-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.frames[cluster]; ok {
		return f, h.next, nil
	}
	if len(h.frames) >= h.maxClusters {
		h.capped.Add(1)
		return nil, h.next, errTooManyClusters
	}
	f := encodeFrame(h.agg.Snapshot(cluster))
	h.aggregations.Add(1)
	h.frames[cluster] = f
	return f, h.next, nil
}

// encodeFrame writes one `data:` event per sample, or a ping comment when there is none.
func encodeFrame(samples []Sample) []byte {
	var b bytes.Buffer
	for _, s := range samples {
		j, err := json.Marshal(s)
		if err != nil {
			continue // a host sent a number JSON cannot carry back; skip that sample
		}
		b.WriteString("data: ")
		b.Write(j)
		b.WriteString("\n\n")
	}
	if b.Len() == 0 {
		b.WriteString(": ping\n\n")
	}
	return b.Bytes()
}

// Aggregations counts the aggregates computed; ClustersCapped the refusals beyond the cap.
func (h *Hub) Aggregations() uint64   { return h.aggregations.Load() }
func (h *Hub) ClustersCapped() uint64 { return h.capped.Load() }
