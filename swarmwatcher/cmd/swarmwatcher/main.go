// Command swarmwatcher watches a Docker Swarm through the Engine API, probes
// every opted-in task's health endpoint and serves a live health page, JSON,
// Prometheus service discovery, an event stream and webhooks.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/jsonhttp"
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
	FastPoll         time.Duration
	FastFor          time.Duration
	APITimeout       time.Duration
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	ProbeConcurrency int
	Rise, Fall       int
	History          int
	Networks         []string
	Webhooks         []string
	Grace            time.Duration
	DebugListen      string
	// Webhook signing and filtering (WEBHOOK_SECRET, WEBHOOK_EVENTS).
	WebhookSecret []byte
	WebhookEvents []api.EventType
	// Bounds of /api/events and the labels /api/sd exports.
	EventClients      int
	EventClientsPerIP int
	SDLabelPrefixes   []string
}

// Validate reports what the flags' own checks cannot: settings that must
// agree with each other, all at once.
func (c Config) Validate() error {
	var errs []error
	if c.ProbeTimeout > c.ProbeInterval {
		errs = append(errs, fmt.Errorf("-probe-timeout [PROBE_TIMEOUT] %s is longer than -probe-interval [PROBE_INTERVAL] %s", c.ProbeTimeout, c.ProbeInterval))
	}
	for _, n := range c.Networks {
		if n == "ingress" {
			errs = append(errs, errors.New("-network [NETWORK] ingress: the ingress network carries no task addresses"))
		}
	}
	return errors.Join(errs...)
}

const summary = `Watches the swarm of the Docker engine at DOCKER_HOST (default: the local
socket; DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured), probes every task
of each service labelled swarmwatcher.port=<port> (optional
swarmwatcher.path=/health) and serves:
  /              live health page          /api/services  JSON
  /api/sd        Prometheus HTTP SD        /api/events    server-sent events
  /health        200 unless data is stale  /metrics       Prometheus metrics
  /-/live        200 while serving (the container HEALTHCHECK)`

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var (
		cfg                      Config
		webhooks, secret, events string
	)
	positive := conf.AtLeast(time.Millisecond)
	s := conf.New("swarmwatcher", summary)
	s.String(&cfg.Listen, "listen", ":6969", "address to serve on", conf.HostPort)
	s.Duration(&cfg.Interval, "interval", 5*time.Second, "backstop re-list period; engine events trigger re-lists sooner", positive)
	s.Duration(&cfg.Debounce, "debounce", 20*time.Millisecond, "wait after an engine event before re-listing, to coalesce bursts", conf.AtLeast(time.Duration(0)))
	s.Duration(&cfg.FastPoll, "fast-poll", 100*time.Millisecond, "re-list period for -fast-for after every engine event (the engine records task states a moment after its events); 0 turns it off", conf.AtLeast(time.Duration(0)))
	s.Duration(&cfg.FastFor, "fast-for", 5*time.Second, "how long after the last engine event -fast-poll holds", conf.AtLeast(time.Duration(0)))
	s.Duration(&cfg.APITimeout, "api-timeout", 5*time.Second, "deadline of each Docker Engine API call", positive)
	s.Duration(&cfg.ProbeInterval, "probe-interval", 2*time.Second, "period of health probes", positive)
	s.Duration(&cfg.ProbeTimeout, "probe-timeout", time.Second, "deadline of one probe", positive)
	s.Int(&cfg.ProbeConcurrency, "probe-concurrency", 64, "probes in flight at most", conf.AtLeast(1))
	s.Int(&cfg.Rise, "rise", 1, "passing probes in a row before a task is passing (Consul's success_before_passing)", conf.AtLeast(1))
	s.Int(&cfg.Fall, "fall", 2, "failed probes in a row before a task is critical (Consul's failures_before_critical)", conf.AtLeast(1))
	s.Int(&cfg.History, "history", 20, "probe results kept per task for the page", conf.Between(1, 1000))
	s.List(&cfg.Networks, "network", nil, "overlay network names or IDs to take task addresses from; default: the watcher's own overlay networks, else goblog_net")
	// The URLs and the secret are checked after Parse, by errors that do not
	// repeat them (conf's would quote the value: credentials, tokens, a key).
	s.String(&webhooks, "webhook-urls", "", "comma-separated URLs that receive a POST of every change")
	s.String(&secret, "webhook-secret", "", "signs webhooks as Standard Webhooks do: whsec_<base64>, or a plain string of at least 16 bytes")
	s.String(&events, "webhook-events", "", "comma-separated change types webhooks receive (task-added, task-removed, health-changed, service-created, service-removed); default all", func(v string) error {
		_, err := webhook.ParseEvents(v)
		return err
	})
	s.Int(&cfg.EventClients, "event-clients", 1024, "most /api/events clients at once; beyond, 503 with Retry-After", conf.AtLeast(1))
	s.Int(&cfg.EventClientsPerIP, "event-clients-per-ip", 32, "most /api/events clients of one remote IP", conf.AtLeast(1))
	s.List(&cfg.SDLabelPrefixes, "sd-label-prefixes", server.DefaultLabelPrefixes, "service label prefixes /api/sd exports (other labels never leave the watcher)")
	s.Duration(&cfg.Grace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on SIGTERM (event streams end at once)", positive)
	debugserve.AddFlag(s, &cfg.DebugListen)
	done, err := s.Parse(args)
	if done || err != nil {
		return cfg, s, done, err
	}
	var errs []error
	if cfg.Webhooks, err = webhook.ParseURLs(webhooks); err != nil {
		errs = append(errs, fmt.Errorf("-webhook-urls [WEBHOOK_URLS]: %w", err))
	}
	if cfg.WebhookSecret, err = webhook.ParseSecret(secret); err != nil {
		errs = append(errs, fmt.Errorf("-webhook-secret [WEBHOOK_SECRET]: %w", err))
	}
	cfg.WebhookEvents, _ = webhook.ParseEvents(events) // checked above
	if cfg.SDLabelPrefixes == nil {
		cfg.SDLabelPrefixes = []string{} // set but empty: no service label leaves
	}
	return cfg, s, false, errors.Join(append(errs, cfg.Validate())...)
}

func main() { conf.Main(load, run) }

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
		FastPoll: cfg.FastPoll, FastFor: cfg.FastFor,
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
		jsonhttp.Write(rw, http.StatusOK, map[string]string{"status": "UP"})
	})
	// The event stream is long-lived: no WriteTimeout, a deadline per write
	// and an end at shutdown instead.
	srv := httpserve.New(cfg.Listen, mux, httpserve.Streaming(httpserve.StreamConfig{}, "/api/events"))

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
	log.Info("serving", "listen", cfg.Listen, "interval", cfg.Interval.String(), "probeInterval", cfg.ProbeInterval.String(),
		"probeTimeout", cfg.ProbeTimeout.String(), "rise", cfg.Rise, "fall", cfg.Fall, "networks", cfg.Networks, "webhooks", len(cfg.Webhooks))
	g.Go(func() error { return httpserve.Run(ctx, srv, cfg.Grace, log) })
	g.Go(func() error { return debugserve.Run(ctx, cfg.DebugListen, log) })
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
