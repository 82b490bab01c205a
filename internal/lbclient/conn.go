package lbclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// lane is one pool of kept-alive HTTP/1.1 connections, all dialled to one
// address. A request is written and its answer read on the caller's
// goroutine: net/http.Transport's two goroutines per connection and their
// hand-offs cost each request several wake-ups (profiles showed them), and an
// idle connection here holds no goroutine, only its two buffers.
type lane struct {
	addr     netip.Addr
	dialAddr string
	born     time.Time
	cfg      *Config
	dialer   *net.Dialer
	dialFn   func(ctx context.Context, network, addr string) (net.Conn, error)
	inflight atomic.Int64
	// downUntil (UnixNano, 0: never) is when a lane that failed to connect
	// may be picked again.
	downUntil atomic.Int64

	mu   sync.Mutex
	idle []*pconn // most recently used last
	// open counts the lane's connections: idle, carrying a request, or
	// being dialled. With MaxConnsPerTask a request finding none idle and
	// the lane at its bound waits, first come first served, in waiters for
	// a connection handed back (or, nil, for the slot of one that closed,
	// which it then dials). A waiter exists only while no connection is
	// idle: put hands a connection to a waiter before keeping it.
	open    int
	waiters []chan *pconn
	retired bool // connections coming back are closed
}

func newLane(t *Transport, addr netip.Addr, port string, born time.Time) *lane {
	l := &lane{
		addr: addr, dialAddr: net.JoinHostPort(addr.String(), port), born: born, cfg: &t.cfg,
		dialer: &net.Dialer{Timeout: t.cfg.DialTimeout, KeepAlive: 30 * time.Second, Control: setUserTimeout(t.cfg.UserTimeout)},
	}
	l.dialFn = l.dialer.DialContext
	if t.dialHook != nil {
		l.dialFn = t.dialHook
	}
	return l
}

func (l *lane) markDown(until time.Time) { l.downUntil.Store(until.UnixNano()) }

// pconn is one connection with its buffers.
type pconn struct {
	conn     net.Conn
	counted  *countingConn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// countingConn counts the bytes read, so that a failure can be told apart:
// before any byte of an answer (the request may be sent elsewhere) or after.
type countingConn struct {
	net.Conn
	read int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

const bufSize = 4 << 10

// get returns an idle connection (the most recent that is not too old), or
// a new one while the lane is under MaxConnsPerTask, or else waits for one to
// come back (see await).
func (l *lane) get(ctx context.Context) (*pconn, error) {
	now := time.Now()
	l.mu.Lock()
	for len(l.idle) > 0 {
		pc := l.idle[len(l.idle)-1]
		l.idle[len(l.idle)-1] = nil
		l.idle = l.idle[:len(l.idle)-1]
		if now.Sub(pc.lastUsed) < l.cfg.IdleConnTimeout {
			l.mu.Unlock()
			return pc, nil
		}
		l.open-- // no waiter exists while one is idle
		_ = pc.conn.Close()
	}
	if max := l.cfg.MaxConnsPerTask; max <= 0 || l.open < max {
		l.open++
		l.mu.Unlock()
		return l.dialCounted(ctx)
	}
	w := make(chan *pconn, 1)
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	return l.await(ctx, w)
}

// await waits on w, queued among the lane's waiters, for a connection or a
// slot. After MaxConnWait it leaves the queue and dials past the bound: no
// connection came back in time, so the task is holding its requests (a slow
// dependency), not just busy, and queueing behind them would only add to
// their wait.
func (l *lane) await(ctx context.Context, w chan *pconn) (*pconn, error) {
	wait := time.NewTimer(l.cfg.MaxConnWait)
	defer wait.Stop()
	var err error
	select {
	case pc := <-w:
		return l.use(ctx, pc)
	case <-wait.C:
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	if i := slices.Index(l.waiters, w); i >= 0 {
		l.waiters = slices.Delete(l.waiters, i, i+1)
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		l.open++
		l.mu.Unlock()
		return l.dialCounted(ctx)
	}
	l.mu.Unlock()
	pc := <-w // handed one as we stopped waiting
	if err == nil {
		return l.use(ctx, pc)
	}
	if pc != nil {
		l.put(pc) // pass it on
	} else {
		l.release()
	}
	return nil, err
}

// use returns a connection handed to a waiter, or dials one for the slot
// handed instead (nil).
func (l *lane) use(ctx context.Context, pc *pconn) (*pconn, error) {
	if pc == nil {
		return l.dialCounted(ctx)
	}
	return pc, nil
}

// dial makes a new connection for the lane, counted among its open ones
// whatever the bound (a vip retry must not wait).
func (l *lane) dial(ctx context.Context) (*pconn, error) {
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	return l.dialCounted(ctx)
}

// dialCounted makes a connection for a slot already counted in open; the
// slot is released when the dial fails.
func (l *lane) dialCounted(ctx context.Context) (*pconn, error) {
	c, err := l.dialFn(ctx, "tcp", l.dialAddr)
	if err != nil {
		l.release()
		return nil, err
	}
	cc := &countingConn{Conn: c}
	return &pconn{conn: c, counted: cc, br: bufio.NewReaderSize(cc, bufSize), bw: bufio.NewWriterSize(c, bufSize)}, nil
}

// popWaiter takes the longest waiting request's channel, if any. l.mu held.
func (l *lane) popWaiter() chan *pconn {
	if len(l.waiters) == 0 {
		return nil
	}
	w := l.waiters[0]
	l.waiters[0] = nil
	l.waiters = l.waiters[1:]
	return w
}

// put hands pc to the longest waiting request, or keeps it for the next
// one, or closes it.
func (l *lane) put(pc *pconn) {
	pc.lastUsed = time.Now()
	l.mu.Lock()
	if w := l.popWaiter(); w != nil {
		l.mu.Unlock()
		w <- pc
		return
	}
	if l.retired || len(l.idle) >= l.cfg.MaxIdlePerTask {
		l.open--
		l.mu.Unlock()
		_ = pc.conn.Close()
		return
	}
	l.idle = append(l.idle, pc)
	l.mu.Unlock()
}

// discard closes pc, which will not be used again, and frees its slot.
func (l *lane) discard(pc *pconn) {
	_ = pc.conn.Close()
	l.release()
}

// release frees the slot of a connection that closed or could not be made:
// the longest waiting request gets it (and dials), else the lane has one
// connection less.
func (l *lane) release() {
	l.mu.Lock()
	if w := l.popWaiter(); w != nil {
		l.mu.Unlock()
		w <- nil
		return
	}
	l.open--
	l.mu.Unlock()
}

// closeIdle closes the idle connections; retire also closes those that come
// back later.
func (l *lane) closeIdle(retire bool) {
	l.mu.Lock()
	idle := l.idle
	l.idle = nil
	l.open -= len(idle)
	if retire {
		l.retired = true
	}
	l.mu.Unlock()
	for _, pc := range idle {
		_ = pc.conn.Close()
	}
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return now.
var aLongTimeAgo = time.Unix(1, 0)

// errUpgrade: a 101 answer would hand the connection over; not supported.
var errUpgrade = errors.New("lbclient: protocol upgrades are not supported")

// roundTrip sends req on one of the lane's connections. The request counts
// in flight on the lane (counted by pick) until its answer's body is read to
// its end or closed. answered says whether any byte of an answer came.
func (l *lane) roundTrip(req *http.Request) (resp *http.Response, answered bool, err error) {
	pc, err := l.get(req.Context())
	if err != nil {
		l.inflight.Add(-1)
		closeBody(req)
		return nil, false, err
	}
	return l.send(req, pc)
}

// send is roundTrip on the connection pc, which the caller took for the lane.
func (l *lane) send(req *http.Request, pc *pconn) (resp *http.Response, answered bool, err error) {
	ctx := req.Context()
	// Cancellation unblocks the connection's I/O; no goroutine waits for it.
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, bool, error) {
		stop()
		l.discard(pc)
		l.inflight.Add(-1)
		return nil, pc.counted.read > 0, err
	}
	pc.counted.read = 0
	if err := req.Write(pc.bw); err != nil {
		return fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err)
	}
	if t := l.cfg.ResponseHeaderTimeout; t > 0 {
		_ = pc.conn.SetReadDeadline(time.Now().Add(t))
	}
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("lbclient: connection closed before the answer's headers: %w", err)
			}
			return fail(err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errUpgrade)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			continue // informational (100 Continue, 103 Early Hints): the answer follows
		}
		break
	}
	if l.cfg.ResponseHeaderTimeout > 0 {
		_ = pc.conn.SetReadDeadline(time.Time{})
	}
	keep := !resp.Close && !req.Close
	b := &body{rc: resp.Body, l: l, pc: pc, stop: stop, keep: keep}
	if resp.Body == http.NoBody || resp.ContentLength == 0 || req.Method == http.MethodHead {
		// Nothing to read: the connection is free now.
		b.finish(true)
		if resp.Body == nil {
			resp.Body = http.NoBody
		}
		return resp, true, nil
	}
	resp.Body = b
	return resp, true, nil
}

// body hands its connection back once read to its end, or closes it when
// closed early or broken. Close may come from another goroutine while a Read
// is blocked: closing the connection unblocks it.
type body struct {
	rc   io.ReadCloser
	l    *lane
	pc   *pconn
	stop func() bool
	keep bool
	done atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
	}
	return n, err
}

func (b *body) Close() error {
	b.finish(false)
	return nil
}

// finish, once, releases the lane's in-flight count and the connection: kept
// when the answer was read whole and nothing asked to close it.
func (b *body) finish(whole bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	stopped := b.stop()
	if whole && b.keep && stopped {
		b.l.put(b.pc)
	} else {
		b.l.discard(b.pc)
	}
	b.l.inflight.Add(-1)
}

// newestIdle is when the lane's most recently used idle connection finished
// its last answer (zero when none is idle).
func (l *lane) newestIdle() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.idle) == 0 {
		return time.Time{}
	}
	return l.idle[len(l.idle)-1].lastUsed
}

// takeIdleAfter takes the most recently used idle connection if it finished
// an answer after since.
func (l *lane) takeIdleAfter(since time.Time) *pconn {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.idle)
	if n == 0 || !l.idle[n-1].lastUsed.After(since) {
		return nil
	}
	pc := l.idle[n-1]
	l.idle[n-1] = nil
	l.idle = l.idle[:n-1]
	return pc
}

// closeIdleBefore closes the idle connections whose last answer finished
// before since.
func (l *lane) closeIdleBefore(since time.Time) {
	l.mu.Lock()
	var old []*pconn
	kept := l.idle[:0]
	for _, pc := range l.idle {
		if pc.lastUsed.Before(since) {
			old = append(old, pc)
		} else {
			kept = append(kept, pc)
		}
	}
	clear(l.idle[len(kept):])
	l.idle = kept
	l.open -= len(old)
	l.mu.Unlock()
	for _, pc := range old {
		_ = pc.conn.Close()
	}
}
