// Command swarmwatcher watches a Docker Swarm through the Engine API, probes
// every opted-in task's health endpoint and serves a live health page, JSON,
// Prometheus service discovery, an event stream and webhooks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/server"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/webhook"
	"github.com/goblog/goblog/swarmwatcher/internal/wire"
)

// Config is everything the binary can be told.
type Config struct {
	Listen           string
	Interval         time.Duration
	Debounce         time.Duration
	APITimeout       time.Duration
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	ProbeConcurrency int
	Rise, Fall       int
	History          int
	Networks         []string
	Webhooks         []string
	LogFormat        string
	// Webhook signing and filtering (WEBHOOK_SECRET, WEBHOOK_EVENTS).
	WebhookSecret []byte
	WebhookEvents []api.EventType
	// Bounds of /api/events and the labels /api/sd exports.
	EventClients      int
	EventClientsPerIP int
	SDLabelPrefixes   []string
}

// Validate reports settings that cannot work, all at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("-listen is empty"))
	}
	for name, d := range map[string]time.Duration{"-interval": c.Interval, "-api-timeout": c.APITimeout, "-probe-interval": c.ProbeInterval, "-probe-timeout": c.ProbeTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.Debounce < 0 {
		errs = append(errs, fmt.Errorf("-debounce must not be negative, got %s", c.Debounce))
	}
	if c.ProbeTimeout > c.ProbeInterval && c.ProbeInterval > 0 {
		errs = append(errs, fmt.Errorf("-probe-timeout %s is longer than -probe-interval %s", c.ProbeTimeout, c.ProbeInterval))
	}
	if c.Rise < 1 || c.Fall < 1 {
		errs = append(errs, fmt.Errorf("-rise and -fall must be at least 1, got %d and %d", c.Rise, c.Fall))
	}
	if c.History < 1 || c.History > 1000 {
		errs = append(errs, fmt.Errorf("-history must be 1…1000, got %d", c.History))
	}
	if c.ProbeConcurrency < 1 {
		errs = append(errs, fmt.Errorf("-probe-concurrency must be at least 1, got %d", c.ProbeConcurrency))
	}
	for _, n := range c.Networks {
		if n == "ingress" {
			errs = append(errs, errors.New("-network ingress: the ingress network carries no task addresses"))
		}
	}
	if c.EventClients < 1 || c.EventClientsPerIP < 1 {
		errs = append(errs, fmt.Errorf("-event-clients and -event-clients-per-ip must be at least 1, got %d and %d", c.EventClients, c.EventClientsPerIP))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("-log-format must be json or text, got %q", c.LogFormat))
	}
	return errors.Join(errs...)
}

// env returns the variable or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// parseConfig reads flags with environment fallbacks: the flag wins.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("swarmwatcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: swarmwatcher [flags]

Watches the swarm of the Docker engine at DOCKER_HOST (default: the local
socket; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured), probes every task
of each service labelled swarmwatcher.port=<port> (optional
swarmwatcher.path=/health) and serves:
  /              live health page          /api/services  JSON
  /api/sd        Prometheus HTTP SD        /api/events    server-sent events
  /health        200 unless data is stale  /metrics       Prometheus metrics
  /-/live        200 while serving (the container HEALTHCHECK)

Every flag can also be set by the environment variable in brackets.

`)
		fs.PrintDefaults()
	}
	var (
		cfg                            Config
		networks, webhooks             string
		interval, debounce, apiTimeout string
		probeInterval, probeTimeout    string
		rise, fall, history, conc      string
		secret, hookEvents             string
		clients, clientsPerIP, labels  string
	)
	fs.StringVar(&cfg.Listen, "listen", env("WATCHER_LISTEN", ":6969"), "address to serve on [WATCHER_LISTEN]")
	fs.StringVar(&interval, "interval", env("WATCHER_INTERVAL", "5s"), "backstop re-list period; engine events trigger re-lists sooner [WATCHER_INTERVAL]")
	fs.StringVar(&debounce, "debounce", env("WATCHER_DEBOUNCE", "200ms"), "wait after an engine event before re-listing, to coalesce bursts [WATCHER_DEBOUNCE]")
	fs.StringVar(&apiTimeout, "api-timeout", env("WATCHER_API_TIMEOUT", "5s"), "deadline of each Docker Engine API call [WATCHER_API_TIMEOUT]")
	fs.StringVar(&probeInterval, "probe-interval", env("WATCHER_PROBE_INTERVAL", "2s"), "period of health probes [WATCHER_PROBE_INTERVAL]")
	fs.StringVar(&probeTimeout, "probe-timeout", env("WATCHER_PROBE_TIMEOUT", "1s"), "deadline of one probe [WATCHER_PROBE_TIMEOUT]")
	fs.StringVar(&conc, "probe-concurrency", env("WATCHER_PROBE_CONCURRENCY", "64"), "probes in flight at most [WATCHER_PROBE_CONCURRENCY]")
	fs.StringVar(&rise, "rise", env("WATCHER_RISE", "1"), "passing probes in a row before a task is passing (Consul's success_before_passing) [WATCHER_RISE]")
	fs.StringVar(&fall, "fall", env("WATCHER_FALL", "2"), "failed probes in a row before a task is critical (Consul's failures_before_critical) [WATCHER_FALL]")
	fs.StringVar(&history, "history", env("WATCHER_HISTORY", "20"), "probe results kept per task for the page [WATCHER_HISTORY]")
	fs.StringVar(&networks, "network", env("WATCHER_NETWORK", ""), "comma-separated overlay network names or IDs to take task addresses from; default: the watcher's own overlay networks, else goblog_net [WATCHER_NETWORK]")
	fs.StringVar(&webhooks, "webhooks", env("WEBHOOK_URLS", ""), "comma-separated URLs that receive a POST of every change [WEBHOOK_URLS]")
	fs.StringVar(&secret, "webhook-secret", env("WEBHOOK_SECRET", ""), "signs webhooks as Standard Webhooks do: whsec_<base64> or a plain string of at least 16 bytes [WEBHOOK_SECRET]")
	fs.StringVar(&hookEvents, "webhook-events", env("WEBHOOK_EVENTS", ""), "comma-separated change types webhooks receive; default all [WEBHOOK_EVENTS]")
	fs.StringVar(&clients, "event-clients", env("EVENT_CLIENTS", "1024"), "most /api/events clients at once; beyond: 503 [EVENT_CLIENTS]")
	fs.StringVar(&clientsPerIP, "event-clients-per-ip", env("EVENT_CLIENTS_PER_IP", "32"), "most /api/events clients of one IP [EVENT_CLIENTS_PER_IP]")
	fs.StringVar(&labels, "sd-label-prefixes", env("SD_LABEL_PREFIXES", "swarmwatcher.,goblog."), "comma-separated service label prefixes /api/sd exports [SD_LABEL_PREFIXES]")
	fs.StringVar(&cfg.LogFormat, "log-format", env("WATCHER_LOG_FORMAT", "json"), "json or text [WATCHER_LOG_FORMAT]")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var errs []error
	dur := func(name, v string) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: not a duration (like 2s or 500ms)", name, v))
		}
		return d
	}
	num := func(name, v string) int {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: not a whole number", name, v))
		}
		return n
	}
	cfg.Interval = dur("interval", interval)
	cfg.Debounce = dur("debounce", debounce)
	cfg.APITimeout = dur("api-timeout", apiTimeout)
	cfg.ProbeInterval = dur("probe-interval", probeInterval)
	cfg.ProbeTimeout = dur("probe-timeout", probeTimeout)
	cfg.ProbeConcurrency = num("probe-concurrency", conc)
	cfg.Rise = num("rise", rise)
	cfg.Fall = num("fall", fall)
	cfg.History = num("history", history)
	for _, n := range strings.Split(networks, ",") {
		if n = strings.TrimSpace(n); n != "" {
			cfg.Networks = append(cfg.Networks, n)
		}
	}
	urls, err := webhook.ParseURLs(webhooks)
	if err != nil {
		errs = append(errs, fmt.Errorf("-webhooks: %w", err))
	}
	cfg.Webhooks = urls
	if cfg.WebhookSecret, err = webhook.ParseSecret(secret); err != nil {
		errs = append(errs, fmt.Errorf("-webhook-secret: %w", err))
	}
	if cfg.WebhookEvents, err = webhook.ParseEvents(hookEvents); err != nil {
		errs = append(errs, fmt.Errorf("-webhook-events: %w", err))
	}
	cfg.EventClients = num("event-clients", clients)
	cfg.EventClientsPerIP = num("event-clients-per-ip", clientsPerIP)
	cfg.SDLabelPrefixes = []string{}
	for _, p := range strings.Split(labels, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.SDLabelPrefixes = append(cfg.SDLabelPrefixes, p)
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, cfg.Validate()
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "swarmwatcher: %v\n", err)
		os.Exit(2)
	}
	var handler slog.Handler = slog.NewJSONHandler(os.Stderr, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(os.Stderr, nil)
	}
	log := slog.New(handler)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("swarmwatcher stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	disc, err := swarm.New(swarm.Config{
		Networks: cfg.Networks, Hostname: swarm.Hostname(), CallTimeout: cfg.APITimeout, Logger: log,
	}, docker)
	if err != nil {
		return err
	}
	prober, err := probe.New(probe.Config{Timeout: cfg.ProbeTimeout, MaxBody: 64 << 10, Concurrency: cfg.ProbeConcurrency})
	if err != nil {
		return err
	}
	events := func(ctx context.Context, trigger func(string)) error {
		return disc.Watch(ctx, swarm.WatchConfig{ConnectTimeout: cfg.APITimeout, MinBackoff: 250 * time.Millisecond, MaxBackoff: 10 * time.Second}, trigger)
	}
	w, err := watch.New(watch.Config{
		PollInterval: cfg.Interval, TransitionPoll: 500 * time.Millisecond, Debounce: cfg.Debounce, ProbeInterval: cfg.ProbeInterval,
		RetryMin: 250 * time.Millisecond, StaleAfter: 3 * cfg.Interval,
		Thresholds: probe.Thresholds{Rise: cfg.Rise, Fall: cfg.Fall, History: cfg.History},
		Logger:     log,
	}, disc, prober, events)
	if err != nil {
		return err
	}
	handlers := server.New(server.Config{Gatherer: reg, Logger: log, MaxClients: cfg.EventClients, MaxClientsPerIP: cfg.EventClientsPerIP,
		LabelPrefixes: cfg.SDLabelPrefixes}, w)
	if err := errors.Join(w.Register(reg), handlers.Register(reg)); err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/", handlers.Handler())
	mux.HandleFunc("GET /-/live", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"status":"UP"}`+"\n")
	})
	srv := &http.Server{
		Addr:              cfg.Listen,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second, // the event stream extends its own per write
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	g.Go(func() error { return handlers.Run(ctx) })
	if len(cfg.Webhooks) > 0 {
		d, err := webhook.New(webhook.Config{URLs: cfg.Webhooks, Secret: cfg.WebhookSecret, Events: cfg.WebhookEvents, Logger: log, Registerer: reg})
		if err != nil {
			return err
		}
		g.Go(func() error { return d.Run(ctx) })
		g.Go(func() error { return forward(ctx, w, d, log) })
	}
	g.Go(func() error {
		log.Info("serving", "listen", cfg.Listen, "interval", cfg.Interval.String(), "probeInterval", cfg.ProbeInterval.String(),
			"probeTimeout", cfg.ProbeTimeout.String(), "rise", cfg.Rise, "fall", cfg.Fall, "networks", cfg.Networks, "webhooks", len(cfg.Webhooks))
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Event streams never end by themselves: close them after the grace.
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		return nil
	})
	return g.Wait()
}

// forward hands every change to the webhook dispatcher, whose Send never
// blocks, re-subscribing if the subscription is ever dropped.
func forward(ctx context.Context, w *watch.Watcher, d *webhook.Dispatcher, log *slog.Logger) error {
	for ctx.Err() == nil {
		_, sub := w.Subscribe(4096)
		func() {
			defer sub.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case m, ok := <-sub.C():
					if !ok {
						log.Warn("webhook forwarder fell behind; changes were lost, re-subscribing")
						return
					}
					if c := m.Value.Change; c != nil && sub.Keep(m) {
						d.Send(wire.Change(c))
					}
				}
			}
		}()
	}
	return nil
}
