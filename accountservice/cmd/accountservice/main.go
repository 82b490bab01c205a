// Command accountservice serves accounts on :6767 from an embedded bbolt store,
// each with a quote from quotes-service, answered with this task's address on
// the stack network (servedBy) so that swarm's balancing can be watched.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goblog/goblog/accountservice/internal/api"
	"github.com/goblog/goblog/accountservice/internal/breaker"
	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/envflag"
	"github.com/goblog/goblog/internal/hostip"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/lbclient"
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
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("-listen is empty")
	case c.DBPath == "":
		return errors.New("-db is empty")
	case c.QuoteStrength < 0 || c.QuoteStrength > 10:
		return fmt.Errorf("-quote-strength %d: want 0-10", c.QuoteStrength)
	case c.QuoteTimeout <= 0:
		return fmt.Errorf("-quote-timeout %s: want > 0", c.QuoteTimeout)
	case c.MaxInFlight < 0:
		return fmt.Errorf("-max-in-flight %d: want >= 0", c.MaxInFlight)
	case c.QuotesDiscovery != "name" && c.QuotesDiscovery != "watcher":
		return fmt.Errorf("-quotes-discovery %q: want name or watcher", c.QuotesDiscovery)
	case c.Grace <= 0:
		return fmt.Errorf("-grace %s: want > 0", c.Grace)
	case c.MetricsListen == "":
		return errors.New("-metrics-listen is empty")
	case c.TokenInterval <= 0 || c.TokenTTL < c.TokenInterval:
		return fmt.Errorf("-token-interval %s / -token-ttl %s: want interval > 0 and ttl >= interval", c.TokenInterval, c.TokenTTL)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "accountservice:", err)
		os.Exit(1)
	}
}

func parse(args []string) (Config, error) {
	fs := flag.NewFlagSet("accountservice", flag.ContinueOnError)
	var errs []error
	listen := envflag.String(fs, "listen", "LISTEN_ADDR", ":6767", "address to serve on")
	db := envflag.String(fs, "db", "ACCOUNTS_DB", "/data/accounts.db", "bbolt file holding the accounts (created and seeded when absent)")
	quotesURL := envflag.String(fs, "quotes-url", "QUOTES_URL", "http://quotes-service:8080", "quotes-service base URL, by logical name")
	quotesDiscovery := envflag.String(fs, "quotes-discovery", "QUOTES_DISCOVERY", "name", "how quotes-service tasks are found: name (swarm balances) or watcher (round robin over the tasks the swarmwatcher reports passing)")
	watcherURL := envflag.String(fs, "watcher-url", "WATCHER_URL", "http://swarmwatcher:6969", "the swarmwatcher, for -quotes-discovery watcher")
	strength := envflag.Int(fs, "quote-strength", "QUOTE_STRENGTH", 4, "strength asked of quotes-service (0-10)", &errs)
	timeout := envflag.Duration(fs, "quote-timeout", "QUOTE_TIMEOUT", time.Second, "deadline of one quote call; the fallback quote is served after it", &errs)
	maxInFlight := envflag.Int(fs, "max-in-flight", "MAX_IN_FLIGHT", 256, "account requests served at once; beyond it 503 with Retry-After (0: no bound)", &errs)
	selfDNS := envflag.String(fs, "self-dns", "SELF_DNS", "tasks.accountservice", "DNS name of this service's tasks, to find this task's stack address")
	testability := envflag.Bool(fs, "testability", "TESTABILITY", false, "enable PUT /testability/healthy/{true|false}", &errs)
	grace := envflag.Duration(fs, "grace", "SHUTDOWN_GRACE", 10*time.Second, "how long in-flight requests may finish on SIGTERM", &errs)
	amqpURL := envflag.String(fs, "amqp-url", "AMQP_URL", "", "RabbitMQ to publish discovery tokens on, e.g. amqp://guest:guest@rabbitmq:5672/ (empty: no broker)")
	metricsListen := envflag.String(fs, "metrics-listen", "METRICS_LISTEN", ":8181", "address of the Hystrix stream (/hystrix.stream) of the quote call's circuit breaker")
	tokenInterval := envflag.Duration(fs, "token-interval", "TOKEN_INTERVAL", 5*time.Second, "discovery token heartbeat interval", &errs)
	tokenTTL := envflag.Duration(fs, "token-ttl", "TOKEN_TTL", 15*time.Second, "discovery token TTL: consumers forget this instance after this much silence", &errs)
	debugListen := envflag.String(fs, "debug-listen", "DEBUG_LISTEN", "", "loopback address serving net/http/pprof, e.g. 127.0.0.1:6060 (empty: off)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	c := Config{
		Listen: *listen, DBPath: *db, QuotesURL: *quotesURL, QuotesDiscovery: *quotesDiscovery, WatcherURL: *watcherURL, QuoteStrength: *strength,
		QuoteTimeout: *timeout, MaxInFlight: *maxInFlight, SelfDNS: *selfDNS,
		Testability: *testability, Grace: *grace,
		AMQPURL: *amqpURL, MetricsListen: *metricsListen, TokenInterval: *tokenInterval, TokenTTL: *tokenTTL, DebugListen: *debugListen,
	}
	return c, c.Validate()
}

func run(args []string) error {
	cfg, err := parse(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "accountservice")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := debugserve.Start(ctx, cfg.DebugListen, logger); err != nil {
		return err
	}

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
	if cfg.QuotesDiscovery == "watcher" {
		rt, stop, err := watcherTransport(cfg.WatcherURL, cfg.QuotesURL, quotesRT, logger)
		if err != nil {
			return err
		}
		defer stop()
		quotesRT = rt
	}
	quotes, err := quote.NewClient(cfg.QuotesURL, cfg.QuoteStrength, cfg.QuoteTimeout, quotesRT)
	if err != nil {
		return err
	}
	// The quote call goes through a circuit breaker (fallback quote), whose Hystrix stream
	// turbine reads; discovery tokens announce this instance once its address is known.
	fetcher := breaker.New(quotes, breaker.Config{Timeout: cfg.QuoteTimeout, Logger: logger})
	waitMetrics, err := serveMetrics(ctx, cfg, logger)
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
	h := api.New(api.Config{Store: st, Quotes: fetcher, ServedBy: servedBy, Testability: cfg.Testability, MaxInFlight: cfg.MaxInFlight, Logger: logger})
	if !found.Matched {
		// Swarm puts a task in DNS once it is healthy; confirm the address then.
		go hostip.Confirm(ctx, self, time.Second, func(r hostip.Result) {
			addr <- r.IP // buffered, sent once: discovery tokens start now
			if r.IP != servedBy {
				logger.Warn("servedBy corrected", "was", servedBy, "now", r.IP, "how", r.Reason)
				h.SetServedBy(r.IP)
				return
			}
			logger.Info("servedBy confirmed", "value", r.IP, "how", r.Reason)
		})
	}
	if cfg.Testability {
		logger.Warn("testability on: PUT /testability/healthy/{state} can mark this instance unhealthy")
	}
	return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger)
}
