package sd

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	kitsd "github.com/go-kit/kit/sd"
)

// DiscoveryConfig configures a Discovery. Zero values take the defaults.
type DiscoveryConfig struct {
	// WatcherURL is the swarmwatcher, e.g. http://swarmwatcher:6969.
	WatcherURL string
	// Service is the swarm service to balance over; "accountservice" finds
	// "<stack>_accountservice".
	Service string
	// Port, when > 0, replaces the port the watcher reports for each task.
	Port int
	// DialTimeout bounds connecting to a task. Default 1 s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a task's answer headers.
	// Default 30 s.
	ResponseHeaderTimeout time.Duration
	// Timeout bounds a whole request, retries included. Default 30 s.
	Timeout time.Duration
	// Fallback carries requests while the watcher has never yet given a set
	// of tasks (it is down or not deployed), e.g. a by-name transport; nil:
	// no fallback.
	Fallback http.RoundTripper
	// Logger; nil discards.
	Logger *slog.Logger
}

// Discovery is client-side discovery over the swarmwatcher in one value: an
// Instancer following the service's passing tasks and a Transport balancing
// requests over them (round robin, one retry on another task for replayable
// requests, the last good set kept while the watcher is away). It is an
// http.RoundTripper; Close ends both.
//
// It routes by tenant: a request whose X-Goblog-Tenant header names a
// tenant (package github.com/goblog/goblog/internal/tenant) goes only to
// that tenant's passing tasks of the service (see Instancer.Tenant), or to
// the plain tasks when the tenant has none; a header that is no tenant is
// ignored. Both are counted (Stats). A request without the header goes to
// the plain tasks only, never to a tenant's.
type Discovery struct {
	cfg     DiscoveryConfig
	inst    *Instancer
	tr      *Transport
	base    *http.Transport
	tenants tenantRoutes
}

var _ http.RoundTripper = (*Discovery)(nil)

// NewDiscovery connects to the watcher, waiting at most a few seconds for
// its first answer (an unreachable watcher is not an error: the Instancer
// keeps trying and the Fallback carries requests meanwhile).
func NewDiscovery(cfg DiscoveryConfig) (*Discovery, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	inst, err := NewInstancer(Config{WatcherURL: cfg.WatcherURL, Service: cfg.Service, Port: cfg.Port, Logger: cfg.Logger})
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
	d := &Discovery{
		cfg:  cfg,
		inst: inst,
		base: base,
		tr: NewTransport(inst, TransportConfig{
			Base: base, MaxAttempts: 2, Timeout: cfg.Timeout, Fallback: cfg.Fallback, Logger: cfg.Logger,
		}),
	}
	d.tenants.d = d
	if st := inst.State(); st.Err != nil {
		cfg.Logger.Warn("swarmwatcher not answering yet", "watcher", cfg.WatcherURL, "service", cfg.Service, "err", st.Err)
	} else {
		cfg.Logger.Info("balancing over the swarmwatcher's passing tasks", "watcher", cfg.WatcherURL, "service", cfg.Service, "tasks", len(st.Instances), "tenants", inst.Tenants())
	}
	return d, nil
}

// RoundTrip implements http.RoundTripper.
func (d *Discovery) RoundTrip(req *http.Request) (*http.Response, error) {
	if tr := d.tenants.pick(req); tr != nil {
		return tr.RoundTrip(req)
	}
	return d.tr.RoundTrip(req)
}

// State returns the Instancer's current set and error.
func (d *Discovery) State() kitsd.Event { return d.inst.State() }

// Close stops balancing and following the watcher, and closes idle
// connections to the tasks.
func (d *Discovery) Close() {
	d.tenants.close()
	d.tr.Close()
	d.inst.Stop()
	d.base.CloseIdleConnections()
}
