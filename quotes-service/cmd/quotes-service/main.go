// Command quotes-service serves quotes on :8080 (GET /api/quote?strength=N, GET /health).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goblog/goblog/internal/debugserve"
	"github.com/goblog/goblog/internal/envflag"
	"github.com/goblog/goblog/internal/hostip"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/quotes-service/internal/quotes"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "quotes-service:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("quotes-service", flag.ContinueOnError)
	var envErrs []error
	listen := envflag.String(fs, "listen", "LISTEN_ADDR", ":8080", "address to serve on")
	dnsName := envflag.String(fs, "self-dns", "SELF_DNS", "tasks.quotes-service", "DNS name of this service's tasks, to find this task's stack address")
	grace := envflag.Duration(fs, "grace", "SHUTDOWN_GRACE", 10*time.Second, "how long in-flight requests may finish on SIGTERM", &envErrs)
	debugListen := envflag.String(fs, "debug-listen", "DEBUG_LISTEN", "", "loopback address serving net/http/pprof, e.g. 127.0.0.1:6060 (empty: off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(envErrs) > 0 {
		return envErrs[0]
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "quotes-service")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := debugserve.Start(ctx, *debugListen, logger); err != nil {
		return err
	}

	host, _ := os.Hostname()
	self := hostip.Config{Name: *dnsName, Attempts: 1}
	found := hostip.Discover(ctx, self)
	ip := found.IP
	if ip == "" {
		ip = "unknown"
	}
	logger.Info("own address", "ip", ip, "matched", found.Matched, "how", found.Reason)

	_, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	h := quotes.NewHandler(host + "/" + ip + ":" + port)
	if !found.Matched {
		// Swarm puts a task in DNS once it is healthy; confirm the address then.
		go hostip.Confirm(ctx, self, time.Second, func(r hostip.Result) {
			if r.IP != ip {
				logger.Warn("address corrected", "was", ip, "now", r.IP)
				h.SetIPAddress(host + "/" + r.IP + ":" + port)
			}
			logger.Info("address confirmed", "ip", r.IP, "how", r.Reason)
		})
	}
	return httpserve.Run(ctx, httpserve.New(*listen, h), *grace, logger)
}
