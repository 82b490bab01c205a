package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// userConn is one user's connection. A request is written and its answer
// read on the user's own goroutine: net/http.Transport hands every request
// to two goroutines of its own (writeLoop, readLoop) and back, and with 1000
// users on a 2-core machine those hand-offs were the generator's largest
// cost (193 µs of CPU per request, its wake-ups adding to every latency it
// measured). What it keeps from net/http: one connection per user, reused
// while the server allows (keep-alive), a fresh one after an error, and one
// retry on a fresh connection when a reused one turns out closed before any
// byte of the answer came (the server closed it while idle), as
// net/http.Transport does for a GET.
type userConn struct {
	cfg    *Config
	target target
	dialer net.Dialer

	conn   net.Conn
	read   int64 // bytes read on conn since the request was written
	br     *bufio.Reader
	used   int // requests answered on conn
	stop   func() bool
	reqBuf []byte
}

// target is where the requests go, parsed once from the base URL.
type target struct {
	addr   string      // host:port to dial
	host   string      // the Host header
	prefix string      // the base URL's path, without a trailing /
	tls    *tls.Config // nil for http
}

func parseTarget(base string) (target, error) {
	u, err := url.Parse(base)
	if err != nil {
		return target{}, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	t := target{addr: net.JoinHostPort(u.Hostname(), port), host: u.Host, prefix: strings.TrimRight(u.EscapedPath(), "/")}
	if u.Scheme == "https" {
		t.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return t, nil
}

func newUserConn(cfg *Config, t target) *userConn {
	return &userConn{cfg: cfg, target: t, dialer: net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}}
}

// get sends GET path (already escaped) and reads the answer, its body cut at
// maxBody (the rest drained up to maxDrain). It returns the status and body.
func (c *userConn) get(ctx context.Context, path string, deadline time.Time) (int, []byte, error) {
	reused := c.conn != nil
	status, body, err := c.roundTrip(ctx, path, deadline)
	if err != nil && reused && c.read == 0 && ctx.Err() == nil && time.Now().Before(deadline) && closedBeforeAnswer(err) {
		status, body, err = c.roundTrip(ctx, path, deadline)
	}
	return status, body, err
}

// closedBeforeAnswer: the peer closed or reset the connection.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *userConn) roundTrip(ctx context.Context, path string, deadline time.Time) (status int, body []byte, err error) {
	if c.conn == nil {
		if err := c.dial(ctx, deadline); err != nil {
			return 0, nil, err
		}
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.conn.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	// After the deadline is set: a cancel from now on moves it to the past.
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	c.read = 0
	if _, err := c.conn.Write(c.request(path)); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, nil, err
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	var drained int64
	if err == nil {
		drained, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain+1))
	}
	if err != nil {
		return 0, nil, err
	}
	c.used++
	if drained > maxDrain || resp.Close || !c.cfg.KeepAlive ||
		(c.cfg.MaxRequestsPerConn > 0 && c.used >= c.cfg.MaxRequestsPerConn) {
		c.close()
	}
	return resp.StatusCode, body, nil
}

func (c *userConn) dial(ctx context.Context, deadline time.Time) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, "tcp", c.target.addr)
	if err != nil {
		return err
	}
	if c.target.tls != nil {
		tc := tls.Client(conn, c.target.tls)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return err
		}
		conn = tc
	}
	c.conn = conn
	c.used = 0
	if c.br == nil {
		c.br = bufio.NewReaderSize(countingReader{c}, 4096)
	} else {
		c.br.Reset(countingReader{c})
	}
	// A cancelled run unblocks the connection's I/O at once.
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// close drops the connection; the next request dials a new one.
func (c *userConn) close() {
	if c.conn == nil {
		return
	}
	c.stop()
	c.conn.Close()
	c.conn = nil
}

// request is the request's bytes, built in a buffer kept for the next one.
func (c *userConn) request(path string) []byte {
	b := append(c.reqBuf[:0], "GET "...)
	b = append(b, c.target.prefix...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.target.host...)
	b = append(b, "\r\nAccept: application/json\r\nUser-Agent: goblog-gatling/1\r\n"...)
	if !c.cfg.KeepAlive {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.reqBuf = b
	return b
}

// countingReader reads the user's current connection and counts the bytes.
type countingReader struct{ c *userConn }

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.c.conn.Read(p)
	r.c.read += int64(n)
	return n, err
}

// escapePath puts id into the configured path.
func escapePath(pattern, id string) string {
	return strings.ReplaceAll(pattern, "{id}", url.PathEscape(id))
}
