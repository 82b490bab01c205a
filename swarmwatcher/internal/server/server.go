// Package server serves the swarmwatcher's HTTP API and its health page.
package server

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

//go:embed web/index.html
var indexHTML []byte

// Source is what the handlers read: the watcher.
type Source interface {
	Services() []watch.Service
	Status() watch.Status
	Healthy() bool
	Subscribe(buffer int, views bool) ([]watch.Service, watch.Status, *watch.Subscription)
}

var _ Source = (*watch.Watcher)(nil)

// Config tunes the handlers.
type Config struct {
	// Keepalive is the period of SSE comment lines.
	Keepalive time.Duration
	// ClientBuffer is how many messages may wait for one SSE client before
	// it is dropped.
	ClientBuffer int
	// WriteWait bounds each write to an SSE client.
	WriteWait time.Duration
	// Gatherer serves /metrics (nil: the default registry).
	Gatherer prometheus.Gatherer
	// Logger (nil: discard).
	Logger *slog.Logger
}

type handler struct {
	cfg Config
	src Source
	log *slog.Logger
}

// Handler returns the watcher's routes.
func Handler(cfg Config, src Source) http.Handler {
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = 15 * time.Second
	}
	if cfg.ClientBuffer <= 0 {
		cfg.ClientBuffer = 256
	}
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = 10 * time.Second
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &handler{cfg: cfg, src: src, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /api/services", h.services)
	mux.HandleFunc("GET /api/sd", h.sd)
	mux.HandleFunc("GET /api/events", h.events)
	mux.HandleFunc("GET /health", h.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	for _, p := range []string{"/api/services", "/api/sd", "/api/events", "/health", "/metrics"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": r.Method + " not allowed on " + r.URL.Path})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	// Everything is inline and same-origin: nothing else may load or run.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(indexHTML)
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.src.Services())
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	st := h.src.Status()
	if h.src.Healthy() {
		writeJSON(w, http.StatusOK, map[string]string{"status": "UP"})
		return
	}
	body := map[string]string{"status": "DOWN", "error": st.Error, "since": st.Since}
	if body["error"] == "" {
		body["error"] = "no answer from the Docker API within the refresh window"
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}

// targetGroup is Prometheus' HTTP SD format.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

var labelName = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// sd serves one target group per addressed task, so every task carries its
// own health and slot labels.
func (h *handler) sd(w http.ResponseWriter, r *http.Request) {
	groups := []targetGroup{}
	for _, s := range h.src.Services() {
		for _, t := range s.Tasks {
			if t.Address == "" {
				continue
			}
			target := t.Address
			if t.Port > 0 {
				target += ":" + strconv.Itoa(t.Port)
			}
			labels := map[string]string{
				"__meta_swarmwatcher_service":       s.Name,
				"__meta_swarmwatcher_service_id":    s.ID,
				"__meta_swarmwatcher_endpoint_mode": s.EndpointMode,
				"__meta_swarmwatcher_task_id":       t.ID,
				"__meta_swarmwatcher_task_slot":     strconv.Itoa(t.Slot),
				"__meta_swarmwatcher_task_state":    t.State,
				"__meta_swarmwatcher_desired_state": t.DesiredState,
				"__meta_swarmwatcher_node":          t.Node,
				"__meta_swarmwatcher_network":       t.Network,
				"__meta_swarmwatcher_health":        t.Health,
			}
			for k, v := range s.Labels {
				labels["__meta_swarmwatcher_service_label_"+labelName.ReplaceAllString(k, "_")] = v
			}
			groups = append(groups, targetGroup{Targets: []string{target}, Labels: labels})
		}
	}
	writeJSON(w, http.StatusOK, groups)
}

// events streams server-sent events: the snapshot and status first, then
// every change (and with ?views=1 the whole view after every update, which
// the page uses for latencies and history).
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	views := r.URL.Query().Get("views") == "1"
	view, status, sub := h.src.Subscribe(h.cfg.ClientBuffer, views)
	defer sub.Close()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	send := func(id, event string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("marshal %s: %w", event, err)
		}
		if err := rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		msg := make([]byte, 0, len(b)+64)
		if id != "" {
			msg = append(msg, "id: "+id+"\n"...)
		}
		msg = append(msg, "event: "+event+"\ndata: "...)
		msg = append(msg, b...)
		msg = append(msg, "\n\n"...)
		if _, err := w.Write(msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("", "snapshot", view); err != nil {
		return
	}
	if err := send("", "status", status); err != nil {
		return
	}
	keep := time.NewTicker(h.cfg.Keepalive)
	defer keep.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteWait))
			if _, err = io.WriteString(w, ": keepalive\n\n"); err == nil {
				err = rc.Flush()
			}
		case m, ok := <-sub.C():
			if !ok {
				h.log.Warn("event-stream client fell behind: disconnected", "remote", r.RemoteAddr)
				return
			}
			switch m.Kind {
			case watch.KindChange:
				err = send(strconv.FormatUint(m.Seq, 10), m.Change.Type, m.Change)
			case watch.KindStatus:
				err = send("", "status", m.Status)
			case watch.KindServices:
				err = send("", "services", m.Services)
			}
		}
		if err != nil {
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"cannot encode answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
