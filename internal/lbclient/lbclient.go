// Package lbclient builds HTTP transports that spread calls made to a service
// name across the service's swarm tasks, in both endpoint modes.
//
// A swarm service is reached by name. In vip mode the name resolves to one
// virtual IP and IPVS picks a task per new TCP connection; in dnsrr mode the
// name resolves to every task's IP. A client that keeps one connection alive
// forever talks to one task forever in both modes (the tutorial turned
// keep-alives off for that reason). The Transport here keeps connections alive
// but retires them after a number of requests, and dials the resolved addresses
// in rotation, so that every new connection lands on the next task: IPVS does
// the rotation in vip mode, the dialer does it in dnsrr mode. A dial that fails
// moves on to the next address, and a request whose connection could not be
// made, or broke before any answer came, is retried once when its method is
// idempotent (the retry's new connection goes to another task).
package lbclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// Config tunes a Transport. Zero fields take defaults.
type Config struct {
	// RequestsPerConn retires a connection after about this many requests
	// (1 = a new connection per request, no keep-alive). Default 4.
	RequestsPerConn int
	// DialTimeout bounds one connection attempt. Default 1s.
	DialTimeout time.Duration
	// MaxDialAttempts bounds how many resolved addresses one dial tries. Default 3.
	MaxDialAttempts int
	// RetryIdempotent retries once a request whose connection failed or broke
	// before an answer, when its method is idempotent and its body can be
	// replayed. Timeouts are not retried. Default true via New.
	RetryIdempotent bool
	// ResponseHeaderTimeout bounds the wait for an answer's headers. Default 30s.
	ResponseHeaderTimeout time.Duration
	// Lookup resolves a host name; default net.DefaultResolver (IPv4).
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Transport is an http.RoundTripper; see the package comment.
type Transport struct {
	cfg      Config
	base     *http.Transport
	requests atomic.Uint64
	next     atomic.Uint64
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a Transport with retries on and cfg's other fields defaulted.
func New(cfg Config) *Transport {
	cfg.RetryIdempotent = true
	return NewWithoutRetry(cfg)
}

// NewWithoutRetry is New without the request-level retry (cfg.RetryIdempotent
// is used as given).
func NewWithoutRetry(cfg Config) *Transport {
	if cfg.RequestsPerConn <= 0 {
		cfg.RequestsPerConn = 4
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.MaxDialAttempts <= 0 {
		cfg.MaxDialAttempts = 3
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 30 * time.Second
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		}
	}
	t := &Transport{cfg: cfg}
	t.base = &http.Transport{
		DialContext:           t.dial,
		DisableKeepAlives:     cfg.RequestsPerConn == 1,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return t
}

// RoundTrip sends req, retiring its connection after it when the connection
// has served its share, and retrying once on a failed or broken connection.
//
// A round trip that failed before any byte of an answer came is retried (for
// an idempotent request): its connection could not be made, or it was closed
// or reset under the request. The second happens when a task stops: closing
// its listener resets the connections still waiting in its accept queue, and
// a request sent on such a fresh connection reads EOF ("server closed idle
// connection" when it comes before the request is written). http.Transport
// retries those only on reused connections. A timeout is not retried: the
// server may still be working on the request, and a retry would double the
// wait.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req
	if n := t.cfg.RequestsPerConn; n > 1 && t.requests.Add(1)%uint64(n) == 0 {
		out = req.Clone(req.Context())
		out.Close = true
	}
	mayRetry := t.cfg.RetryIdempotent && replayable(req)
	var answered atomic.Bool
	if mayRetry {
		out = out.WithContext(httptrace.WithClientTrace(out.Context(), &httptrace.ClientTrace{
			GotFirstResponseByte: func() { answered.Store(true) },
		}))
	}
	resp, err := t.base.RoundTrip(out)
	if err == nil || !mayRetry || answered.Load() || isTimeout(err) || req.Context().Err() != nil {
		return resp, err
	}
	retry := out.WithContext(req.Context())
	if req.GetBody != nil {
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		retry.Body = body
	}
	return t.base.RoundTrip(retry)
}

// CloseIdleConnections closes connections not in use.
func (t *Transport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// dial resolves the host and tries its addresses in rotation.
func (t *Transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return d.DialContext(ctx, network, addr)
	}
	ips, err := t.cfg.Lookup(ctx, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("resolve %s: %w", host, err)}
	}
	if len(ips) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("resolve %s: no addresses", host)}
	}
	ips = slices.Clone(ips)
	slices.SortFunc(ips, netip.Addr.Compare)
	start := int(t.next.Add(1) % uint64(len(ips)))
	attempts := min(len(ips), t.cfg.MaxDialAttempts)
	var errs []error
	for i := 0; i < attempts; i++ {
		ip := ips[(start+i)%len(ips)]
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// isTimeout says whether err is a deadline passing (dial, headers, context).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
