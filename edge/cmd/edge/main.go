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
	RequestsPerConn int
	DialTimeout     time.Duration
	UpstreamTimeout time.Duration
	Grace           time.Duration
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Discovery != "name" && c.Discovery != "watcher":
		return fmt.Errorf("-discovery %q: want name or watcher", c.Discovery)
	case c.RequestsPerConn < 1:
		return fmt.Errorf("-requests-per-conn %d: want >= 1", c.RequestsPerConn)
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
	perConn := envflag.Int(fs, "requests-per-conn", "EDGE_REQUESTS_PER_CONN", 1, "retire an upstream connection after this many requests (1 = every request on a new connection, so successive requests reach different tasks)", &errs)
	dialTimeout := envflag.Duration(fs, "dial-timeout", "EDGE_DIAL_TIMEOUT", time.Second, "bound on one upstream connection attempt", &errs)
	upstreamTimeout := envflag.Duration(fs, "upstream-timeout", "EDGE_UPSTREAM_TIMEOUT", 15*time.Second, "bound on waiting for an upstream answer's headers", &errs)
	grace := envflag.Duration(fs, "grace", "SHUTDOWN_GRACE", 10*time.Second, "how long in-flight requests may finish on SIGTERM", &errs)
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
		Listen: *listen, Target: u, Discovery: *discovery, WatcherURL: *watcherURL, WatcherService: *watcherService, RequestsPerConn: *perConn,
		DialTimeout: *dialTimeout, UpstreamTimeout: *upstreamTimeout, Grace: *grace,
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
