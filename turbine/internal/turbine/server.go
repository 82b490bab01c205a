package turbine

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/goblog/goblog/discoverytoken"
)

// Instances lists the registry's live instances and its counters.
type Instances interface {
	Instances() []discoverytoken.Instance
	Stats() discoverytoken.RegistryStats
}

// Subscription tells whether the discovery consumer is subscribed to the broker.
type Subscription interface {
	Subscribed() bool
	Stats() discoverytoken.ConsumerStats
}

// ServerConfig configures the HTTP handler.
type ServerConfig struct {
	Registry     Instances
	Subscription Subscription
	Streams      *Streams
	Aggregator   *Aggregator
	// Interval is how often /turbine.stream sends the aggregate. Default 1 s.
	Interval time.Duration
	Logger   *slog.Logger
}

// InstanceView is one element of GET /api/instances.
type InstanceView struct {
	InstanceID      string    `json:"instanceId"`
	Service         string    `json:"service"`
	Address         string    `json:"address"`
	Port            int       `json:"port"`
	State           string    `json:"state"`
	LastSeen        time.Time `json:"lastSeen"`
	StreamConnected bool      `json:"streamConnected"`
}

// NewHandler returns turbine's HTTP API: /turbine.stream, /api/instances, /api/stats and
// /health.
func NewHandler(cfg ServerConfig) http.Handler {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /turbine.stream", func(w http.ResponseWriter, r *http.Request) { serveStream(w, r, cfg) })
	mux.HandleFunc("GET /api/instances", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, instanceViews(cfg))
	})
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"consumer":       cfg.Subscription.Stats(),
			"registry":       cfg.Registry.Stats(),
			"badStreamLines": cfg.Streams.BadLines(),
			"liveInstances":  len(cfg.Registry.Instances()),
			"aggregatedKeys": len(cfg.Aggregator.Snapshot()),
		})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Subscription.Subscribed() {
			writeJSON(w, http.StatusOK, map[string]string{"status": "UP"})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"status": "DOWN", "reason": "not subscribed to the discovery exchange on the broker",
		})
	})
	return mux
}

func instanceViews(cfg ServerConfig) []InstanceView {
	connected := cfg.Streams.Connected()
	insts := cfg.Registry.Instances()
	out := make([]InstanceView, 0, len(insts))
	for _, in := range insts {
		out = append(out, InstanceView{
			InstanceID: in.InstanceID, Service: in.Service, Address: in.Address, Port: in.Port,
			State: string(in.State), LastSeen: in.LastSeen.UTC(), StreamConnected: connected[in.InstanceID],
		})
	}
	return out
}

// serveStream sends the aggregate every interval as server-sent events, one `data:` line
// per (type, name), and a ping comment when there is nothing to send.
func serveStream(w http.ResponseWriter, r *http.Request, cfg ServerConfig) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream;charset=UTF-8")
	h.Set("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
	h.Set("Access-Control-Allow-Origin", "*") // the Hystrix dashboard is usually elsewhere
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		// The write deadline covers one round only: a reader that stops reading is dropped.
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.Interval + 10*time.Second))
		samples := cfg.Aggregator.Snapshot()
		if len(samples) == 0 {
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
		}
		for _, s := range samples {
			b, err := json.Marshal(s)
			if err != nil {
				continue // a host sent a number JSON cannot carry back; skip that sample
			}
			if _, err := w.Write(append(append([]byte("data: "), b...), '\n', '\n')); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
