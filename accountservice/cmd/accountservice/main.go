// Command accountservice serves accounts on :6767 from an embedded bbolt store,
// each with a quote from quotes-service, answered with this task's address on
// the stack network (servedBy) so that swarm's balancing can be watched.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/accountservice/internal/api"
	"github.com/goblog/goblog/accountservice/internal/breaker"
	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/exepages"
	"github.com/goblog/goblog/internal/hostip"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/lbclient"
	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// Config is everything accountservice reads from flags and environment.
type Config struct {
	Listen          string
	DBPath          string
	QuotesURL       string
	QuotesDiscovery string
	WatcherURL      string
	QuoteStrength   int
	QuoteTimeout    time.Duration
	MaxInFlight     int
	SelfDNS         string
	Testability     bool
	Grace           time.Duration
	AMQPURL         string
	MetricsListen   string
	TokenInterval   time.Duration
	TokenTTL        time.Duration
	DebugListen     string
	ExeRelease      time.Duration
}

// Validate reports what the flags' own checks cannot: settings that must
// agree with each other.
func (c Config) Validate() error {
	if c.TokenTTL < c.TokenInterval {
		return fmt.Errorf("-token-ttl [TOKEN_TTL] %s is shorter than -token-interval [TOKEN_INTERVAL] %s", c.TokenTTL, c.TokenInterval)
	}
	return nil
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var c Config
	s := conf.New("accountservice", "Serves accounts from an embedded bbolt store, each with a quote from quotes-service.")
	s.String(&c.Listen, "listen", ":6767", "address to serve on", conf.HostPort)
	s.String(&c.DBPath, "accounts-db", "/data/accounts.db", "bbolt file holding the accounts (created and seeded when absent)", conf.NotEmpty)
	s.URL(&c.QuotesURL, "quotes-url", "http://quotes-service:8080", "quotes-service base URL, by logical name", "http", "https")
	s.Enum(&c.QuotesDiscovery, "quotes-discovery", "name", []string{"name", "watcher"}, "how quotes-service tasks are found: by service name (swarm balances) or watcher (round robin over the tasks the swarmwatcher reports passing, and routing by tenant: a quote call for a request whose X-Goblog-Tenant header names a tenant goes to that tenant's quotes-service tasks, or the plain ones when it has none); either way the header is passed on to the quote call")
	s.URL(&c.WatcherURL, "watcher-url", "http://swarmwatcher:6969", "the swarmwatcher, for -quotes-discovery watcher", "http", "https")
	s.Int(&c.QuoteStrength, "quote-strength", 4, "strength asked of quotes-service", conf.Between(0, 10))
	s.Duration(&c.QuoteTimeout, "quote-timeout", time.Second, "deadline of one quote call; the fallback quote is served after it", conf.AtLeast(time.Millisecond))
	s.Int(&c.MaxInFlight, "max-in-flight", 256, "account requests served at once; beyond it 503 with Retry-After (0: no bound)", conf.AtLeast(0))
	s.String(&c.SelfDNS, "self-dns", "tasks.accountservice", "DNS name of this service's tasks, to find this task's stack address")
	s.Bool(&c.Testability, "testability", false, "enable PUT /testability/healthy/{true|false}")
	s.Duration(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on SIGTERM", conf.AtLeast(time.Millisecond))
	s.String(&c.AMQPURL, "amqp-url", "", "RabbitMQ to publish discovery tokens on, e.g. amqp://user:password@rabbitmq:5672/ (empty: no broker)", func(v string) error {
		if v == "" {
			return nil
		}
		return conf.CheckURL(v, "amqp", "amqps")
	})
	s.String(&c.MetricsListen, "metrics-listen", ":8181", "address of the Hystrix stream (/hystrix.stream) of the quote call's circuit breaker and of Prometheus /metrics", conf.HostPort)
	s.Duration(&c.TokenInterval, "token-interval", 5*time.Second, "discovery token heartbeat interval", conf.AtLeast(time.Millisecond))
	s.Duration(&c.TokenTTL, "token-ttl", 15*time.Second, "discovery token TTL: consumers forget this instance after this much silence", conf.AtLeast(time.Second))
	debugserve.AddFlag(s, &c.DebugListen)
	exepages.AddFlag(s, &c.ExeRelease)
	done, err := s.Parse(args)
	if done || err != nil {
		return c, s, done, err
	}
	return c, s, false, c.Validate()
}

func main() { conf.Main(load, run) }

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	st, err := store.Open(cfg.DBPath)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			logger.Error("close store", "err", err)
		}
	}()

	self := hostip.Config{Name: cfg.SelfDNS, Attempts: 1}
	found := hostip.Discover(ctx, self)
	servedBy := found.IP
	if servedBy == "" {
		servedBy, _ = os.Hostname()
	}
	logger.Info("servedBy", "value", servedBy, "matched", found.Matched, "how", found.Reason)

	var quotesRT http.RoundTripper = lbclient.New(lbclient.Config{})
	var quotesDiscovery *wsd.Discovery
	if cfg.QuotesDiscovery == "watcher" {
		d, err := watcherTransport(cfg.WatcherURL, cfg.QuotesURL, quotesRT, logger)
		if err != nil {
			return err
		}
		defer d.Close()
		quotesRT, quotesDiscovery = d, d
	}
	quotes, err := quote.NewClient(cfg.QuotesURL, cfg.QuoteStrength, cfg.QuoteTimeout, quotesRT)
	if err != nil {
		return err
	}
	// The quote call goes through a circuit breaker (fallback quote), whose Hystrix stream
	// turbine reads; discovery tokens announce this instance once its address is known.
	fetcher := breaker.New(quotes, breaker.Config{Timeout: cfg.QuoteTimeout, Logger: logger})
	h := api.New(api.Config{Store: st, Quotes: fetcher, ServedBy: servedBy, Testability: cfg.Testability, MaxInFlight: cfg.MaxInFlight, Logger: logger})
	waitMetrics, err := serveMetrics(ctx, cfg, fetcher, promHandler(h, quotesDiscovery), logger)
	if err != nil {
		return err
	}
	defer waitMetrics()
	addr := make(chan string, 1)
	if found.Matched || cfg.SelfDNS == "" {
		addr <- servedBy
	}
	waitAnnounce, err := announce(ctx, cfg, addr, logger)
	if err != nil {
		return err
	}
	defer waitAnnounce()
	g, ctx := errgroup.WithContext(ctx)
	if !found.Matched {
		// Swarm puts a task in DNS once it is healthy; confirm the address then. It runs in
		// the group, so run returns only after it has (it stops with ctx).
		g.Go(func() error {
			hostip.Confirm(ctx, self, time.Second, func(r hostip.Result) {
				addr <- r.IP // buffered, sent once: discovery tokens start now
				if r.IP != servedBy {
					logger.Warn("servedBy corrected", "was", servedBy, "now", r.IP, "how", r.Reason)
					h.SetServedBy(r.IP)
					return
				}
				logger.Info("servedBy confirmed", "value", r.IP, "how", r.Reason)
			})
			return nil
		})
	}
	if cfg.Testability {
		logger.Warn("testability on: PUT /testability/healthy/{state} can mark this instance unhealthy")
	}
	g.Go(func() error { return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger) })
	g.Go(func() error { return debugserve.Run(ctx, cfg.DebugListen, logger) })
	g.Go(func() error { return exepages.Run(ctx, cfg.ExeRelease, logger) })
	return g.Wait()
}
