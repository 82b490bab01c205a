// Package proxy is a read-only gate in front of the Docker Engine API: it forwards GET and
// HEAD requests for an allow-list of paths to the engine's unix socket and refuses everything
// else (other methods, other paths, connection upgrades) with 403, so a client that holds only
// this proxy can watch the swarm but never change it, attach to a container or read a join
// token. The engine's event stream passes through as it comes, without a write deadline.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/internal/jsonhttp"
)

// DefaultAllow is what the swarmwatcher reads: the engine's identity and the swarm's
// services, tasks, nodes and networks, the event stream, and container listings/inspection.
// Deliberately absent: /swarm (join tokens), /configs and /secrets, container archives,
// exports, logs and stats, image exports.
var DefaultAllow = []string{
	"/_ping", "/version", "/info", "/events",
	"/services", "/services/*",
	"/tasks", "/tasks/*",
	"/nodes", "/nodes/*",
	"/networks", "/networks/*",
	"/containers/json", "/containers/*/json",
}

// streaming paths answer for as long as the client listens: no write or read deadline.
var streaming = map[string]bool{"/events": true}

// versionPrefix is the API version the Docker client puts before every path (/v1.41/...).
var versionPrefix = regexp.MustCompile(`^/v[0-9]+(\.[0-9]+)?/`)

// Config configures a Proxy.
type Config struct {
	// Socket is the engine's unix socket (default /var/run/docker.sock).
	Socket string
	// Allow lists the paths (after the optional /vX.Y prefix) that may be read; a "*" segment
	// matches any one segment. Default DefaultAllow.
	Allow []string
	// MaxInFlight bounds the requests forwarded at once; beyond it the answer is 503 (default 64).
	MaxInFlight int
	// DialTimeout bounds connecting to the socket (default 2s); HeaderTimeout bounds waiting
	// for the engine's response headers (default 30s).
	DialTimeout, HeaderTimeout time.Duration
	// Logger receives one line per refused request (nil: discard).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Socket == "" {
		c.Socket = "/var/run/docker.sock"
	}
	if c.Allow == nil {
		c.Allow = DefaultAllow
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration the Proxy cannot run with.
func (c Config) Validate() error {
	if c.MaxInFlight < 1 {
		return fmt.Errorf("max in-flight %d: want >= 1", c.MaxInFlight)
	}
	if c.DialTimeout <= 0 || c.HeaderTimeout <= 0 {
		return errors.New("dial and header timeouts must be positive")
	}
	for _, p := range c.Allow {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			return fmt.Errorf("allowed path %q: want a clean absolute path", p)
		}
	}
	return nil
}

// Stats counts what the Proxy did.
type Stats struct {
	Forwarded, Refused, Busy uint64
}

// Proxy is the http.Handler; build it with New.
type Proxy struct {
	cfg      Config
	allow    [][]string
	rp       *httputil.ReverseProxy
	inflight chan struct{}

	forwarded, refused, busy atomic.Uint64
}

var _ http.Handler = (*Proxy)(nil)

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, inflight: make(chan struct{}, cfg.MaxInFlight)}
	for _, a := range cfg.Allow {
		p.allow = append(p.allow, strings.Split(a, "/"))
	}
	socket := cfg.Socket
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: cfg.DialTimeout}
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:          8,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.HeaderTimeout,
		DisableCompression:    true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "docker"
			r.Out.Host = "docker"
		},
		Transport: transport,
		// Flush every write at once: the event stream must reach the client as it comes.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Logger.Warn("engine unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadGateway, "socketproxy: the Docker engine did not answer")
		},
	}
	return p, nil
}

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{Forwarded: p.forwarded.Load(), Refused: p.refused.Load(), Busy: p.busy.Load()}
}

// ServeHTTP forwards an allowed read and refuses anything else.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reason := p.refusal(r); reason != "" {
		p.refused.Add(1)
		p.cfg.Logger.Warn("refused", "method", r.Method, "path", r.URL.EscapedPath(), "remote", r.RemoteAddr, "reason", reason)
		writeError(w, http.StatusForbidden, "socketproxy: "+reason)
		return
	}
	select {
	case p.inflight <- struct{}{}:
		defer func() { <-p.inflight }()
	default:
		p.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "socketproxy: too many requests in flight")
		return
	}
	if streaming[stripVersion(r.URL.Path)] {
		// The server's deadlines would end a healthy stream (and a read deadline cancels the
		// request's context): a stream ends when the client or the engine ends it.
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{})
		_ = rc.SetReadDeadline(time.Time{})
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// refusal says why r may not pass, or "" when it may.
func (p *Proxy) refusal(r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return "method " + r.Method + " is not allowed (read-only: GET and HEAD)"
	}
	if r.Header.Get("Upgrade") != "" || headerHasToken(r.Header, "Connection", "upgrade") {
		return "connection upgrades are not allowed"
	}
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return "a request body is not allowed"
	}
	// Only clean, unescaped paths: what is matched is exactly what the engine routes.
	if r.URL.RawPath != "" || path.Clean(r.URL.Path) != r.URL.Path || strings.Contains(r.URL.Path, "%") {
		return "path is not clean"
	}
	if !p.allowed(stripVersion(r.URL.Path)) {
		return "path " + r.URL.Path + " is not allowed"
	}
	return ""
}

func (p *Proxy) allowed(urlPath string) bool {
	segs := strings.Split(urlPath, "/")
	for _, a := range p.allow {
		if len(a) != len(segs) {
			continue
		}
		ok := true
		for i := range a {
			if a[i] != "*" && a[i] != segs[i] || a[i] == "*" && segs[i] == "" {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func stripVersion(p string) string {
	if loc := versionPrefix.FindStringIndex(p); loc != nil {
		return p[loc[1]-1:]
	}
	return p
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// engineError is the engine's own error shape, so a Docker client shows the message.
type engineError struct {
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	jsonhttp.Write(w, code, engineError{msg})
}
