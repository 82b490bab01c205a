// Command turbine discovers service instances from AMQP discovery tokens, connects to each
// live instance's Hystrix metrics stream and serves their aggregate at /turbine.stream, the
// instances at /api/instances and its health (subscribed to the broker) at /health.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/turbine/internal/turbine"
)

// Config is turbine's configuration, from flags with environment fallbacks.
type Config struct {
	turbine.Config // bounds, intervals and the watcher
	Listen         string
	AMQPURL        string
	ExpiryInterval time.Duration
	LogFormat      string
}

// Validate reports a configuration turbine cannot run with.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("-listen %q: %w", c.Listen, err)
	}
	if c.AMQPURL == "" {
		return errors.New("-amqp-url is empty")
	}
	if c.ExpiryInterval < 10*time.Millisecond {
		return errors.New("-expiry-interval must be at least 10ms")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("-log-format %q: want json or text", c.LogFormat)
	}
	return c.Config.Validate()
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("turbine", flag.ContinueOnError)
	c := Config{Config: turbine.DefaultConfig()}
	d := c.Config
	fs.StringVar(&c.Listen, "listen", env("LISTEN", ":8282"), "HTTP listen address (env LISTEN)")
	fs.StringVar(&c.AMQPURL, "amqp-url", env("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/"), "RabbitMQ carrying the discovery tokens (env AMQP_URL)")
	fs.StringVar(&c.StreamPath, "stream-path", env("STREAM_PATH", d.StreamPath), "metrics stream path on every instance (env STREAM_PATH)")
	fs.DurationVar(&c.EmitInterval, "emit-interval", envDuration("EMIT_INTERVAL", d.EmitInterval), "how often /turbine.stream sends the aggregate (env EMIT_INTERVAL)")
	fs.StringVar(&c.WatcherURL, "watcher-url", env("WATCHER_URL", d.WatcherURL), "swarmwatcher whose running tasks verify the tokens' addresses (env WATCHER_URL)")
	fs.StringVar(&c.Stack, "stack", env("STACK", d.Stack), "stack prefix of the swarm service names (env STACK)")
	fs.DurationVar(&c.VerifyInterval, "verify-interval", envDuration("VERIFY_INTERVAL", d.VerifyInterval), "how often unverified instances are checked again; the watcher's answer is cached as long (env VERIFY_INTERVAL)")
	fs.DurationVar(&c.WatcherTimeout, "watcher-timeout", envDuration("WATCHER_TIMEOUT", d.WatcherTimeout), "deadline of one watcher query (env WATCHER_TIMEOUT)")
	fs.IntVar(&c.MaxStreams, "max-streams", envInt("MAX_STREAMS", d.MaxStreams), "instance streams at most at once (env MAX_STREAMS)")
	fs.IntVar(&c.MaxConcurrentDials, "max-concurrent-dials", envInt("MAX_CONCURRENT_DIALS", d.MaxConcurrentDials), "instance streams connecting at most at once (env MAX_CONCURRENT_DIALS)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", envDuration("DIAL_TIMEOUT", d.DialTimeout), "deadline to connect to an instance's stream (env DIAL_TIMEOUT)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", envDuration("IDLE_TIMEOUT", d.IdleTimeout), "drop an instance stream silent this long (env IDLE_TIMEOUT)")
	fs.IntVar(&c.MaxLine, "max-line", envInt("MAX_LINE", d.MaxLine), "longest line of an instance stream, bytes (env MAX_LINE)")
	fs.IntVar(&c.MaxKeysPerHost, "max-keys-per-host", envInt("MAX_KEYS_PER_HOST", d.MaxKeysPerHost), "distinct circuits and pools one instance may report (env MAX_KEYS_PER_HOST)")
	fs.IntVar(&c.MaxBytesPerHost, "max-bytes-per-host", envInt("MAX_BYTES_PER_HOST", d.MaxBytesPerHost), "bytes of samples kept per instance (env MAX_BYTES_PER_HOST)")
	fs.DurationVar(&c.MinBackoff, "min-backoff", envDuration("MIN_BACKOFF", d.MinBackoff), "first reconnect delay of an instance stream (env MIN_BACKOFF)")
	fs.DurationVar(&c.MaxBackoff, "max-backoff", envDuration("MAX_BACKOFF", d.MaxBackoff), "longest reconnect delay of an instance stream (env MAX_BACKOFF)")
	fs.IntVar(&c.MaxClients, "max-clients", envInt("MAX_CLIENTS", d.MaxClients), "/turbine.stream clients at most (env MAX_CLIENTS)")
	fs.IntVar(&c.MaxClusters, "max-clusters", envInt("MAX_CLUSTERS", d.MaxClusters), "distinct ?cluster= aggregates per round (env MAX_CLUSTERS)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", envDuration("WRITE_TIMEOUT", d.WriteTimeout), "deadline of one JSON answer or stream round (env WRITE_TIMEOUT)")
	fs.DurationVar(&c.ExpiryInterval, "expiry-interval", envDuration("EXPIRY_INTERVAL", 250*time.Millisecond), "how often silent instances are checked against their TTL (env EXPIRY_INTERVAL)")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", "json"), "json or text (env LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: turbine [flags]\n\nAggregates the Hystrix streams of the instances announced on the AMQP exchange %q.\n\n", discoverytoken.Exchange)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "turbine:", err)
		os.Exit(2)
	}
	var handler slog.Handler = slog.NewJSONHandler(os.Stderr, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(os.Stderr, nil)
	}
	log := slog.New(handler)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("turbine stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	agg := turbine.NewAggregator(cfg.MaxKeysPerHost, cfg.MaxBytesPerHost)
	verifier := turbine.NewWatcherVerifier(cfg.WatcherURL, cfg.Stack, cfg.VerifyInterval, cfg.WatcherTimeout)
	streams := turbine.NewStreams(cfg.Config, agg, verifier, log)
	hub := turbine.NewHub(agg, cfg.EmitInterval, cfg.MaxClusters)
	reg := discoverytoken.NewRegistry(discoverytoken.RegistryConfig{OnEvent: func(ev discoverytoken.Event) {
		log.Info("instance "+string(ev.Type), "instanceId", ev.Instance.InstanceID, "service", ev.Instance.Service,
			"address", ev.Instance.HostPort(), "reason", ev.Reason)
		streams.HandleEvent(ev)
	}})
	consumer, err := discoverytoken.NewConsumer(discoverytoken.ConsumerConfig{URL: cfg.AMQPURL, Sink: reg, Logger: log})
	if err != nil {
		return err
	}
	srv := httpserve.New(cfg.Listen, turbine.NewHandler(turbine.ServerConfig{
		Config: cfg.Config, Registry: reg, Protection: reg, Subscription: consumer, Watcher: verifier,
		Streams: streams, Aggregator: agg, Hub: hub, Logger: log,
		Collectors: []prometheus.Collector{discoverytoken.NewCollector("turbine", reg, consumer)},
	}))
	log.Info("turbine starting", "broker", redact(cfg.AMQPURL), "watcher", cfg.WatcherURL)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error { return reg.RunExpiry(gctx, cfg.ExpiryInterval) })
	g.Go(func() error { return streams.Run(gctx) })
	g.Go(func() error { return hub.Run(gctx) })
	g.Go(func() error { return httpserve.Run(gctx, srv, 5*time.Second, log) })
	err = g.Wait()
	log.Info("turbine stopped")
	return err
}

// redact hides the password of an AMQP URL for logging.
func redact(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return "(unparsable URL)"
	}
	uri.Password = "redacted"
	return uri.String()
}
