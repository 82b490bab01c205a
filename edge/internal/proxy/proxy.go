// Package proxy is the edge: a reverse proxy that passes every request,
// unchanged, to accountservice by its service name, and answers a JSON 502
// quickly when no task can be reached. Its own health lives at /-/health,
// where accountservice has no route, so /health through the edge stays
// accountservice's.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/goblog/goblog/internal/jsonhttp"
)

// HealthPath is the edge's own health endpoint.
const HealthPath = "/-/health"

// Config wires the proxy.
type Config struct {
	// Target is where requests go, e.g. http://accountservice:6767.
	Target *url.URL
	// Transport carries requests to the target (it does the balancing and
	// the retry on a refused connection).
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// New returns the edge's handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(cfg.Target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: cfg.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away; nobody to answer
			}
			cfg.Logger.Warn("upstream failed", "method", r.Method, "path", r.URL.Path, "err", err)
			jsonhttp.WriteError(w, http.StatusBadGateway, "no "+cfg.Target.Host+" task answered: "+err.Error())
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		jsonhttp.Write(w, http.StatusOK, map[string]string{"status": "UP"})
	})
	mux.Handle("/", rp)
	return mux
}
