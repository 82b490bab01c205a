// Command socketproxy serves the Docker Engine API read-only on TCP: GET and HEAD on an
// allow-list of paths are forwarded to the engine's unix socket, everything else is refused
// with 403. In the stack it is the only service that mounts the socket; the swarmwatcher
// reaches the engine through it (DOCKER_HOST=tcp://socketproxy:2375) on an internal network.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/socketproxy/internal/proxy"
)

// Config is everything socketproxy reads from flags and environment.
type Config struct {
	Listen         string
	Socket         string
	Allow          []string
	MaxInFlight    int
	Grace          time.Duration
	PrintSocketGID bool
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("-listen is empty")
	case c.Socket == "":
		return errors.New("-docker-socket is empty")
	case c.Grace <= 0:
		return fmt.Errorf("-shutdown-grace %s: want > 0", c.Grace)
	}
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg Config
	s := conf.New("socketproxy", "Serves the Docker Engine API read-only: GET and HEAD on an allow-list of paths, 403 for anything else.")
	s.Stdout, s.Stderr = stdout, stderr
	s.String(&cfg.Listen, "listen", ":2375", "address to serve the read-only API on")
	s.String(&cfg.Socket, "docker-socket", "/var/run/docker.sock", "the engine's unix socket")
	s.List(&cfg.Allow, "allow-paths", proxy.DefaultAllow, "paths that may be read (after /vX.Y; a * segment matches one segment)")
	s.Int(&cfg.MaxInFlight, "max-in-flight", 64, "requests forwarded at once; beyond it 503")
	s.Duration(&cfg.Grace, "shutdown-grace", 5*time.Second, "how long in-flight requests may finish on SIGTERM")
	s.Bool(&cfg.PrintSocketGID, "print-socket-gid", false, "print the group id owning -docker-socket and exit (./copyall.sh runs the proxy with that group)")
	if done, err := s.Parse(args); done || err != nil {
		return s.ExitCode(err)
	}
	if err := cfg.Validate(); err != nil {
		return s.ExitCode(err)
	}
	if cfg.PrintSocketGID {
		fi, err := os.Stat(cfg.Socket)
		if err != nil {
			fmt.Fprintln(stderr, "socketproxy:", err)
			return 1
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			fmt.Fprintln(stderr, "socketproxy: no owner information for", cfg.Socket)
			return 1
		}
		fmt.Fprintln(stdout, st.Gid)
		return 0
	}
	logger := s.Logger(stderr).With("component", "socketproxy")
	p, err := proxy.New(proxy.Config{Socket: cfg.Socket, Allow: cfg.Allow, MaxInFlight: cfg.MaxInFlight, Logger: logger})
	if err != nil {
		return s.ExitCode(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("forwarding reads", "socket", cfg.Socket, "allow", cfg.Allow)
	if err := httpserve.Run(ctx, httpserve.New(cfg.Listen, p), cfg.Grace, logger); err != nil {
		logger.Error("stopped", "err", err)
		return 1
	}
	return 0
}
