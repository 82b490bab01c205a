// Package upstream holds the edge's watcher-fed way of reaching
// accountservice (EDGE_DISCOVERY=watcher): instead of the service name, the
// edge balances over the tasks the swarmwatcher reports passing.
package upstream

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// WatcherConfig configures a Watcher transport.
type WatcherConfig struct {
	// WatcherURL is the swarmwatcher, e.g. http://swarmwatcher:6969.
	WatcherURL string
	// Service is the swarm service to balance over; "accountservice" finds
	// "<stack>_accountservice".
	Service string
	// Port, when > 0, replaces the port the watcher reports for each task.
	Port int
	// DialTimeout and ResponseHeaderTimeout bound each attempt.
	DialTimeout, ResponseHeaderTimeout time.Duration
	// Fallback carries requests while the watcher has never yet given a set
	// of tasks (it is down or not deployed): the edge then works by name
	// rather than answering 502. Nil: no fallback.
	Fallback http.RoundTripper
	Logger   *slog.Logger
}

// Watcher is an http.RoundTripper that sends each request to the next of
// the service's passing tasks (go-kit round robin, one retry on another task
// for idempotent requests). When the watcher goes away it keeps using the
// last set it had.
type Watcher struct {
	inst *wsd.Instancer
	tr   *wsd.Transport
	log  *slog.Logger
}

var _ http.RoundTripper = (*Watcher)(nil)

// NewWatcher connects to the watcher (waiting at most a few seconds for its
// first answer) and returns the transport. Close it when done.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	inst, err := wsd.NewInstancer(wsd.Config{
		WatcherURL: cfg.WatcherURL, Service: cfg.Service, Port: cfg.Port, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("watcher discovery: %w", err)
	}
	base := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	w := &Watcher{
		inst: inst,
		tr: wsd.NewTransport(inst, wsd.TransportConfig{
			Base: base, MaxAttempts: 2, Fallback: cfg.Fallback, Logger: cfg.Logger,
		}),
		log: cfg.Logger,
	}
	if st := inst.State(); st.Err != nil {
		w.log.Warn("swarmwatcher not answering yet", "watcher", cfg.WatcherURL, "err", st.Err)
	} else {
		w.log.Info("balancing over the swarmwatcher's passing tasks", "watcher", cfg.WatcherURL, "service", cfg.Service, "tasks", len(st.Instances))
	}
	return w, nil
}

// RoundTrip implements http.RoundTripper.
func (w *Watcher) RoundTrip(req *http.Request) (*http.Response, error) {
	return w.tr.RoundTrip(req)
}

// Close stops following the watcher.
func (w *Watcher) Close() {
	w.tr.Close()
	w.inst.Stop()
}
