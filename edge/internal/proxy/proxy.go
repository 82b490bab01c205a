// Package proxy is the edge: a reverse proxy that passes every request,
// unchanged, to accountservice by its service name, and answers a JSON 502
// quickly when no task can be reached, or a 503 with Retry-After at once when
// every task carries its bound of requests in flight. Its own health lives at
// /-/health, where accountservice has no route, so /health through the edge
// stays accountservice's. /testability/* is not proxied unless asked for.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/internal/jsonhttp"
	"github.com/goblog/goblog/internal/lbclient"
)

// HealthPath is the edge's own health endpoint.
const HealthPath = "/-/health"

// TestabilityPrefix is accountservice's test switch, proxied only with
// Config.Testability.
const TestabilityPrefix = "/testability"

// RetryAfter is what an overloaded answer tells the client to wait, in seconds.
const RetryAfter = "1"

// Config wires the proxy.
type Config struct {
	// Target is where requests go, e.g. http://accountservice:6767.
	Target *url.URL
	// Transport carries requests to the target (it does the balancing, the
	// retry on a refused connection and the in-flight bound).
	Transport http.RoundTripper
	// Testability proxies /testability/*; without it they answer 404.
	Testability bool
	Logger      *slog.Logger
}

// Stats counts the edge's own answers.
type Stats struct {
	Overloaded, BadGateway uint64
}

// Proxy is the edge's handler; create it with New.
type Proxy struct {
	mux                    *http.ServeMux
	overloaded, badGateway atomic.Uint64
	lastLog                atomic.Int64
	log                    *slog.Logger
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Overloaded: p.overloaded.Load(), BadGateway: p.badGateway.Load()}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

var healthBody = []byte(`{"status":"UP"}` + "\n")

// New returns the edge's handler.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{mux: http.NewServeMux(), log: cfg.Logger}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(cfg.Target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:    cfg.Transport,
		BufferPool:   bufferPool{},
		ErrorHandler: p.upstreamFailed,
	}
	p.mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(healthBody)
	})
	if !cfg.Testability {
		notFound := func(w http.ResponseWriter, r *http.Request) {
			jsonhttp.WriteError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
		}
		p.mux.HandleFunc(TestabilityPrefix, notFound)
		p.mux.HandleFunc(TestabilityPrefix+"/", notFound)
	}
	p.mux.Handle("/", rp)
	return p
}

// upstreamFailed answers 503 at once when every task is at its bound, else a
// 502 that names nothing internal (the cause goes to the log, at most once a
// second).
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away; nobody to answer
	}
	if errors.Is(err, lbclient.ErrOverloaded) {
		p.overloaded.Add(1)
		w.Header().Set("Retry-After", RetryAfter)
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "every upstream task is busy; retry later")
		return
	}
	p.badGateway.Add(1)
	if now := time.Now().Unix(); p.lastLog.Swap(now) != now {
		p.log.Warn("upstream failed", "method", r.Method, "path", r.URL.Path, "err", err, "badGatewayTotal", p.badGateway.Load())
	}
	jsonhttp.WriteError(w, http.StatusBadGateway, "no upstream task answered")
}

// bufferPool lends the copy buffers of answers' bodies (ReverseProxy would
// allocate 32 KiB per request).
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
