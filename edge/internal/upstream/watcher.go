// Package upstream holds the edge's watcher-fed way of reaching
// accountservice (EDGE_DISCOVERY=watcher): instead of the service name, the
// edge balances over the tasks the swarmwatcher reports passing.
package upstream

import (
	"log/slog"
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
// last set it had. It routes by tenant: a request whose X-Goblog-Tenant
// header names a tenant goes only to that tenant's passing tasks, or to the
// plain ones when the tenant has none; a request without it never reaches a
// tenant's task. It is the swarmwatcher client's one discovery constructor
// (sd.NewDiscovery) under the edge's names.
type Watcher = wsd.Discovery

// NewWatcher connects to the watcher (waiting at most a few seconds for its
// first answer) and returns the transport. Close it when done.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	return wsd.NewDiscovery(wsd.DiscoveryConfig{
		WatcherURL: cfg.WatcherURL, Service: cfg.Service, Port: cfg.Port,
		DialTimeout: cfg.DialTimeout, ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		Fallback: cfg.Fallback, Logger: cfg.Logger,
	})
}
