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
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/turbine/internal/turbine"
)

// Config is turbine's configuration, from flags with environment fallbacks.
type Config struct {
	Listen         string
	AMQPURL        string
	StreamPath     string
	EmitInterval   time.Duration
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
	if c.EmitInterval < 100*time.Millisecond || c.ExpiryInterval < 10*time.Millisecond {
		return errors.New("-emit-interval must be at least 100ms and -expiry-interval at least 10ms")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("-log-format %q: want json or text", c.LogFormat)
	}
	return nil
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

func parseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("turbine", flag.ContinueOnError)
	var c Config
	fs.StringVar(&c.Listen, "listen", env("LISTEN", ":8282"), "HTTP listen address (env LISTEN)")
	fs.StringVar(&c.AMQPURL, "amqp-url", env("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/"), "RabbitMQ carrying the discovery tokens (env AMQP_URL)")
	fs.StringVar(&c.StreamPath, "stream-path", env("STREAM_PATH", "/hystrix.stream"), "metrics stream path on every instance (env STREAM_PATH)")
	fs.DurationVar(&c.EmitInterval, "emit-interval", envDuration("EMIT_INTERVAL", time.Second), "how often /turbine.stream sends the aggregate (env EMIT_INTERVAL)")
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
	agg := turbine.NewAggregator()
	streamsCtx, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	streams := turbine.NewStreams(streamsCtx, turbine.StreamsConfig{Path: cfg.StreamPath, Logger: log}, agg)
	reg := discoverytoken.NewRegistry(discoverytoken.RegistryConfig{OnEvent: func(ev discoverytoken.Event) {
		log.Info("instance "+string(ev.Type), "instanceId", ev.Instance.InstanceID, "service", ev.Instance.Service,
			"address", ev.Instance.HostPort(), "reason", ev.Reason)
		streams.HandleEvent(ev)
	}})
	consumer, err := discoverytoken.NewConsumer(discoverytoken.ConsumerConfig{URL: cfg.AMQPURL, Sink: reg, Logger: log})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr: cfg.Listen,
		Handler: turbine.NewHandler(turbine.ServerConfig{
			Registry: reg, Subscription: consumer, Streams: streams, Aggregator: agg, Interval: cfg.EmitInterval, Logger: log,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		// No WriteTimeout: /turbine.stream is long-lived; it sets a per-round write deadline.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("turbine listening", "addr", ln.Addr().String(), "broker", redact(cfg.AMQPURL))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error { return reg.RunExpiry(gctx, cfg.ExpiryInterval) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(shutdownCtx)
		stopStreams()
		streams.Wait()
		return err
	})
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
