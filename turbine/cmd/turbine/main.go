// Command turbine discovers service instances from AMQP discovery tokens, connects to the
// Hystrix metrics stream of each live instance whose address the swarmwatcher confirms as a
// running task, and serves their aggregate at /turbine.stream, a dashboard at /, the
// instances at /api/instances, its readiness (subscribed to the broker) at /health and its
// liveness at /-/live.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/turbine/api"
	"github.com/goblog/goblog/turbine/internal/turbine"
)

// Config is turbine's configuration, from flags and environment.
type Config struct {
	turbine.Config // bounds, intervals and the watcher
	Listen         string
	AMQPURL        string
	ExpiryInterval time.Duration
	Grace          time.Duration
	DebugListen    string
	// SelfPreservation: when the registry keeps silent instances (see
	// discoverytoken.SelfPreservation).
	SelfPreservation discoverytoken.SelfPreservation
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	c := Config{Config: turbine.DefaultConfig()}
	d := c.Config
	s := conf.New("turbine", fmt.Sprintf("Aggregates the Hystrix streams of the instances announced on the AMQP exchange %q, "+
		"each verified as a running task by the swarmwatcher, which also says its tenant. "+
		"?cluster= on / and /turbine.stream narrows the aggregate: <service> (plain and every tenant), "+
		"<service>@<tenant>, <service>@ (plain only), @<tenant> (every service).", discoverytoken.Exchange))
	s.String(&c.Listen, "listen", ":8282", "HTTP listen address", conf.HostPort)
	s.String(&c.AMQPURL, "amqp-url", "", "RabbitMQ carrying the discovery tokens, amqp://user:password@host:port/ (required; the stack hands it over as a secret through AMQP_URL_FILE)", func(v string) error {
		if v == "" {
			return nil // required: said below, naming both variables
		}
		if _, err := amqp.ParseURI(v); err != nil {
			return errors.New("want amqp://user:password@host:port/vhost")
		}
		return nil
	})
	s.String(&c.StreamPath, "stream-path", d.StreamPath, "metrics stream path on every instance")
	s.Duration(&c.EmitInterval, "emit-interval", d.EmitInterval, "how often /turbine.stream sends the aggregate", conf.AtLeast(100*time.Millisecond))
	s.Duration(&c.ExpiryInterval, "expiry-interval", 250*time.Millisecond, "how often silent instances are checked against their TTL", conf.AtLeast(10*time.Millisecond))
	s.Duration(&c.Grace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on SIGTERM (streams end at once)", conf.AtLeast(time.Millisecond))
	s.URL(&c.WatcherURL, "watcher-url", d.WatcherURL, "swarmwatcher whose running tasks verify the tokens' addresses", "http", "https")
	s.String(&c.Stack, "stack", d.Stack, "stack prefix of the swarm service names (a watcher without tenants is asked for <stack>_<service>)", conf.NotEmpty)
	s.Duration(&c.VerifyInterval, "verify-interval", d.VerifyInterval, "how often unverified instances are checked again; the watcher's answer is cached as long", conf.AtLeast(time.Millisecond))
	s.Duration(&c.WatcherTimeout, "watcher-timeout", d.WatcherTimeout, "deadline of one watcher query", conf.AtLeast(time.Millisecond))
	s.Int(&c.MaxStreams, "max-streams", d.MaxStreams, "instance streams at most at once", conf.AtLeast(1))
	s.Int(&c.MaxConcurrentDials, "max-concurrent-dials", d.MaxConcurrentDials, "instance streams connecting at most at once", conf.AtLeast(1))
	s.Duration(&c.DialTimeout, "dial-timeout", d.DialTimeout, "deadline to connect to an instance's stream", conf.AtLeast(time.Millisecond))
	s.Duration(&c.IdleTimeout, "idle-timeout", d.IdleTimeout, "drop an instance stream silent this long", conf.AtLeast(time.Millisecond))
	s.Int(&c.MaxLine, "max-line", d.MaxLine, "longest line of an instance stream, bytes", conf.AtLeast(4<<10))
	s.Int(&c.MaxKeysPerHost, "max-keys-per-host", d.MaxKeysPerHost, "distinct circuits and pools one instance may report", conf.AtLeast(1))
	s.Int(&c.MaxBytesPerHost, "max-bytes-per-host", d.MaxBytesPerHost, "bytes of samples kept per instance", conf.AtLeast(4<<10))
	s.Duration(&c.MinBackoff, "min-backoff", d.MinBackoff, "first reconnect delay of an instance stream", conf.AtLeast(time.Millisecond))
	s.Duration(&c.MaxBackoff, "max-backoff", d.MaxBackoff, "longest reconnect delay of an instance stream", conf.AtLeast(time.Millisecond))
	s.Int(&c.MaxClients, "max-clients", d.MaxClients, "/turbine.stream clients at most", conf.AtLeast(1))
	s.Int(&c.MaxClusters, "max-clusters", d.MaxClusters, "distinct ?cluster= aggregates per round", conf.AtLeast(1))
	s.Duration(&c.WriteTimeout, "write-timeout", d.WriteTimeout, "deadline of one JSON answer or stream round", conf.AtLeast(time.Millisecond))
	sp := &c.SelfPreservation
	s.Bool(&sp.Disabled, "no-self-preservation", false, "evict every instance after its TTL, even while the broker is away or most instances fall silent at once")
	s.Float64(&sp.Share, "protect-share", discoverytoken.DefaultProtectShare, "self-preservation: keep silent instances when more than this share of all instances fall silent at once", func(v float64) error {
		if !(v > 0 && v < 1) {
			return errors.New("want a fraction between 0 and 1, exclusive")
		}
		return nil
	})
	s.Int(&sp.Min, "protect-min", discoverytoken.DefaultProtectMin, "self-preservation: the fewest silent instances that count as falling silent at once", conf.AtLeast(1))
	s.Duration(&sp.MaxProtection, "protect-max", discoverytoken.DefaultMaxProtection, "self-preservation: the longest a silent instance is kept while the broker subscription is up (an outage of the broker itself evicts nobody)", conf.AtLeast(time.Second))
	debugserve.AddFlag(s, &c.DebugListen)
	done, err := s.Parse(args)
	if !done && err == nil && c.AMQPURL == "" {
		err = errors.New("-amqp-url is required (AMQP_URL or AMQP_URL_FILE): turbine reads its instances from the broker, and the broker has no guest account")
	}
	if !done && err == nil {
		err = c.Config.Validate() // the checks across settings (max-backoff ≥ min-backoff, …)
	}
	return c, s, done, err
}

func main() { conf.Main(load, run) }

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	agg := turbine.NewAggregator(cfg.MaxKeysPerHost, cfg.MaxBytesPerHost)
	verifier := turbine.NewWatcherVerifier(cfg.WatcherURL, cfg.Stack, cfg.VerifyInterval, cfg.WatcherTimeout)
	streams := turbine.NewStreams(cfg.Config, agg, verifier, log)
	hub := turbine.NewHub(agg, cfg.EmitInterval, cfg.MaxClusters)
	reg := discoverytoken.NewRegistry(discoverytoken.RegistryConfig{SelfPreservation: cfg.SelfPreservation, OnEvent: func(ev discoverytoken.Event) {
		log.Info("instance "+string(ev.Type), "instanceId", ev.Instance.InstanceID, "service", ev.Instance.Service,
			"address", ev.Instance.HostPort(), "reason", ev.Reason)
		streams.HandleEvent(ev)
	}})
	consumer, err := discoverytoken.NewConsumer(discoverytoken.ConsumerConfig{URL: cfg.AMQPURL, Sink: reg, Logger: log})
	if err != nil {
		return err
	}
	handler := turbine.NewHandler(turbine.ServerConfig{
		Config: cfg.Config, Registry: reg, Protection: reg, Subscription: consumer, Watcher: verifier,
		Streams: streams, Aggregator: agg, Hub: hub, Logger: log,
		Collectors: []prometheus.Collector{discoverytoken.NewCollector("turbine", reg, consumer)},
	})
	// /turbine.stream is long-lived: no WriteTimeout, a deadline per write, an
	// end at shutdown, and an idle limit well above its emit interval.
	srv := httpserve.New(cfg.Listen, handler, httpserve.Streaming(httpserve.StreamConfig{
		WriteWait: cfg.WriteTimeout, Idle: max(httpserve.StreamIdle, 3*cfg.EmitInterval),
	}, api.PathStream))
	log.Info("turbine starting", "listen", cfg.Listen, "broker", discoverytoken.RedactURL(cfg.AMQPURL), "watcher", cfg.WatcherURL)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error { return reg.RunExpiry(gctx, cfg.ExpiryInterval) })
	g.Go(func() error { return streams.Run(gctx) })
	g.Go(func() error { return hub.Run(gctx) })
	g.Go(func() error { return httpserve.Run(gctx, srv, cfg.Grace, log) })
	g.Go(func() error { return debugserve.Run(gctx, cfg.DebugListen, log) })
	err = g.Wait()
	log.Info("turbine stopped")
	return err
}

// redact hides the password of an AMQP URL for logging.
