// Command turbine discovers service instances from AMQP discovery tokens, connects to each
// live instance's Hystrix metrics stream and serves their aggregate at /turbine.stream, the
// instances at /api/instances and its health (subscribed to the broker) at /health.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/discoverytoken/internal/turbine"
	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/httpserve"
)

// Config is turbine's configuration, from flags and environment.
type Config struct {
	Listen         string
	AMQPURL        string
	StreamPath     string
	EmitInterval   time.Duration
	ExpiryInterval time.Duration
	Grace          time.Duration
	DebugListen    string
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var c Config
	s := conf.New("turbine", fmt.Sprintf("Aggregates the Hystrix streams of the instances announced on the AMQP exchange %q.", discoverytoken.Exchange))
	s.String(&c.Listen, "listen", ":8282", "HTTP listen address", conf.HostPort)
	s.String(&c.AMQPURL, "amqp-url", "amqp://guest:guest@rabbitmq:5672/", "RabbitMQ carrying the discovery tokens", func(v string) error {
		if _, err := amqp.ParseURI(v); err != nil {
			return errors.New("want amqp://user:password@host:port/vhost")
		}
		return nil
	})
	s.String(&c.StreamPath, "stream-path", "/hystrix.stream", "metrics stream path on every instance", func(v string) error {
		if !strings.HasPrefix(v, "/") {
			return errors.New("must start with /")
		}
		return nil
	})
	s.Duration(&c.EmitInterval, "emit-interval", time.Second, "how often /turbine.stream sends the aggregate", conf.AtLeast(100*time.Millisecond))
	s.Duration(&c.ExpiryInterval, "expiry-interval", 250*time.Millisecond, "how often silent instances are checked against their TTL", conf.AtLeast(10*time.Millisecond))
	s.Duration(&c.Grace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on SIGTERM (streams end at once)", conf.AtLeast(time.Millisecond))
	debugserve.AddFlag(s, &c.DebugListen)
	done, err := s.Parse(args)
	return c, s, done, err
}

func main() { conf.Main(load, run) }

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
	handler := turbine.NewHandler(turbine.ServerConfig{
		Registry: reg, Subscription: consumer, Streams: streams, Aggregator: agg, Interval: cfg.EmitInterval, Logger: log,
	})
	// /turbine.stream is long-lived: no WriteTimeout, a deadline per write, an
	// end at shutdown, and an idle limit well above its emit interval.
	srv := httpserve.New(cfg.Listen, handler, httpserve.Streaming(httpserve.StreamConfig{
		WriteWait: cfg.EmitInterval + 10*time.Second, Idle: max(httpserve.StreamIdle, 3*cfg.EmitInterval),
	}, "/turbine.stream"))
	log.Info("turbine starting", "listen", cfg.Listen, "broker", redact(cfg.AMQPURL))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return consumer.Run(gctx) })
	g.Go(func() error { return reg.RunExpiry(gctx, cfg.ExpiryInterval) })
	g.Go(func() error {
		err := httpserve.Run(gctx, srv, cfg.Grace, log)
		stopStreams()
		streams.Wait()
		return err
	})
	g.Go(func() error { return debugserve.Run(gctx, cfg.DebugListen, log) })
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
