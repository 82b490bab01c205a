// Command quotes-service serves quotes on :8080 (GET /api/quote?strength=N, GET /health).
package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/exepages"
	"github.com/goblog/goblog/internal/hostip"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/quotes-service/internal/quotes"
)

// Config is everything quotes-service reads from flags and environment.
type Config struct {
	Listen      string
	SelfDNS     string
	Grace       time.Duration
	DebugListen string
	ExeRelease  time.Duration
}

// load reads the configuration from args and the environment; done is true
// when -h or -version was handled.
func load(args []string) (Config, *conf.Set, bool, error) {
	var c Config
	s := conf.New("quotes-service", "Serves quotes (GET /api/quote?strength=N) that name the task that served them.")
	s.String(&c.Listen, "listen", ":8080", "address to serve on", conf.HostPort)
	s.String(&c.SelfDNS, "self-dns", "tasks.quotes-service", "DNS name of this service's tasks, to find this task's stack address")
	s.Duration(&c.Grace, "shutdown-grace", 10*time.Second, "how long in-flight requests may finish on SIGTERM", conf.AtLeast(time.Millisecond))
	debugserve.AddFlag(s, &c.DebugListen)
	exepages.AddFlag(s, &c.ExeRelease)
	done, err := s.Parse(args)
	return c, s, done, err
}

func main() { conf.Main(load, run) }

func run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	host, _ := os.Hostname()
	self := hostip.Config{Name: cfg.SelfDNS, Attempts: 1}
	found := hostip.Discover(ctx, self)
	ip := found.IP
	if ip == "" {
		ip = "unknown"
	}
	logger.Info("own address", "ip", ip, "matched", found.Matched, "how", found.Reason)

	_, port, _ := net.SplitHostPort(cfg.Listen) // checked by conf.HostPort
	h := quotes.NewHandler(host + "/" + ip + ":" + port)
	g, ctx := errgroup.WithContext(ctx)
	if !found.Matched {
		// Swarm puts a task in DNS once it is healthy; confirm the address then. It runs in
		// the group, so run returns only after it has (it stops with ctx).
		g.Go(func() error {
			hostip.Confirm(ctx, self, time.Second, func(r hostip.Result) {
				if r.IP != ip {
					logger.Warn("address corrected", "was", ip, "now", r.IP)
					h.SetIPAddress(host + "/" + r.IP + ":" + port)
				}
				logger.Info("address confirmed", "ip", r.IP, "how", r.Reason)
			})
			return nil
		})
	}
	g.Go(func() error { return httpserve.Run(ctx, httpserve.New(cfg.Listen, h), cfg.Grace, logger) })
	g.Go(func() error { return debugserve.Run(ctx, cfg.DebugListen, logger) })
	g.Go(func() error { return exepages.Run(ctx, cfg.ExeRelease, logger) })
	return g.Wait()
}
