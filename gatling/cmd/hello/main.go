// Command hello is the benchmark's baseline: a bare net/http hello-world
// handler, deployed as a swarm service the same way as accountservice, so
// the load test can compare /accounts/{id} with the cheapest possible answer
// (P1 of the benchmark). Every path but /health answers 200 "Hello, world".
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goblog/goblog/internal/conf"
)

func main() {
	s := conf.New("hello", "The benchmark's baseline: a bare net/http hello-world service (200 \"Hello, world\" on every path but /health).")
	var port int
	s.Int(&port, "port", 6868, "port to listen on")
	if done, err := s.Parse(os.Args[1:]); done || err != nil {
		os.Exit(s.ExitCode(err))
	}
	if port < 1 || port > 65535 {
		os.Exit(s.ExitCode(fmt.Errorf("-port %d: must be 1 … 65535", port)))
	}
	log := s.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, fmt.Sprintf(":%d", port), log); err != nil {
		log.Error("hello stopped", "err", err)
		os.Exit(1)
	}
}

// newMux is the whole service: /health for the HEALTHCHECK, hello for the rest.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"UP"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "Hello, world\n")
	})
	return mux
}

func run(ctx context.Context, addr string, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              addr,
		Handler:           newMux(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("hello listening", "addr", addr)
	select {
	case err := <-errc:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
