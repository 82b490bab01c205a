// Command hello is the benchmark's baseline: a bare net/http hello-world
// handler, deployed as a swarm service the same way as accountservice, so
// the load test can compare /accounts/{id} with the cheapest possible answer
// (P1 of the benchmark). Every path but /health answers 200 "Hello, world".
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/httpserve"
)

func main() { conf.Main(load, run) }

// load reads the one setting, -port (PORT).
func load(args []string) (int, *conf.Set, bool, error) {
	s := conf.New("hello", "The benchmark's baseline: a bare net/http hello-world service (200 \"Hello, world\" on every path but /health).")
	var port int
	s.Int(&port, "port", 6868, "port to listen on", conf.Between(1, 65535))
	done, err := s.Parse(args)
	return port, s, done, err
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

// run serves until ctx ends, with the same server lifecycle (timeouts, graceful
// shutdown) as every goblog service, so the baseline differs from them only in
// its handler.
func run(ctx context.Context, port int, log *slog.Logger) error {
	return httpserve.Run(ctx, httpserve.New(fmt.Sprintf(":%d", port), newMux()), 5*time.Second, log)
}
