package turbine

import (
	"embed"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/internal/jsonhttp"
	"github.com/goblog/goblog/turbine/api"
)

// Instances lists the registry's live instances and its counters.
type Instances interface {
	Instances() []discoverytoken.Instance
	Len() int
	Stats() discoverytoken.RegistryStats
}

// Protection is what turbine needs from a registry with self-preservation: the IDs of the
// instances it keeps although they fell silent. Optional; nil means none are protected.
type Protection interface {
	ProtectedIDs() []string
}

// Subscription tells whether the discovery consumer is subscribed to the broker.
type Subscription interface {
	Subscribed() bool
	Stats() discoverytoken.ConsumerStats
}

// WatcherStats reports how the verifier's source of truth answered. Optional.
type WatcherStats interface {
	Stats() api.WatcherStats
}

var (
	_ Instances    = (*discoverytoken.Registry)(nil)
	_ Subscription = (*discoverytoken.Consumer)(nil)
	_ WatcherStats = (*WatcherVerifier)(nil)
	_ Protection   = (*discoverytoken.Registry)(nil)
)

// ServerConfig configures the HTTP handler.
type ServerConfig struct {
	Config
	Registry     Instances
	Protection   Protection // optional
	Subscription Subscription
	Watcher      WatcherStats // optional
	Streams      *Streams
	Aggregator   *Aggregator
	Hub          *Hub
	// Collectors are registered on /metrics beside turbine's own (e.g. the registry's).
	Collectors []prometheus.Collector
	Logger     *slog.Logger
}

//go:embed web
var web embed.FS

// contentSecurity lets the dashboard load only its own script and style and connect only
// to its own origin.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// maxClusterLen bounds ?cluster= (a service name of the token contract, and a tenant).
const maxClusterLen = 255

// NewHandler returns turbine's HTTP API: the dashboard at /, /turbine.stream,
// /api/instances, /api/stats (and the same counters at /metrics), /health (readiness) and
// /-/live (liveness).
func NewHandler(cfg ServerConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page("web/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /ui/app.js", s.page("web/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /ui/app.css", s.page("web/app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET "+api.PathStream, s.stream)
	mux.HandleFunc("GET "+api.PathInstances, func(w http.ResponseWriter, r *http.Request) {
		s.json(w, http.StatusOK, s.instances())
	})
	mux.HandleFunc("GET "+api.PathStats, func(w http.ResponseWriter, r *http.Request) {
		s.json(w, http.StatusOK, s.stats())
	})
	mux.HandleFunc("GET "+api.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		if cfg.Subscription.Subscribed() {
			s.json(w, http.StatusOK, map[string]string{"status": "UP"})
			return
		}
		s.json(w, http.StatusServiceUnavailable, map[string]string{
			"status": "DOWN", "reason": "not subscribed to the discovery exchange on the broker",
		})
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{stats: s.stats})
	reg.MustRegister(cfg.Collectors...)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+api.PathLive, func(w http.ResponseWriter, r *http.Request) {
		s.json(w, http.StatusOK, map[string]string{"status": "UP"})
	})
	return mux
}

type server struct {
	cfg       ServerConfig
	streaming atomic.Int64
	refused   atomic.Uint64
}

// json writes v within the write timeout.
func (s *server) json(w http.ResponseWriter, status int, v any) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	jsonhttp.Write(w, status, v)
}

func (s *server) page(file, contentType string) http.HandlerFunc {
	body, err := web.ReadFile(file)
	if err != nil {
		panic("turbine: embedded " + file + " missing: " + err.Error()) // programmer error
	}
	return func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", contentSecurity)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	}
}

func (s *server) instances() []api.Instance {
	status := s.cfg.Streams.Status()
	protected := map[string]bool{}
	if s.cfg.Protection != nil {
		for _, id := range s.cfg.Protection.ProtectedIDs() {
			protected[id] = true
		}
	}
	insts := s.cfg.Registry.Instances()
	out := make([]api.Instance, 0, len(insts))
	for _, in := range insts {
		st := status[in.InstanceID]
		out = append(out, api.Instance{
			InstanceID: in.InstanceID, Service: in.Service, Address: in.Address, Port: in.Port,
			State: string(in.State), LastSeen: in.LastSeen.UTC(), StreamConnected: st.Connected,
			Verified: st.Verified, Tenant: st.Tenant, Protected: protected[in.InstanceID], Dials: st.Dials,
		})
	}
	return out
}

func (s *server) stats() api.Stats {
	st := api.Stats{
		Consumer:       s.cfg.Subscription.Stats(),
		Registry:       s.cfg.Registry.Stats(),
		LiveInstances:  s.cfg.Registry.Len(),
		AggregatedKeys: s.cfg.Aggregator.Keys(),
		BadStreamLines: s.cfg.Streams.BadLines(),
		Streams:        s.cfg.Streams.Stats(),
		Clients: api.ClientStats{
			Streaming: int(s.streaming.Load()), Refused: s.refused.Load(),
			Aggregations: s.cfg.Hub.Aggregations(), ClustersCapped: s.cfg.Hub.ClustersCapped(),
		},
	}
	if s.cfg.Protection != nil {
		st.Protected = len(s.cfg.Protection.ProtectedIDs())
	}
	if s.cfg.Watcher != nil {
		st.Watcher = s.cfg.Watcher.Stats()
	}
	return st
}

// stream sends the hub's shared aggregate every round as server-sent events, one `data:`
// line per (type, name), and a ping comment when there is nothing to send.
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get(api.QueryCluster)
	if len(raw) > maxClusterLen || !utf8.ValidString(raw) {
		jsonhttp.WriteError(w, http.StatusBadRequest, "cluster: at most 255 bytes of UTF-8")
		return
	}
	cluster, err := ParseCluster(raw)
	if err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if n := s.streaming.Add(1); n > int64(s.cfg.MaxClients) {
		s.streaming.Add(-1)
		s.refused.Add(1)
		w.Header().Set("Retry-After", "5")
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "too many /turbine.stream clients")
		return
	}
	defer s.streaming.Add(-1)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream;charset=UTF-8")
	h.Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	h.Set("Access-Control-Allow-Origin", "*") // the Hystrix dashboard is usually elsewhere
	w.WriteHeader(http.StatusOK)
	for {
		frame, next, err := s.cfg.Hub.Frame(cluster)
		if err != nil {
			frame = []byte(": busy\n\n")
		}
		// The write deadline covers one round only: a reader that stops reading is dropped.
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.cfg.Hub.Done():
			return
		case <-next:
		}
	}
}
