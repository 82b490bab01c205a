// Package lbclient builds HTTP transports that spread calls made to a service
// name across the service's swarm tasks, in both endpoint modes, over
// connections that stay alive.
//
// A swarm service is reached by name. In dnsrr mode the name resolves to every
// task's IP; in vip mode it resolves to one virtual IP and IPVS picks a task
// per new TCP connection. The Transport resolves the name about once a
// second (in the background, never on a request's path; at once after an
// error), keeps the last good answer, and builds "lanes" from it:
//
//   - several addresses (dnsrr): one lane per task IP, each its own pool of
//     kept-alive connections dialled to that IP. Successive requests take the
//     lanes in turn, so N tasks get exactly 1/N of the requests each. A task
//     that leaves the answer is no longer picked; its lane is drained (requests
//     in flight finish, idle connections close). A new task gets requests from
//     the next refresh on.
//   - one address (vip, or a literal IP): a fixed small set of lanes to that
//     address, taken in turn. IPVS spreads their connections over the tasks;
//     each lane is replaced when it reaches a maximum age, so a new replica gets
//     connections, and so requests, within seconds.
//
// A lane may carry at most MaxInFlightPerTask requests at once; a request
// whose lane is full takes the next one, and when every lane is full
// RoundTrip fails at once with ErrOverloaded (the edge answers 503).
//
// A request whose connection could not be made, or broke before any byte of
// an answer came, is retried when its method is idempotent, and the name is
// resolved again: once on the next lane (another task) in dnsrr mode; in vip
// mode up to three times, each on a connection known to reach a live task
// (see retryVIP in retry.go).
package lbclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrOverloaded is returned, at once, when every task already carries its
// bound of in-flight requests.
var ErrOverloaded = errors.New("lbclient: every task is at its in-flight bound")

// retryRefreshAge: a failing request resolves the name again unless that was
// done this recently.
const retryRefreshAge = 100 * time.Millisecond

// DefaultMaxConnWait is Config.MaxConnWait's default.
const DefaultMaxConnWait = 50 * time.Millisecond

// ErrTooManyHosts is returned for a host beyond Config.MaxHosts.
var ErrTooManyHosts = errors.New("lbclient: too many distinct hosts")

// Config tunes a Transport. Zero fields take defaults.
type Config struct {
	// DialTimeout bounds one connection attempt. Default 1s.
	DialTimeout time.Duration
	// RetryIdempotent retries once, on another lane, a request whose connection
	// failed or broke before an answer, when its method is idempotent and its
	// body can be replayed. Timeouts are not retried. Default true via New.
	RetryIdempotent bool
	// ResponseHeaderTimeout bounds the wait for an answer's headers. Default 30s.
	ResponseHeaderTimeout time.Duration
	// Lookup resolves a host name; default net.DefaultResolver (IPv4).
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// RefreshInterval is how often a name in use is resolved again. Default 1s.
	RefreshInterval time.Duration
	// VIPLanes is how many lanes a name resolving to one address gets. Default 8.
	VIPLanes int
	// VIPMaxAge is how long such a lane lives before it is replaced. Default 5s.
	VIPMaxAge time.Duration
	// MaxInFlightPerTask bounds the requests one lane carries at once (0: no
	// bound), those waiting for a connection included.
	MaxInFlightPerTask int
	// MaxConnsPerTask bounds one lane's connections (0: no bound, i.e. at
	// most MaxInFlightPerTask). A request finding the lane at its bound with
	// no connection idle waits for one to come back, until its context
	// ends or MaxConnWait passes. Each connection costs its task a goroutine
	// and buffers even when idle; a task answering on one P gains nothing
	// from more connections than it overlaps waits. A vip retry dials past
	// the bound.
	MaxConnsPerTask int
	// MaxConnWait is how long a request waits at MaxConnsPerTask for a
	// connection to come back before it dials one past the bound. A busy
	// task hands its connections back within it; one whose requests wait on
	// a slow dependency (a quote call timing out) does not, and queueing
	// behind them would turn its slowness into seconds of waiting and 503s.
	// Default DefaultMaxConnWait.
	MaxConnWait time.Duration
	// MaxIdlePerTask is how many idle connections a lane keeps. Default 64.
	MaxIdlePerTask int
	// IdleConnTimeout closes a connection idle this long. Default 30s.
	IdleConnTimeout time.Duration
	// UserTimeout fails a connection whose sent data is not acknowledged
	// within it (TCP_USER_TIMEOUT, Linux): its peer is gone, and the request
	// is retried on another lane as a broken connection. Default 2s.
	UserTimeout time.Duration
	// MaxHosts bounds the distinct host:port pairs served. Default 16.
	MaxHosts int
	// DownFor is how long a lane whose connection could not be made (or whose
	// peer vanished) is passed over, unless no other lane can take a
	// request. Default 2s.
	DownFor time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Stats counts what a Transport did.
type Stats struct {
	Refreshes, RefreshErrors, Retries, Overloaded, LanesRetired uint64
}

// Transport is an http.RoundTripper; see the package comment.
type Transport struct {
	cfg   Config
	mu    sync.Mutex                       // serialises adding a pool
	pools atomic.Pointer[map[string]*pool] // copied on write

	refreshes, refreshErrors, retries, overloaded, retired atomic.Uint64

	// dialHook, when set (tests), makes the lanes' connections instead of a
	// net.Dialer: a fake IPVS on loopback.
	dialHook func(ctx context.Context, network, addr string) (net.Conn, error)
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
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 30 * time.Second
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		}
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = time.Second
	}
	if cfg.VIPLanes <= 0 {
		cfg.VIPLanes = 8
	}
	if cfg.VIPMaxAge <= 0 {
		cfg.VIPMaxAge = 5 * time.Second
	}
	if cfg.MaxInFlightPerTask < 0 {
		cfg.MaxInFlightPerTask = 0
	}
	if cfg.MaxConnsPerTask < 0 {
		cfg.MaxConnsPerTask = 0
	}
	if cfg.MaxConnWait <= 0 {
		cfg.MaxConnWait = DefaultMaxConnWait
	}
	if cfg.MaxIdlePerTask <= 0 {
		cfg.MaxIdlePerTask = 64
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = 30 * time.Second
	}
	if cfg.UserTimeout <= 0 {
		cfg.UserTimeout = 2 * time.Second
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = 16
	}
	if cfg.DownFor <= 0 {
		cfg.DownFor = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Transport{cfg: cfg}
	t.pools.Store(&map[string]*pool{})
	return t
}

// Stats returns the counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Refreshes: t.refreshes.Load(), RefreshErrors: t.refreshErrors.Load(),
		Retries: t.retries.Load(), Overloaded: t.overloaded.Load(), LanesRetired: t.retired.Load(),
	}
}

// RoundTrip sends req on the next lane of its host, and retries it once on
// the lane after when it failed before any answer (see the package comment).
//
// A round trip that failed before any byte of an answer came is retried (for
// an idempotent request): its connection could not be made, or it was closed
// or reset under the request. The second happens when a task stops: closing
// its listener resets the connections still waiting in its accept queue, and
// a request sent on such a fresh connection reads EOF ("server closed idle
// connection" when it comes before the request is written). http.Transport
// retries those only on reused connections, and on the same task. A timeout
// is not retried: the server may still be working on the request, and a
// retry would double the wait.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	p, err := t.pool(req.Context(), req.URL)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	set := p.current()
	l, idx := set.pick(p.next.Add(1)-1, nil, t.cfg.MaxInFlightPerTask)
	if l == nil {
		t.overloaded.Add(1)
		closeBody(req)
		return nil, ErrOverloaded
	}
	mayRetry := t.cfg.RetryIdempotent && Replayable(req) && len(set.lanes) > 0
	started := time.Now()
	resp, answered, err := l.roundTrip(req)
	if err == nil {
		return resp, nil
	}
	if cerr := req.Context().Err(); cerr != nil {
		return nil, fmt.Errorf("%w (%v)", cerr, err)
	}
	if !retryable(err) {
		return nil, err
	}
	if isDialError(err) || errors.Is(err, syscall.ETIMEDOUT) {
		l.markDown(time.Now().Add(t.cfg.DownFor)) // skipped while it stays in the set
	}
	if !mayRetry || answered {
		p.refreshSoon(t) // the set may have changed under us
		return nil, err
	}
	// The task may have left (scale down, roll): resolve again now, so the
	// retry goes to a task that is still there.
	rctx, cancel := context.WithTimeout(req.Context(), t.cfg.DialTimeout)
	_ = p.refresh(rctx, t, false, retryRefreshAge)
	cancel()
	if set := p.current(); len(set.addrs) == 1 {
		return t.retryVIP(req, set, l, idx, started, err)
	}
	l2, _ := p.current().pick(uint64(idx)+1, l, t.cfg.MaxInFlightPerTask)
	if l2 == nil {
		return nil, err
	}
	retry := req
	if req.GetBody != nil {
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		retry = req.Clone(req.Context())
		retry.Body = body
	}
	t.retries.Add(1)
	resp, _, err = l2.roundTrip(retry)
	return resp, err
}

// Refresh resolves every host in use now and rebuilds its lanes.
func (t *Transport) Refresh(ctx context.Context) {
	for _, p := range *t.pools.Load() {
		_ = p.refresh(ctx, t, false, 0)
	}
}

// Tasks reports the addresses host ("name:port") is balanced over now.
func (t *Transport) Tasks(host string) []netip.Addr {
	p := (*t.pools.Load())[host]
	if p == nil {
		return nil
	}
	return slices.Clone(p.current().addrs)
}

// CloseIdleConnections closes connections not in use, retired lanes' too.
func (t *Transport) CloseIdleConnections() {
	for _, p := range *t.pools.Load() {
		p.mu.Lock()
		for _, l := range p.current().lanes {
			l.closeIdle(false)
		}
		for _, l := range p.retired {
			l.closeIdle(true)
		}
		p.mu.Unlock()
	}
}

// pool returns the lanes of u's host, resolving it the first time.
func (t *Transport) pool(ctx context.Context, u *url.URL) (*pool, error) {
	key := u.Host
	p := (*t.pools.Load())[key]
	if p == nil {
		var err error
		if p, err = t.addPool(key, u); err != nil {
			return nil, err
		}
	}
	if len(p.current().lanes) == 0 {
		// Nothing known yet (first use, or every resolution failed so far):
		// resolve on the request's path.
		if err := p.refresh(ctx, t, true, 0); err != nil && len(p.current().lanes) == 0 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
		return p, nil
	}
	if now := t.cfg.Now().UnixNano(); now-p.lastRefresh.Load() >= int64(t.cfg.RefreshInterval) {
		p.refreshSoon(t)
	}
	return p, nil
}

func (t *Transport) addPool(key string, u *url.URL) (*pool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.pools.Load()
	if p := old[key]; p != nil {
		return p, nil
	}
	if len(old) >= t.cfg.MaxHosts {
		return nil, ErrTooManyHosts
	}
	host, port, err := net.SplitHostPort(key)
	if err != nil {
		host, port = u.Hostname(), defaultPort(u.Scheme)
	}
	p := &pool{host: host, port: port}
	p.set.Store(&laneSet{})
	m := make(map[string]*pool, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[key] = p
	t.pools.Store(&m)
	return p, nil
}

// pool is the lanes of one host:port.
type pool struct {
	host, port  string
	set         atomic.Pointer[laneSet]
	next        atomic.Uint64
	lastRefresh atomic.Int64 // UnixNano of the last resolution started
	refreshing  atomic.Bool

	mu      sync.Mutex // serialises refresh; guards retired
	retired []*lane
}

func (p *pool) current() *laneSet { return p.set.Load() }

// refreshSoon resolves again in the background unless that is under way.
func (p *pool) refreshSoon(t *Transport) {
	if !p.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer p.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 2*t.cfg.DialTimeout)
		defer cancel()
		_ = p.refresh(ctx, t, false, 0)
	}()
}

// refresh resolves the host and installs the lanes for the answer. On error
// or an empty answer the last good set stays. With ifEmpty it does nothing
// once a set is known (concurrent first requests resolve once); nor when the
// last resolution is younger than minAge (failing requests resolve once).
func (p *pool) refresh(ctx context.Context, t *Transport, ifEmpty bool, minAge time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ifEmpty && len(p.current().lanes) > 0 {
		return nil
	}
	now := t.cfg.Now()
	if minAge > 0 && now.UnixNano()-p.lastRefresh.Load() < int64(minAge) {
		return nil
	}
	p.lastRefresh.Store(now.UnixNano())
	t.refreshes.Add(1)
	addrs, err := p.resolve(ctx, t)
	if err != nil {
		t.refreshErrors.Add(1)
		p.sweep()
		return err
	}
	old := p.current()
	next := &laneSet{addrs: addrs}
	if len(addrs) == 1 {
		next.lanes = p.vipLanes(t, old, addrs[0], now)
	} else {
		next.lanes = p.taskLanes(t, old, addrs, now)
	}
	kept := make(map[*lane]bool, len(next.lanes))
	for _, l := range next.lanes {
		kept[l] = true
	}
	p.set.Store(next)
	for _, l := range old.lanes {
		if !kept[l] {
			t.retired.Add(1)
			p.retired = append(p.retired, l)
		}
	}
	p.sweep()
	return nil
}

// sweep closes the retired lanes' idle connections and forgets the lanes
// that carry no request any more. A request that picked a lane just before it
// was retired finishes on it; its connection then closes after
// IdleConnTimeout at the latest.
func (p *pool) sweep() {
	live := p.retired[:0]
	for _, l := range p.retired {
		l.closeIdle(true) // and connections that come back later close
		if l.inflight.Load() > 0 {
			live = append(live, l)
		}
	}
	clear(p.retired[len(live):])
	p.retired = live
}

func (p *pool) resolve(ctx context.Context, t *Transport) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(p.host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ips, err := t.cfg.Lookup(ctx, p.host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", p.host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", p.host)
	}
	ips = slices.Clone(ips)
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips), nil
}

// taskLanes is one lane per address, reusing the lanes of addresses kept.
func (p *pool) taskLanes(t *Transport, old *laneSet, addrs []netip.Addr, now time.Time) []*lane {
	byAddr := make(map[netip.Addr]*lane, len(old.lanes))
	if len(old.addrs) > 1 {
		for _, l := range old.lanes {
			byAddr[l.addr] = l
		}
	}
	lanes := make([]*lane, 0, len(addrs))
	for _, a := range addrs {
		l := byAddr[a]
		if l == nil {
			l = newLane(t, a, p.port, now)
		}
		lanes = append(lanes, l)
	}
	return lanes
}

// vipLanes keeps VIPLanes lanes to addr, replacing those older than
// VIPMaxAge. The first set is born staggered so that they age out one by one.
func (p *pool) vipLanes(t *Transport, old *laneSet, addr netip.Addr, now time.Time) []*lane {
	n := t.cfg.VIPLanes
	lanes := make([]*lane, 0, n)
	if len(old.addrs) == 1 && old.addrs[0] == addr {
		for _, l := range old.lanes {
			if now.Sub(l.born) < t.cfg.VIPMaxAge {
				lanes = append(lanes, l)
			} else {
				lanes = append(lanes, newLane(t, addr, p.port, now))
			}
		}
		return lanes
	}
	step := t.cfg.VIPMaxAge / time.Duration(n)
	for i := 0; i < n; i++ {
		lanes = append(lanes, newLane(t, addr, p.port, now.Add(-time.Duration(i)*step)))
	}
	return lanes
}

// laneSet is one resolution's lanes, never changed once published.
type laneSet struct {
	addrs []netip.Addr
	lanes []*lane
}

// pick returns the lane at i (mod n), or the next ones when it is full,
// marked down or skip's (skip's address when the set has several), having
// counted the request in flight on it; nil when all are full. Lanes marked
// down are taken only when no other can be.
func (s *laneSet) pick(i uint64, skip *lane, max int) (*lane, int) {
	if l, idx := s.pickPass(i, skip, max, true); l != nil {
		return l, idx
	}
	return s.pickPass(i, skip, max, false)
}

func (s *laneSet) pickPass(i uint64, skip *lane, max int, avoidDown bool) (*lane, int) {
	n := len(s.lanes)
	var now int64
	for k := 0; k < n; k++ {
		idx := int((i + uint64(k)) % uint64(n))
		l := s.lanes[idx]
		if skip != nil && n > 1 && (l == skip || (len(s.addrs) > 1 && l.addr == skip.addr)) {
			continue
		}
		if d := l.downUntil.Load(); avoidDown && d != 0 {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			if now < d {
				continue
			}
		}
		if v := l.inflight.Add(1); max > 0 && v > int64(max) {
			l.inflight.Add(-1)
			continue
		}
		return l, idx
	}
	return nil, 0
}

// isTimeout says whether err is a deadline passing (dial, headers, context).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryable says whether err may have left the request unprocessed: not a
// deadline passing while the task may still be working on it. A dial error
// (even a dial timeout) sent nothing; ETIMEDOUT is the connection's peer not
// acknowledging what was sent (UserTimeout): the peer is gone.
func retryable(err error) bool {
	return !isTimeout(err) || isDialError(err) || errors.Is(err, syscall.ETIMEDOUT)
}

// isDialError says whether err happened making a connection: nothing was
// sent, so another task may be tried even after a dial timeout.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
