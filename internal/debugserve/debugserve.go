// Package debugserve serves net/http/pprof on a loopback-only listener, off
// unless an address is given (flag -debug-listen, env DEBUG_LISTEN), so hot
// paths can be profiled under the real workload without publishing anything.
package debugserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"runtime"
	"time"
)

// Listen opens addr for the debug server. An empty host means 127.0.0.1; any
// host that is not a loopback address is refused.
func Listen(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen %q: %w", addr, err)
	}
	switch host {
	case "", "localhost":
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("debug listen %q: want a loopback address (127.0.0.1:PORT)", addr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("debug listen: %w", err)
	}
	return ln, nil
}

// Handler is the pprof index and its profiles under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Start serves Handler on addr until ctx ends. An empty addr serves nothing
// and turns heap profiling off (runtime.MemProfileRate = 0): its bucket table
// costs about 1.5 MiB of RSS that nobody could read. Call it first thing in
// main. It returns once the listener is open (or failed to open).
func Start(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		runtime.MemProfileRate = 0
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// Profiles stream for their ?seconds=N; bound them all the same.
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  time.Minute,
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug server", "err", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
