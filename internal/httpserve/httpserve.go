// Package httpserve runs an http.Server with the project's timeouts and shuts it
// down gracefully when its context ends: stop accepting, let in-flight requests
// finish (up to a grace period), then return. It is the one server lifecycle of
// every goblog binary; long-lived streams (server-sent events) are served
// through the Streaming option.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Timeouts for servers built by New. They bound slow clients, not handlers that
// take long on purpose (a handler that needs more uses its own deadline, a
// stream the Streaming option).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
)

// An Option changes a server built by New.
type Option func(*http.Server)

// WithWriteTimeout replaces WriteTimeout for every route, for a server whose
// answers take long on purpose (a 30 s CPU profile).
func WithWriteTimeout(d time.Duration) Option {
	return func(srv *http.Server) { srv.WriteTimeout = d }
}

// New returns an http.Server for addr and h with all timeouts set.
func New(addr string, h http.Handler, opts ...Option) *http.Server {
	srv := &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
	for _, o := range opts {
		o(srv)
	}
	return srv
}

// Run listens on srv.Addr and serves until ctx ends, then shuts down within
// grace. It returns nil after a clean shutdown.
func Run(ctx context.Context, srv *http.Server, grace time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", srv.Addr, err)
	}
	return Serve(ctx, srv, ln, grace, logger)
}

// Serve is Run on a listener the caller opened (tests use port 0).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if srv.ErrorLog == nil {
		srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", ln.Addr().String(), "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
