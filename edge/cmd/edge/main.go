// Command edge is the stack's front door on :6767: it proxies every request to
// accountservice by service name and spreads them over its tasks.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/edge/internal/proxy"
	"github.com/goblog/goblog/edge/internal/upstream"
	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/exepages"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/lbclient"
	"github.com/goblog/goblog/internal/tenant"
)

// Config is everything the edge reads from flags and environment.
type Config struct {
	Listen          string
	Target          *url.URL
	Discovery       string
	WatcherURL      string
	WatcherService  string
	MaxInFlight     int
	MaxConns        int
	Testability     bool
	DialTimeout     time.Duration
	UpstreamTimeout time.Duration
	Grace           time.Duration
	DebugListen     string
	MetricsListen   string
	ExeRelease      time.Duration
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var c Config
	var target string
	s := conf.New("edge", "Proxies every request to accountservice and spreads them over its tasks (the stack's front door).")
	s.String(&c.Listen, "listen", ":6767", "address to serve on", conf.HostPort)
	s.URL(&target, "edge-target", "http://accountservice:6767", "where requests go, by service name", "http", "https")
	s.Enum(&c.Discovery, "edge-discovery", "name", []string{"name", "watcher"}, "how tasks are found: by service name (the swarm balances) or watcher (round robin over the tasks the swarmwatcher reports passing, and routing by tenant: a request whose "+tenant.Header+" header names a tenant goes only to that tenant's tasks, or the plain ones when it has none; by name, the header is passed on but not routed by)")
	s.URL(&c.WatcherURL, "watcher-url", "http://swarmwatcher:6969", "the swarmwatcher, for -edge-discovery watcher", "http", "https")
	s.String(&c.WatcherService, "watcher-service", "", "swarm service to balance over with -edge-discovery watcher (default: the -edge-target host; \"accountservice\" finds \"<stack>_accountservice\")")
	s.Int(&c.MaxInFlight, "max-in-flight-per-task", 128, "requests one upstream task carries at once; beyond it on every task the edge answers 503 with Retry-After (0: no bound)", conf.AtLeast(0))
	s.Int(&c.MaxConns, "max-conns-per-task", 8, fmt.Sprintf("connections kept to one upstream task; a request finding all of them busy waits up to %v for one (it still counts in flight), then dials another: a task holding its requests on a slow dependency is not queued behind. Each costs the task a goroutine and buffers even when idle (0: no bound)", lbclient.DefaultMaxConnWait), conf.AtLeast(0))
	s.Bool(&c.Testability, "testability", false, "proxy /testability/* to accountservice (else 404)")
	s.Duration(&c.DialTimeout, "dial-timeout", time.Second, "bound on one upstream connection attempt", conf.AtLeast(time.Millisecond))
	s.Duration(&c.UpstreamTimeout, "upstream-timeout", 15*time.Second, "bound on waiting for an upstream answer's headers", conf.AtLeast(time.Millisecond))
	s.Duration(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on SIGTERM", conf.AtLeast(time.Millisecond))
	debugserve.AddFlag(s, &c.DebugListen)
	exepages.AddFlag(s, &c.ExeRelease)
	s.String(&c.MetricsListen, "metrics-listen", ":8181", "address serving Prometheus /metrics (the edge's answers; with -edge-discovery watcher the feed's state and the tenant routing); never publish it; empty: off", func(v string) error {
		if v == "" {
			return nil
		}
		return conf.HostPort(v)
	})
	done, err := s.Parse(args)
	if done || err != nil {
		return c, s, done, err
	}
	c.Target, err = url.Parse(target) // checked by s.URL
	return c, s, false, err
}

func main() { conf.Main(load, run) }

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	h, metrics, closeTransport, err := handler(cfg, logger)
	if err != nil {
		return err
	}
	defer closeTransport()
	logger.Info("proxying", "target", cfg.Target.String(), "discovery", cfg.Discovery, "tenantRouting", cfg.Discovery == "watcher", "maxInFlightPerTask", cfg.MaxInFlight, "maxConnsPerTask", cfg.MaxConns, "testability", cfg.Testability)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger) })
	if cfg.MetricsListen != "" {
		g.Go(func() error {
			return httpserve.Run(ctx, httpserve.New(cfg.MetricsListen, metrics), time.Second, logger)
		})
	}
	g.Go(func() error { return debugserve.Run(ctx, cfg.DebugListen, logger) })
	g.Go(func() error { return exepages.Run(ctx, cfg.ExeRelease, logger) })
	return g.Wait()
}

// handler is the edge: the proxy over the transport cfg asks for, and its
// metrics. close ends the watcher feed, if any.
func handler(cfg Config, logger *slog.Logger) (h, metrics http.Handler, close func(), err error) {
	transport := lbclient.New(lbclient.Config{
		MaxInFlightPerTask:    cfg.MaxInFlight,
		MaxConnsPerTask:       cfg.MaxConns,
		DialTimeout:           cfg.DialTimeout,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
	})
	var rt http.RoundTripper = transport
	close = func() {}
	var w *upstream.Watcher
	if cfg.Discovery == "watcher" {
		if w, err = watcherTransport(cfg, transport, logger); err != nil {
			return nil, nil, nil, err
		}
		rt, close = w, w.Close
	}
	p := proxy.New(proxy.Config{Target: cfg.Target, Transport: rt, Testability: cfg.Testability, Logger: logger})
	return p, metricsHandler(p, w), close, nil
}

// watcherTransport balances over the target service's passing tasks as the
// swarmwatcher reports them, by name until the watcher first answers.
func watcherTransport(cfg Config, byName http.RoundTripper, logger *slog.Logger) (*upstream.Watcher, error) {
	service := cfg.WatcherService
	if service == "" {
		service = cfg.Target.Hostname()
	}
	port, _ := strconv.Atoi(cfg.Target.Port())
	return upstream.NewWatcher(upstream.WatcherConfig{
		WatcherURL: cfg.WatcherURL, Service: service, Port: port,
		DialTimeout: cfg.DialTimeout, ResponseHeaderTimeout: cfg.UpstreamTimeout,
		Fallback: byName, Logger: logger,
	})
}
