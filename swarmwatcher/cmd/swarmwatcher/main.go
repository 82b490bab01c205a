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
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/server"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
	"github.com/goblog/goblog/swarmwatcher/internal/webhook"
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
	Grace            time.Duration
	DebugListen      string
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
		cfg      Config
		webhooks string
	)
	positive := conf.AtLeast(time.Millisecond)
	s := conf.New("swarmwatcher", summary)
	s.String(&cfg.Listen, "listen", ":6969", "address to serve on", conf.HostPort)
	s.Duration(&cfg.Interval, "interval", 5*time.Second, "backstop re-list period; engine events trigger re-lists sooner", positive)
	s.Duration(&cfg.Debounce, "debounce", 200*time.Millisecond, "wait after an engine event before re-listing, to coalesce bursts", conf.AtLeast(time.Duration(0)))
	s.Duration(&cfg.APITimeout, "api-timeout", 5*time.Second, "deadline of each Docker Engine API call", positive)
	s.Duration(&cfg.ProbeInterval, "probe-interval", 2*time.Second, "period of health probes", positive)
	s.Duration(&cfg.ProbeTimeout, "probe-timeout", time.Second, "deadline of one probe", positive)
	s.Int(&cfg.ProbeConcurrency, "probe-concurrency", 64, "probes in flight at most", conf.AtLeast(1))
	s.Int(&cfg.Rise, "rise", 1, "passing probes in a row before a task is passing (Consul's success_before_passing)", conf.AtLeast(1))
	s.Int(&cfg.Fall, "fall", 2, "failed probes in a row before a task is critical (Consul's failures_before_critical)", conf.AtLeast(1))
	s.Int(&cfg.History, "history", 20, "probe results kept per task for the page", conf.Between(1, 1000))
	s.List(&cfg.Networks, "network", nil, "overlay network names or IDs to take task addresses from; default: the watcher's own overlay networks, else goblog_net")
	s.String(&webhooks, "webhook-urls", "", "comma-separated URLs that receive a POST of every change", func(v string) error {
		_, err := webhook.ParseURLs(v)
		return err
	})
	s.Duration(&cfg.Grace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on SIGTERM (event streams end at once)", positive)
	debugserve.AddFlag(s, &cfg.DebugListen)
	done, err := s.Parse(args)
	if done || err != nil {
		return cfg, s, done, err
	}
	cfg.Webhooks, _ = webhook.ParseURLs(webhooks) // checked above
	return cfg, s, false, cfg.Validate()
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
		RetryMin: 250 * time.Millisecond, StaleAfter: 3 * cfg.Interval,
		Thresholds: probe.Thresholds{Rise: cfg.Rise, Fall: cfg.Fall, History: cfg.History},
		Logger:     log, Metrics: watch.NewMetrics(reg),
	}, disc, prober, events)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/", server.Handler(server.Config{Gatherer: reg, Logger: log}, w))
	mux.HandleFunc("GET /-/live", func(rw http.ResponseWriter, _ *http.Request) {
		jsonhttp.Write(rw, http.StatusOK, map[string]string{"status": "UP"})
	})
	// The event stream is long-lived: no WriteTimeout, a deadline per write
	// and an end at shutdown instead.
	srv := httpserve.New(cfg.Listen, mux, httpserve.Streaming(httpserve.StreamConfig{}, "/api/events"))

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	if len(cfg.Webhooks) > 0 {
		d, err := webhook.New(webhook.Config{URLs: cfg.Webhooks, Logger: log, Registerer: reg})
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
		_, _, sub := w.Subscribe(4096, false)
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
					if m.Kind == watch.KindChange {
						d.Send(m.Change)
					}
				}
			}
		}()
	}
	return nil
}
