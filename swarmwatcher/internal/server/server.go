// Package server serves the swarmwatcher's HTTP API and its health page.
//
// Every JSON shape it writes is declared in package api; package wire maps
// the watcher's domain values onto them.
package server

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goblog/goblog/internal/jsonhttp"
	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/fanout"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/wire"
)

//go:embed web/index.html
var indexHTML []byte

// Source is what the handlers read: the watcher.
type Source interface {
	State() watch.State
	Healthy() bool
	Subscribe(buffer int) (watch.State, *fanout.Sub[watch.Message])
}

var _ Source = (*watch.Watcher)(nil)

// DefaultLabelPrefixes are the service label prefixes /api/sd exports when
// Config.LabelPrefixes is nil.
var DefaultLabelPrefixes = []string{"swarmwatcher.", "goblog."}

// Config tunes the handlers. Zero values take the defaults.
type Config struct {
	// Keepalive is the period of SSE comment lines. Default 15 s.
	Keepalive time.Duration
	// ClientBuffer is how many events may wait for one SSE client before
	// it is dropped. Default 256.
	ClientBuffer int
	// WriteWait bounds each write to an SSE client. Default 10 s.
	WriteWait time.Duration
	// MaxClients bounds the /api/events clients; beyond it they get 503
	// with Retry-After. Default 1024.
	MaxClients int
	// MaxClientsPerIP bounds the /api/events clients of one remote IP.
	// Default 32.
	MaxClientsPerIP int
	// LabelPrefixes are the service label prefixes /api/sd exports (other
	// labels, which may hold other stacks' secrets, never leave). Nil means
	// DefaultLabelPrefixes; empty means none.
	LabelPrefixes []string
	// Gatherer serves /metrics (nil: the default registry).
	Gatherer prometheus.Gatherer
	// Logger (nil: discard).
	Logger *slog.Logger
}

// Server holds the handlers and the event-stream encoder. Create it with
// New, run the encoder with Run, serve Handler.
type Server struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	m       *metrics
	clients *fanout.Hub[*frame]
	snaps   snapshotCache
	mux     *http.ServeMux
}

// New returns a Server reading src.
func New(cfg Config, src Source) *Server {
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = 15 * time.Second
	}
	if cfg.ClientBuffer <= 0 {
		cfg.ClientBuffer = 256
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 1024
	}
	if cfg.MaxClientsPerIP <= 0 {
		cfg.MaxClientsPerIP = 32
	}
	if cfg.LabelPrefixes == nil {
		cfg.LabelPrefixes = DefaultLabelPrefixes
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := newMetrics()
	s := &Server{cfg: cfg, src: src, log: log, m: m}
	s.clients = fanout.New[*frame](fanout.Config{
		MaxSubscribers: cfg.MaxClients,
		MaxPerKey:      cfg.MaxClientsPerIP,
		OnCount:        func(n int) { m.clients.Set(float64(n)) },
		OnDrop:         func() { m.dropped.Inc() },
		OnReject: func(err error) {
			reason := "cap"
			if errors.Is(err, fanout.ErrKeyFull) {
				reason = "per-ip"
			}
			m.rejected.WithLabelValues(reason).Inc()
		},
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /api/services", s.services)
	mux.HandleFunc("GET /api/sd", s.sd)
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /health", s.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	for _, p := range []string{"/api/services", "/api/sd", "/api/events", "/health", "/metrics"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			jsonhttp.WriteError(w, http.StatusMethodNotAllowed, r.Method+" not allowed on "+r.URL.Path)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
	})
	s.mux = mux
	return s
}

// Register adds the server's metrics to reg.
func (s *Server) Register(reg prometheus.Registerer) error { return s.m.register(reg) }

// Handler returns the watcher's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Run encodes every change once and hands it to every event-stream client,
// and sends the keepalives, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	keep := time.NewTicker(s.cfg.Keepalive)
	defer keep.Stop()
	for ctx.Err() == nil {
		_, sub := s.src.Subscribe(4096)
		// Clients that started before this subscription may have missed
		// what the last one lost: they start over.
		s.clients.CloseAll()
		s.encode(ctx, sub, keep.C)
		sub.Close()
	}
	s.clients.CloseAll()
	return nil
}

// encode turns the watcher's messages into frames until ctx ends or the
// subscription is dropped.
func (s *Server) encode(ctx context.Context, sub *fanout.Sub[watch.Message], keepalive <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepalive:
			s.clients.Publish(0, keepaliveFrame)
		case m, ok := <-sub.C():
			if !ok {
				s.log.Warn("event-stream encoder fell behind: clients start over")
				return
			}
			f, err := newFrame(m.Value, m.Seq)
			if err != nil {
				s.log.Error("event not sent: cannot encode it", "err", err)
				continue
			}
			s.m.encoded.Inc()
			s.clients.Publish(m.Seq, f)
		}
	}
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	// Everything is inline and same-origin: nothing else may load or run.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(indexHTML)
}

// answer writes v with jsonhttp, the project's one JSON writer; the watcher's
// answers change with every probe round, so none may be cached.
func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	jsonhttp.Write(w, status, v)
}

// services serves the view; ?service=<name> narrows it to that service
// (an empty list when there is none, as Consul's health endpoint does),
// ?logical=<name> to the versions of a logical service (the plain one and
// its tenants'), ?tenant=<name> to a tenant's services.
func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := wire.Filter{Name: q.Get("service"), Logical: q.Get("logical"), Tenant: q.Get("tenant")}
	answer(w, http.StatusOK, wire.Services(s.src.State().Services, f))
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.src.Healthy() {
		answer(w, http.StatusOK, api.HealthStatus{Status: "UP"})
		return
	}
	st := s.src.State().Status
	body := api.HealthStatus{Status: "DOWN", Error: st.Err, Since: api.FormatTime(st.Since)}
	if body.Error == "" {
		body.Error = "no answer from the Docker API within the refresh window"
	}
	answer(w, http.StatusServiceUnavailable, body)
}

var invalidLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// sanitize turns a Docker label key into a Prometheus label name suffix.
func sanitize(k string) string { return invalidLabelChars.ReplaceAllString(k, "_") }

// sd serves one target group per addressed task, so every task carries its
// own health and slot labels, under both the watcher's names and
// dockerswarm_sd's.
func (s *Server) sd(w http.ResponseWriter, r *http.Request) {
	view := s.src.State().Services
	groups := []api.TargetGroup{}
	for i := range view {
		svc := &view[i]
		var svcLabels map[string]string
		for k, v := range svc.Labels {
			if !s.exported(k) {
				continue
			}
			if svcLabels == nil {
				svcLabels = map[string]string{}
			}
			n := sanitize(k)
			svcLabels[api.LabelServiceLabelPrefix+n] = v
			svcLabels[api.DockerswarmServiceLabelPrefix+n] = v
		}
		for j := range svc.Tasks {
			t := &svc.Tasks[j]
			if t.Address == "" {
				continue
			}
			target := t.Address
			if t.Port > 0 {
				target += ":" + strconv.Itoa(t.Port)
			}
			slot := strconv.Itoa(t.Slot)
			labels := map[string]string{
				api.LabelService:      svc.Name,
				api.LabelServiceID:    svc.ID,
				api.LabelEndpointMode: svc.EndpointMode,
				api.LabelTaskID:       t.ID,
				api.LabelTaskSlot:     slot,
				api.LabelTaskState:    t.State,
				api.LabelDesiredState: t.DesiredState,
				api.LabelNode:         t.Node,
				api.LabelNetwork:      t.Network,
				api.LabelHealth:       string(t.Health),
				api.LabelLogical:      svc.Logical,

				api.DockerswarmTaskID:           t.ID,
				api.DockerswarmTaskSlot:         slot,
				api.DockerswarmTaskState:        t.State,
				api.DockerswarmTaskDesiredState: t.DesiredState,
				api.DockerswarmServiceID:        svc.ID,
				api.DockerswarmServiceName:      svc.Name,
				api.DockerswarmNodeID:           t.NodeID,
				api.DockerswarmNodeHostname:     t.Node,
				api.DockerswarmNetworkName:      t.Network,
			}
			for k, v := range map[string]string{
				api.DockerswarmTaskContainerID:  t.ContainerID,
				api.DockerswarmServiceMode:      svc.Mode,
				api.DockerswarmNodeAddress:      t.NodeAddress,
				api.DockerswarmNodeAvailability: t.NodeAvailability,
				api.DockerswarmNodeStatus:       t.NodeStatus,
				api.DockerswarmNodeRole:         t.NodeRole,
				api.DockerswarmNetworkID:        t.NetworkID,
				api.LabelTenant:                 t.Tenant,
			} {
				if v != "" { // only what the engine told us
					labels[k] = v
				}
			}
			for k, v := range svcLabels {
				labels[k] = v
			}
			groups = append(groups, api.TargetGroup{Targets: []string{target}, Labels: labels})
		}
	}
	answer(w, http.StatusOK, groups)
}

func (s *Server) exported(label string) bool {
	for _, p := range s.cfg.LabelPrefixes {
		if strings.HasPrefix(label, p) {
			return true
		}
	}
	return false
}

// events streams server-sent events: the snapshot and status first, then
// every change (and with ?views=1 the whole view after every update, which
// the page uses for latencies and history). ?service=<name> narrows all of
// them to one service. Clients beyond the caps get 503 with Retry-After.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	views, only := q.Get("views") == "1", q.Get("service")
	sub, err := s.clients.Subscribe(s.cfg.ClientBuffer, remoteIP(r))
	if err != nil {
		w.Header().Set("Retry-After", "5")
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "event stream: "+err.Error())
		return
	}
	defer sub.Close()
	st := s.src.State()
	sub.Skip(st.Seq)

	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	first, err := s.snaps.get(st, only)
	if err != nil {
		s.log.Error("event stream: cannot encode the snapshot", "err", err)
		return
	}
	if err := write(first); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-sub.C():
			if !ok {
				if sub.Dropped() {
					s.log.Warn("event-stream client fell behind: disconnected", "remote", r.RemoteAddr)
				}
				return
			}
			if m.Seq != 0 && !sub.Keep(m) {
				continue
			}
			b := m.Value.bytes(only, views)
			if b == nil {
				continue
			}
			if err := write(b); err != nil {
				return
			}
		}
	}
}

// remoteIP is the client's IP, the key of the per-IP bound.
func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
