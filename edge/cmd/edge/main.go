// Command edge is the stack's front door on :6767: it proxies every request to
// accountservice by service name and spreads them over its tasks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/goblog/goblog/edge/internal/proxy"
	"github.com/goblog/goblog/edge/internal/upstream"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/envflag"
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
	MaxInFlight     int
	Testability     bool
	DialTimeout     time.Duration
	UpstreamTimeout time.Duration
	Grace           time.Duration
	DebugListen     string
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Discovery != "name" && c.Discovery != "watcher":
		return fmt.Errorf("-discovery %q: want name or watcher", c.Discovery)
	case c.MaxInFlight < 0:
		return fmt.Errorf("-max-in-flight-per-task %d: want >= 0", c.MaxInFlight)
	case c.DialTimeout <= 0 || c.UpstreamTimeout <= 0 || c.Grace <= 0:
		return errors.New("-dial-timeout, -upstream-timeout and -grace must be positive")
	}
	return nil
}

func parse(args []string) (Config, error) {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	var errs []error
	listen := envflag.String(fs, "listen", "LISTEN_ADDR", ":6767", "address to serve on")
	target := envflag.String(fs, "target", "EDGE_TARGET", "http://accountservice:6767", "where requests go, by service name")
	discovery := envflag.String(fs, "discovery", "EDGE_DISCOVERY", "name", "how tasks are found: name (the swarm balances by service name) or watcher (round robin over the tasks the swarmwatcher reports passing)")
	watcherURL := envflag.String(fs, "watcher-url", "WATCHER_URL", "http://swarmwatcher:6969", "the swarmwatcher, for -discovery watcher")
	watcherService := envflag.String(fs, "watcher-service", "WATCHER_SERVICE", "", "swarm service to balance over with -discovery watcher (default: the -target host; \"accountservice\" finds \"<stack>_accountservice\")")
	maxInFlight := envflag.Int(fs, "max-in-flight-per-task", "EDGE_MAX_IN_FLIGHT_PER_TASK", 128, "requests one upstream task carries at once; beyond it on every task the edge answers 503 with Retry-After (0: no bound)", &errs)
	testability := envflag.Bool(fs, "testability", "TESTABILITY", false, "proxy /testability/* to accountservice (else 404)", &errs)
	dialTimeout := envflag.Duration(fs, "dial-timeout", "EDGE_DIAL_TIMEOUT", time.Second, "bound on one upstream connection attempt", &errs)
	upstreamTimeout := envflag.Duration(fs, "upstream-timeout", "EDGE_UPSTREAM_TIMEOUT", 15*time.Second, "bound on waiting for an upstream answer's headers", &errs)
	grace := envflag.Duration(fs, "grace", "SHUTDOWN_GRACE", 10*time.Second, "how long in-flight requests may finish on SIGTERM", &errs)
	debugListen := envflag.String(fs, "debug-listen", "DEBUG_LISTEN", "", "loopback address serving net/http/pprof, e.g. 127.0.0.1:6060 (empty: off)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return Config{}, fmt.Errorf("-target %q: want scheme://host:port", *target)
	}
	c := Config{
		Listen: *listen, Target: u, Discovery: *discovery, WatcherURL: *watcherURL, WatcherService: *watcherService, MaxInFlight: *maxInFlight, Testability: *testability,
		DialTimeout: *dialTimeout, UpstreamTimeout: *upstreamTimeout, Grace: *grace, DebugListen: *debugListen,
	}
	return c, c.Validate()
}

func main() {
	cfg, err := parse(os.Args[1:])
	if err == nil {
		err = run(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func run(cfg Config) error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "edge")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := debugserve.Start(ctx, cfg.DebugListen, logger); err != nil {
		return err
	}
	transport := lbclient.New(lbclient.Config{
		MaxInFlightPerTask:    cfg.MaxInFlight,
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
	logger.Info("proxying", "target", cfg.Target.String(), "discovery", cfg.Discovery, "maxInFlightPerTask", cfg.MaxInFlight, "testability", cfg.Testability)
	h := proxy.New(proxy.Config{Target: cfg.Target, Transport: rt, Testability: cfg.Testability, Logger: logger})
	return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger)
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
