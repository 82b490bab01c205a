package server

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/wire"
)

// frame is one message of the watcher, encoded once as server-sent events
// and shared by every client: a client only picks the bytes its filter
// wants, it never encodes.
type frame struct {
	// published is when the watcher published the message (zero for a
	// keepalive): the publish-to-flush histogram starts there.
	published time.Time
	service   string // a change's service; "" for status and keepalive
	data      []byte // the whole event; nil for a services frame
	// A services frame (for ?views=1 clients): the services the update
	// rebuilt, each encoded once (and cached by version), the list
	// assembled once.
	full  []byte
	names []string
	parts [][]byte
}

var keepaliveFrame = &frame{data: []byte(": keepalive\n\n")}

func (s *Server) newFrame(m watch.Message, seq uint64) (*frame, error) {
	f, err := s.encodeFrame(m, seq)
	if f != nil {
		f.published = m.Published
	}
	return f, err
}

func (s *Server) encodeFrame(m watch.Message, seq uint64) (*frame, error) {
	switch {
	case m.Change != nil:
		b, err := event(strconv.FormatUint(seq, 10), string(m.Change.Type), wire.Change(m.Change))
		return &frame{service: m.Change.Service, data: b}, err
	case m.Status != nil:
		b, err := event("", api.EventStatus, wire.Status(*m.Status))
		return &frame{data: b}, err
	default:
		s.encoded.prune(m.Services)
		f := &frame{names: make([]string, len(m.Updated)), parts: make([][]byte, len(m.Updated))}
		list := []byte("event: " + api.EventServices + "\ndata: [")
		for i, j := range m.Updated {
			b, err := s.encoded.service(&m.Services[j])
			if err != nil {
				return nil, err
			}
			f.names[i], f.parts[i] = m.Services[j].Name, b
			if i > 0 {
				list = append(list, ',')
			}
			list = append(list, b...)
		}
		f.full = append(list, "]\n\n"...)
		return f, nil
	}
}

// bytes returns what a client with the given filter receives, nil for
// nothing.
func (f *frame) bytes(only string, views bool) []byte {
	if f.data != nil {
		if only != "" && f.service != "" && f.service != only {
			return nil
		}
		return f.data
	}
	if !views || len(f.parts) == 0 {
		return nil
	}
	if only == "" {
		return f.full
	}
	for i, n := range f.names {
		if n == only {
			out := []byte("event: " + api.EventServices + "\ndata: [")
			out = append(out, f.parts[i]...)
			return append(out, "]\n\n"...)
		}
	}
	return nil // the service the client follows did not change
}

// serviceCache holds each service's JSON by its ID and Version, so a
// service is encoded once per change whatever reads it: the services
// frames, the snapshots of new clients, /api/services. It holds at most the
// services of the last view it was pruned to (plus those encoded since).
type serviceCache struct {
	mu   sync.Mutex
	byID map[string]cachedService
}

type cachedService struct {
	version uint64
	json    []byte
}

// service returns s's JSON. A Version of 0 (a service not built by the
// watcher) is never cached.
func (c *serviceCache) service(s *watch.Service) ([]byte, error) {
	if s.Version != 0 {
		c.mu.Lock()
		e, ok := c.byID[s.ID]
		c.mu.Unlock()
		if ok && e.version == s.Version {
			return e.json, nil
		}
	}
	b, err := json.Marshal(wire.Service(s))
	if err != nil {
		return nil, fmt.Errorf("encode service %s: %w", s.Name, err)
	}
	if s.Version != 0 {
		c.mu.Lock()
		if c.byID == nil {
			c.byID = map[string]cachedService{}
		}
		if e, ok := c.byID[s.ID]; !ok || e.version < s.Version {
			c.byID[s.ID] = cachedService{version: s.Version, json: b}
		}
		c.mu.Unlock()
	}
	return b, nil
}

// list returns the JSON array of the services of view that f keeps.
func (c *serviceCache) list(view []watch.Service, f wire.Filter) ([]byte, error) {
	out := []byte{'['}
	n := 0
	for i := range view {
		if !f.Keeps(&view[i]) {
			continue
		}
		b, err := c.service(&view[i])
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
		n++
	}
	return append(out, ']'), nil
}

// prune forgets the services that are not in view.
func (c *serviceCache) prune(view []watch.Service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byID) <= len(view) {
		return
	}
	keep := make(map[string]bool, len(view))
	for i := range view {
		keep[view[i].ID] = true
	}
	for id := range c.byID {
		if !keep[id] {
			delete(c.byID, id)
		}
	}
}

// event encodes one server-sent event.
func event(id, name string, data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", name, err)
	}
	out := make([]byte, 0, len(b)+len(name)+32)
	if id != "" {
		out = append(out, "id: "+id+"\n"...)
	}
	out = append(out, "event: "+name+"\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...), nil
}

// snapshotCache keeps the opening events (snapshot and status) of the
// current state, per ?service= filter, so that clients connecting together
// share one encoding. It is emptied when the state moves on and holds at
// most maxCachedFilters filters (the filter is the client's to choose).
type snapshotCache struct {
	mu   sync.Mutex
	seq  uint64
	byOf map[string][]byte
}

const maxCachedFilters = 64

func (c *snapshotCache) get(st watch.State, only string, services *serviceCache) ([]byte, error) {
	c.mu.Lock()
	if c.seq == st.Seq && c.byOf != nil {
		if b, ok := c.byOf[only]; ok {
			c.mu.Unlock()
			return b, nil
		}
	}
	c.mu.Unlock()
	list, err := services.list(st.Services, wire.Filter{Name: only})
	if err != nil {
		return nil, err
	}
	snap := make([]byte, 0, len(list)+32)
	snap = append(snap, "event: "+api.EventSnapshot+"\ndata: "...)
	snap = append(append(snap, list...), "\n\n"...)
	status, err := event("", api.EventStatus, wire.Status(st.Status))
	if err != nil {
		return nil, err
	}
	b := append(snap, status...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq != st.Seq || c.byOf == nil {
		c.seq, c.byOf = st.Seq, map[string][]byte{}
	}
	if len(c.byOf) < maxCachedFilters {
		c.byOf[only] = b
	}
	return b, nil
}

// metrics are the server's instruments, always built; registered only when
// asked (Server.Register).
type metrics struct {
	clients  prometheus.Gauge
	rejected *prometheus.CounterVec
	dropped  prometheus.Counter
	encoded  prometheus.Counter
	// publishToFlush is the last stage from an engine event to a client:
	// the watcher's publish to the flush of the client's write.
	publishToFlush prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmwatcher_event_clients", Help: "Connected /api/events clients.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmwatcher_event_clients_rejected_total", Help: "/api/events clients refused with 503, by bound hit (cap, per-ip).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmwatcher_event_clients_dropped_total", Help: "/api/events clients disconnected because they fell behind.",
		}),
		encoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmwatcher_events_encoded_total", Help: "Watcher messages encoded for the event stream (once each, whatever the number of clients).",
		}),
		publishToFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_publish_to_flush_seconds", Help: "From the watcher's publish of a message to its flush to an /api/events client (encoding, fan-out, the write), per client.",
			Buckets: watch.StageBuckets,
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.clients, m.rejected, m.dropped, m.encoded, m.publishToFlush} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register server metrics: %w", err)
		}
	}
	m.rejected.WithLabelValues("cap")
	m.rejected.WithLabelValues("per-ip")
	return nil
}
