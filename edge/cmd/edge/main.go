// Command edge is the stack's front door on :6767: it proxies every request to
// accountservice by service name and spreads them over its tasks.
package main

import (
	"context"
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
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/lbclient"
)

// Config is everything the edge reads from flags and environment.
type Config struct {
	Listen          string
	Target          *url.URL
	Discovery       string
	WatcherURL      string
	WatcherService  string
	RequestsPerConn int
	DialTimeout     time.Duration
	UpstreamTimeout time.Duration
	Grace           time.Duration
	DebugListen     string
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var c Config
	var target string
	s := conf.New("edge", "Proxies every request to accountservice and spreads them over its tasks (the stack's front door).")
	s.String(&c.Listen, "listen", ":6767", "address to serve on", conf.HostPort)
	s.URL(&target, "edge-target", "http://accountservice:6767", "where requests go, by service name", "http", "https")
	s.Enum(&c.Discovery, "edge-discovery", "name", []string{"name", "watcher"}, "how tasks are found: by service name (the swarm balances) or watcher (round robin over the tasks the swarmwatcher reports passing)")
	s.URL(&c.WatcherURL, "watcher-url", "http://swarmwatcher:6969", "the swarmwatcher, for -edge-discovery watcher", "http", "https")
	s.String(&c.WatcherService, "watcher-service", "", "swarm service to balance over with -edge-discovery watcher (default: the -edge-target host; \"accountservice\" finds \"<stack>_accountservice\")")
	s.Int(&c.RequestsPerConn, "requests-per-conn", 1, "retire an upstream connection after this many requests (1 = every request on a new connection, so successive requests reach different tasks)", conf.AtLeast(1))
	s.Duration(&c.DialTimeout, "dial-timeout", time.Second, "bound on one upstream connection attempt", conf.AtLeast(time.Millisecond))
	s.Duration(&c.UpstreamTimeout, "upstream-timeout", 15*time.Second, "bound on waiting for an upstream answer's headers", conf.AtLeast(time.Millisecond))
	s.Duration(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on SIGTERM", conf.AtLeast(time.Millisecond))
	debugserve.AddFlag(s, &c.DebugListen)
	done, err := s.Parse(args)
	if done || err != nil {
		return c, s, done, err
	}
	c.Target, err = url.Parse(target) // checked by s.URL
	return c, s, false, err
}

func main() { conf.Main(load, run) }

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	transport := lbclient.New(lbclient.Config{
		RequestsPerConn:       cfg.RequestsPerConn,
		DialTimeout:           cfg.DialTimeout,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
	})
	var rt http.RoundTripper = transport
	if cfg.Discovery == "watcher" {
		w, err := watcherTransport(cfg, transport, logger)
		if err != nil {
			return err
		}
		defer w.Close()
		rt = w
	}
	logger.Info("proxying", "target", cfg.Target.String(), "discovery", cfg.Discovery, "requestsPerConn", cfg.RequestsPerConn)
	h := proxy.New(proxy.Config{Target: cfg.Target, Transport: rt, Logger: logger})
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger) })
	g.Go(func() error { return debugserve.Run(ctx, cfg.DebugListen, logger) })
	return g.Wait()
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
