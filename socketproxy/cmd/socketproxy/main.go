// Command socketproxy serves the Docker Engine API read-only on TCP: GET and HEAD on an
// allow-list of paths are forwarded to the engine's unix socket, everything else is refused
// with 403. In the stack it is the only service that mounts the socket; the swarmwatcher
// reaches the engine through it (DOCKER_HOST=tcp://socketproxy:2375) on an internal network.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/goblog/goblog/internal/envflag"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/socketproxy/internal/proxy"
)

// Config is everything socketproxy reads from flags and environment.
type Config struct {
	Listen      string
	Socket      string
	Allow       []string
	MaxInFlight int
	Grace       time.Duration
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("-listen-addr is empty")
	case c.Socket == "":
		return errors.New("-docker-socket is empty")
	case c.Grace <= 0:
		return fmt.Errorf("-grace %s: want > 0", c.Grace)
	}
	return nil
}

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "socketproxy:", err)
		os.Exit(2)
	}
}

func parse(args []string) (Config, error) {
	fs := flag.NewFlagSet("socketproxy", flag.ContinueOnError)
	var errs []error
	listen := envflag.String(fs, "listen-addr", "LISTEN_ADDR", ":2375", "address to serve the read-only API on")
	socket := envflag.String(fs, "docker-socket", "DOCKER_SOCKET", "/var/run/docker.sock", "the engine's unix socket")
	allow := envflag.String(fs, "allow", "ALLOW_PATHS", strings.Join(proxy.DefaultAllow, ","), "comma-separated paths that may be read (after /vX.Y; * matches one segment)")
	inflight := envflag.Int(fs, "max-in-flight", "MAX_IN_FLIGHT", 64, "requests forwarded at once; beyond it 503", &errs)
	grace := envflag.Duration(fs, "grace", "SHUTDOWN_GRACE", 5*time.Second, "how long in-flight requests may finish on SIGTERM", &errs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c := Config{Listen: *listen, Socket: *socket, MaxInFlight: *inflight, Grace: *grace}
	for _, p := range strings.Split(*allow, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.Allow = append(c.Allow, p)
		}
	}
	return c, c.Validate()
}

func run(args []string) error {
	cfg, err := parse(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "socketproxy")
	p, err := proxy.New(proxy.Config{Socket: cfg.Socket, Allow: cfg.Allow, MaxInFlight: cfg.MaxInFlight, Logger: logger})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("forwarding reads", "socket", cfg.Socket, "allow", strings.Join(cfg.Allow, ","))
	return httpserve.Run(ctx, httpserve.New(cfg.Listen, p), cfg.Grace, logger)
}
