// Package debugserve serves a binary's profiles (net/http/pprof) and expvar
// variables on a listener of their own, off unless -debug-listen names an
// address.
//
// The address to use is 127.0.0.1:6060: a container's loopback is its own,
// so only the node reaches it, as root, by entering the container's network
// namespace (the images are FROM scratch: nothing inside can fetch):
//
//	pid=$(docker inspect -f '{{.State.Pid}}' <container>)
//	nsenter -t "$pid" -n curl -o cpu.pprof 'http://127.0.0.1:6060/debug/pprof/profile?seconds=10'
//
// Any other address is accepted too (":6060" reaches the stack's other
// containers on its overlay network, for a profiler running beside the
// service) and logged as a warning: the stack must never publish it.
package debugserve

import (
	"context"
	"expvar"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/httpserve"
)

// FlagName is the flag (and, by conf's rule, DEBUG_LISTEN the variable) of
// the debug listener, the same in every binary.
const FlagName = "debug-listen"

// writeTimeout lets a profile of up to 2 minutes (?seconds=120) finish; pprof
// refuses longer ones, naming the server's WriteTimeout.
const writeTimeout = 2*time.Minute + 10*time.Second

// AddFlag defines -debug-listen on s, storing the address in p.
func AddFlag(s *conf.Set, p *string) {
	s.String(p, FlagName, "", "address serving /debug/pprof/ and /debug/vars (empty: off); never publish it", func(v string) error {
		if v == "" {
			return nil
		}
		return conf.HostPort(v)
	})
}

// Handler serves the profiles under /debug/pprof/ and expvar at /debug/vars.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	return mux
}

// Run serves Handler on addr until ctx ends. With addr empty it returns nil
// at once: the listener is off.
func Run(ctx context.Context, addr string, logger *slog.Logger) error {
	if addr == "" {
		return nil
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("server", "debug")
	if !Loopback(addr) {
		logger.Warn("profiles served on a non-loopback address: never publish this port", "addr", addr)
	}
	return httpserve.Run(ctx, httpserve.New(addr, Handler(), httpserve.WithWriteTimeout(writeTimeout)), time.Second, logger)
}

// Loopback reports whether the listen address addr binds only to loopback.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
