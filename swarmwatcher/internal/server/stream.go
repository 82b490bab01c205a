package server

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/wire"
)

// frame is one message of the watcher, encoded once as server-sent events
// and shared by every client: a client only picks the bytes its filter
// wants, it never encodes.
type frame struct {
	service string // a change's service; "" for status and keepalive
	data    []byte // the whole event; nil for a services frame
	// A services frame (the view after an update, for ?views=1 clients):
	// each service encoded once, the whole list assembled once.
	full  []byte
	names []string
	parts [][]byte
}

var keepaliveFrame = &frame{data: []byte(": keepalive\n\n")}

func newFrame(m watch.Message, seq uint64) (*frame, error) {
	switch {
	case m.Change != nil:
		b, err := event(strconv.FormatUint(seq, 10), string(m.Change.Type), wire.Change(m.Change))
		return &frame{service: m.Change.Service, data: b}, err
	case m.Status != nil:
		b, err := event("", api.EventStatus, wire.Status(*m.Status))
		return &frame{data: b}, err
	default:
		f := &frame{names: make([]string, len(m.Services)), parts: make([][]byte, len(m.Services))}
		list := []byte("event: " + api.EventServices + "\ndata: [")
		for i := range m.Services {
			b, err := json.Marshal(wire.Service(&m.Services[i]))
			if err != nil {
				return nil, fmt.Errorf("encode service %s: %w", m.Services[i].Name, err)
			}
			f.names[i], f.parts[i] = m.Services[i].Name, b
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
	if !views {
		return nil
	}
	if only == "" {
		return f.full
	}
	out := []byte("event: " + api.EventServices + "\ndata: [")
	for i, n := range f.names {
		if n == only {
			out = append(out, f.parts[i]...)
			break
		}
	}
	return append(out, "]\n\n"...)
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

func (c *snapshotCache) get(st watch.State, only string) ([]byte, error) {
	c.mu.Lock()
	if c.seq == st.Seq && c.byOf != nil {
		if b, ok := c.byOf[only]; ok {
			c.mu.Unlock()
			return b, nil
		}
	}
	c.mu.Unlock()
	snap, err := event("", api.EventSnapshot, wire.Services(st.Services, wire.Filter{Name: only}))
	if err != nil {
		return nil, err
	}
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
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.clients, m.rejected, m.dropped, m.encoded} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register server metrics: %w", err)
		}
	}
	m.rejected.WithLabelValues("cap")
	m.rejected.WithLabelValues("per-ip")
	return nil
}
