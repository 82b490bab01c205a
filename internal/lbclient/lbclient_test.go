package lbclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// backend is a server on one loopback address; all backends of a test share a
// port, as the tasks of one service do.
type backend struct {
	ip       string
	requests atomic.Int64
	conns    atomic.Int64
	srv      *http.Server
}

func startBackends(t *testing.T, ips ...string) (port string, bs []*backend) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		bs = nil
		var lns []net.Listener
		ok := true
		for i, ip := range ips {
			addr := ip + ":0"
			if i > 0 {
				addr = net.JoinHostPort(ip, port)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				ok = false
				break
			}
			if i == 0 {
				_, port, _ = net.SplitHostPort(ln.Addr().String())
			}
			lns = append(lns, ln)
		}
		if !ok {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for i, ln := range lns {
			b := &backend{ip: ips[i]}
			b.srv = &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b.requests.Add(1)
					_, _ = io.WriteString(w, b.ip)
				}),
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						b.conns.Add(1)
					}
				},
			}
			go func() { _ = b.srv.Serve(ln) }()
			t.Cleanup(func() { _ = b.srv.Close() })
			bs = append(bs, b)
		}
		return port, bs
	}
	t.Fatal("could not bind one port on all loopback addresses")
	return "", nil
}

func staticLookup(ips ...string) func(context.Context, string) ([]netip.Addr, error) {
	return func(context.Context, string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range ips {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRefusingAddressIsSkipped(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	// 127.0.0.4 has nothing listening: the dial is refused and the next address is tried.
	c := &http.Client{Transport: New(Config{Lookup: staticLookup("127.0.0.4", "127.0.0.1")})}
	for i := 0; i < 6; i++ {
		if got := get(t, c, "http://svc:"+port+"/"); got != "127.0.0.1" {
			t.Fatalf("answer from %q", got)
		}
	}
	if bs[0].requests.Load() != 6 {
		t.Fatalf("backend served %d of 6", bs[0].requests.Load())
	}
}

func TestPostIsNotRetried(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	c := &http.Client{Transport: New(Config{Lookup: staticLookup("127.0.0.4")})}
	resp, err := c.Post("http://svc:"+port+"/", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST on a refused connection must fail, not be retried")
	}
	if !isDialError(err) {
		t.Fatalf("want a dial error, got %v", err)
	}
	if bs[0].requests.Load() != 0 {
		t.Fatal("POST reached a backend")
	}
}

// brokenTask listens on 127.0.0.5 at the backends' port and breaks every
// connection it accepts: "closed" or "reset" (linger 0) without an answer, as
// a stopping task does, or "garbage": a broken answer, then closed. It returns
// the port, the good backend on 127.0.0.1 and how many connections it broke.
func brokenTask(t *testing.T, mode string) (string, *backend, *atomic.Int64) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		port, bs := startBackends(t, "127.0.0.1")
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.5", port))
		if err != nil {
			continue
		}
		t.Cleanup(func() { ln.Close() })
		var broken atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				broken.Add(1)
				switch mode {
				case "reset":
					_ = c.(*net.TCPConn).SetLinger(0)
				case "garbage":
					// Answer the request (a GET's head ends with a blank line).
					_, _ = http.ReadRequest(bufio.NewReader(c))
					_, _ = io.WriteString(c, "this is not HTTP\r\n\r\n")
				}
				_ = c.Close()
			}
		}()
		return port, bs[0], &broken
	}
	t.Fatal("could not bind the backends' port on 127.0.0.5")
	return "", nil, nil
}

func TestGetOnABrokenConnectionIsRetriedOnAnotherTask(t *testing.T) {
	for _, mode := range []string{"closed", "reset"} {
		t.Run(mode, func(t *testing.T) {
			port, good, broken := brokenTask(t, mode)
			// Sorted, the lanes are [127.0.0.1 127.0.0.5], taken in turn: every
			// other request goes first to the broken task.
			c := &http.Client{Transport: New(Config{Lookup: staticLookup("127.0.0.5", "127.0.0.1")})}
			for i := 0; i < 4; i++ {
				if got := get(t, c, "http://svc:"+port+"/"); got != "127.0.0.1" {
					t.Fatalf("answer from %q", got)
				}
			}
			if broken.Load() == 0 {
				t.Fatal("no request reached the broken task: the test proves nothing")
			}
			if good.requests.Load() != 4 {
				t.Fatalf("the good task served %d of 4", good.requests.Load())
			}
		})
	}
}

func TestPostOnABrokenConnectionIsNotRetried(t *testing.T) {
	port, good, broken := brokenTask(t, "closed")
	c := &http.Client{Transport: New(Config{Lookup: staticLookup("127.0.0.5")})}
	resp, err := c.Post("http://svc:"+port+"/", "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST on a broken connection must fail, not be retried")
	}
	if broken.Load() != 1 || good.requests.Load() != 0 {
		t.Fatalf("broken task saw %d connections, good task %d requests; want 1 and 0", broken.Load(), good.requests.Load())
	}
}

func TestBrokenAnswerIsNotRetried(t *testing.T) {
	// The task answered: whatever it did with the request is done, so a GET
	// that got a broken answer fails rather than being sent twice.
	port, good, broken := brokenTask(t, "garbage")
	c := &http.Client{Transport: New(Config{Lookup: staticLookup("127.0.0.5")})}
	resp, err := c.Get("http://svc:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("want the malformed answer reported")
	}
	if broken.Load() != 1 || good.requests.Load() != 0 {
		t.Fatalf("broken task saw %d connections, good task %d requests; want 1 and 0 (%v)", broken.Load(), good.requests.Load(), err)
	}
}

func TestTimeoutIsNotRetried(t *testing.T) {
	// A task that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	var mu sync.Mutex
	var held []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	c := &http.Client{Transport: New(Config{ResponseHeaderTimeout: 50 * time.Millisecond, Lookup: staticLookup("127.0.0.1")})}
	resp, err := c.Get("http://svc:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("want a timeout")
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for one timed-out GET, want 1 (no retry)", n)
	}
}

func TestResolveFailureIsADialError(t *testing.T) {
	c := &http.Client{Transport: New(Config{Lookup: func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("no such host")
	}})}
	_, err := c.Get("http://svc:" + strconv.Itoa(1) + "/")
	if err == nil || !isDialError(err) {
		t.Fatalf("want a dial error, got %v", err)
	}
}

// switchLookup answers what was last set.
type switchLookup struct {
	mu  sync.Mutex
	ips []string
}

func (s *switchLookup) set(ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips = ips
}

func (s *switchLookup) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	s.mu.Lock()
	ips := s.ips
	s.mu.Unlock()
	return staticLookup(ips...)(ctx, host)
}

// quiet never refreshes on its own: the tests call Refresh.
func quiet(l func(context.Context, string) ([]netip.Addr, error)) Config {
	return Config{Lookup: l, RefreshInterval: time.Hour}
}

func TestExactRotationOverTasksOnKeptConnections(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, bs := startBackends(t, ips...)
	c := &http.Client{Transport: New(quiet(staticLookup(ips[3], ips[1], ips[0], ips[2])))}
	const rounds = 25
	var seq []string
	for i := 0; i < rounds*len(ips); i++ {
		seq = append(seq, get(t, c, "http://svc:"+port+"/"))
	}
	for i, got := range seq {
		if want := ips[i%len(ips)]; got != want {
			t.Fatalf("request %d went to %s, want %s (rotation over sorted tasks): %v", i, got, want, seq[:i+1])
		}
	}
	for _, b := range bs {
		if b.requests.Load() != rounds || b.conns.Load() != 1 {
			t.Errorf("%s: %d requests on %d connections, want %d on 1", b.ip, b.requests.Load(), b.conns.Load(), rounds)
		}
	}
}

func TestConcurrentCallsSpreadEvenly(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2"}
	port, bs := startBackends(t, ips...)
	c := &http.Client{Transport: New(quiet(staticLookup(ips...)))}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				resp, err := c.Get("http://svc:" + port + "/")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	var conns int64
	for _, b := range bs {
		conns += b.conns.Load()
		if got := b.requests.Load(); got != 100 {
			t.Errorf("%s served %d of 200 requests, want 100", b.ip, got)
		}
	}
	if conns > 16 {
		t.Errorf("%d connections for 8 concurrent callers: connections are not kept", conns)
	}
}

func TestNewTaskGetsTrafficAfterRefresh(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	sw := &switchLookup{}
	sw.set("127.0.0.1", "127.0.0.2")
	tr := New(quiet(sw.lookup))
	c := &http.Client{Transport: tr}
	for i := 0; i < 10; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	if n := bs[2].requests.Load(); n != 0 {
		t.Fatalf("the task not yet in DNS got %d requests", n)
	}
	sw.set("127.0.0.1", "127.0.0.2", "127.0.0.3")
	tr.Refresh(context.Background())
	before := [3]int64{bs[0].requests.Load(), bs[1].requests.Load(), bs[2].requests.Load()}
	for i := 0; i < 30; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	for i, b := range bs {
		if got := b.requests.Load() - before[i]; got != 10 {
			t.Errorf("%s got %d of 30 requests after the refresh, want 10", b.ip, got)
		}
	}
	if got := tr.Tasks("svc:" + port); len(got) != 3 {
		t.Errorf("Tasks = %v, want 3", got)
	}
}

func TestRemovedTaskIsDrainedWithoutFailure(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	// The leaving task's handler is slow, so requests are in flight on it when
	// it leaves DNS; they must finish before it stops.
	release := make(chan struct{})
	var slowStarted atomic.Int64
	bs[1].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs[1].requests.Add(1)
		slowStarted.Add(1)
		<-release
		_, _ = io.WriteString(w, bs[1].ip)
	})
	sw := &switchLookup{}
	sw.set("127.0.0.1", "127.0.0.2", "127.0.0.3")
	tr := New(quiet(sw.lookup))
	c := &http.Client{Transport: tr}
	var failed atomic.Int64
	var wg sync.WaitGroup
	call := func() {
		defer wg.Done()
		resp, err := c.Get("http://svc:" + port + "/")
		if err != nil {
			failed.Add(1)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed.Add(1)
		}
	}
	for i := 0; i < 9; i++ {
		wg.Add(1)
		go call()
	}
	for slowStarted.Load() < 3 {
		runtime.Gosched()
	}
	sw.set("127.0.0.1", "127.0.0.3")
	tr.Refresh(context.Background())
	leftAt := bs[1].requests.Load()
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go call()
	}
	close(release) // the leaving task finishes what it has, then stops gracefully
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bs[1].srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go call()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed while a task was drained", n)
	}
	if got := bs[1].requests.Load(); got != leftAt {
		t.Fatalf("the removed task got %d requests after it left DNS", got-leftAt)
	}
	if tr.Stats().LanesRetired != 1 {
		t.Fatalf("retired %d lanes, want 1", tr.Stats().LanesRetired)
	}
}

func TestAdmissionBoundAnswersOverloadedAtOnce(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	hold := make(chan struct{})
	var started atomic.Int64
	for _, b := range bs {
		b.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started.Add(1)
			<-hold
		})
	}
	cfg := quiet(staticLookup("127.0.0.1", "127.0.0.2"))
	cfg.MaxInFlightPerTask = 3
	tr := New(cfg)
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.Get("http://svc:" + port + "/"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	for started.Load() < 6 {
		runtime.Gosched()
	}
	// Both tasks carry their bound: more requests fail at once, without
	// reaching a task, however many there are.
	for i := 0; i < 5; i++ {
		_, err := c.Get("http://svc:" + port + "/")
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("request %d beyond the bound: %v, want ErrOverloaded", i, err)
		}
	}
	if got := started.Load(); got != 6 {
		t.Fatalf("%d requests reached the tasks, want 6", got)
	}
	if got := tr.Stats().Overloaded; got != 5 {
		t.Fatalf("Overloaded = %d, want 5", got)
	}
	close(hold)
	wg.Wait()
	// Once answered, the slots are free again.
	for i := 0; i < 6; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
}

func TestFullTaskOverflowsToTheNext(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	hold := make(chan struct{})
	var held atomic.Int64
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs[0].requests.Add(1)
		held.Add(1)
		<-hold
	})
	cfg := quiet(staticLookup("127.0.0.1", "127.0.0.2"))
	cfg.MaxInFlightPerTask = 1
	c := &http.Client{Transport: New(cfg)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := c.Get("http://svc:" + port + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	for held.Load() < 1 {
		runtime.Gosched()
	}
	// The next turn is 127.0.0.2's, the one after 127.0.0.1's: it is full, so
	// both go to 127.0.0.2.
	for i := 0; i < 2; i++ {
		if got := get(t, c, "http://svc:"+port+"/"); got != "127.0.0.2" {
			t.Fatalf("answer from %q", got)
		}
	}
	close(hold)
	<-done
}

func TestVIPLanesAreRecycledByAge(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := quiet(staticLookup("127.0.0.1"))
	cfg.VIPLanes, cfg.VIPMaxAge, cfg.Now = 4, 4*time.Second, clock
	tr := New(cfg)
	c := &http.Client{Transport: tr}
	for i := 0; i < 8; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	if got := bs[0].conns.Load(); got != 4 {
		t.Fatalf("%d connections for 4 lanes, want 4", got)
	}
	mu.Lock()
	now = now.Add(4 * time.Second) // every lane has reached its age
	mu.Unlock()
	tr.Refresh(context.Background())
	for i := 0; i < 8; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	if got := bs[0].conns.Load(); got != 8 {
		t.Fatalf("%d connections after every lane aged out, want 8 (new ones)", got)
	}
	if got := tr.Stats().LanesRetired; got != 4 {
		t.Fatalf("retired %d lanes, want 4", got)
	}
}

func TestLookupFailureKeepsTheLastSet(t *testing.T) {
	port, _ := startBackends(t, "127.0.0.1", "127.0.0.2")
	var fail atomic.Bool
	tr := New(quiet(func(ctx context.Context, h string) ([]netip.Addr, error) {
		if fail.Load() {
			return nil, errors.New("dns down")
		}
		return staticLookup("127.0.0.1", "127.0.0.2")(ctx, h)
	}))
	c := &http.Client{Transport: tr}
	get(t, c, "http://svc:"+port+"/")
	fail.Store(true)
	tr.Refresh(context.Background())
	for i := 0; i < 4; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	if s := tr.Stats(); s.RefreshErrors != 1 {
		t.Fatalf("RefreshErrors = %d, want 1", s.RefreshErrors)
	}
}

func TestTooManyHostsIsAnError(t *testing.T) {
	cfg := quiet(staticLookup("127.0.0.1"))
	cfg.MaxHosts = 1
	tr := New(cfg)
	port, _ := startBackends(t, "127.0.0.1")
	c := &http.Client{Transport: tr}
	get(t, c, "http://a:"+port+"/")
	if _, err := c.Get("http://b:" + port + "/"); !errors.Is(err, ErrTooManyHosts) {
		t.Fatalf("second host: %v, want ErrTooManyHosts", err)
	}
}

func TestRetryableErrors(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"dial timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, true},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, true},
		{"peer gone (user timeout)", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}, true},
		{"answer deadline", timeoutErr{}, false},
		{"context deadline", context.DeadlineExceeded, false},
	}
	for _, c := range cases {
		if got := retryable(c.err); got != c.want {
			t.Errorf("%s: retryable = %v, want %v", c.name, got, c.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTwoTasksLeavingAtOnceFailNoRequest(t *testing.T) {
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, bs := startBackends(t, ips...)
	sw := &switchLookup{}
	sw.set(ips...)
	tr := New(quiet(sw.lookup))
	c := &http.Client{Transport: tr}
	for i := 0; i < 8; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	// Scale 4 -> 2: two tasks leave DNS and stop before the next periodic
	// refresh; the transport learns it from the failures.
	sw.set(ips[0], ips[2])
	_ = bs[1].srv.Close()
	_ = bs[3].srv.Close()
	before := bs[0].requests.Load() + bs[2].requests.Load()
	for i := 0; i < 20; i++ {
		resp, err := c.Get("http://svc:" + port + "/")
		if err != nil {
			t.Fatalf("request %d failed: %v", i, err)
		}
		resp.Body.Close()
	}
	if got := bs[0].requests.Load() + bs[2].requests.Load() - before; got != 20 {
		t.Fatalf("the remaining tasks served %d of 20", got)
	}
	if tr.Stats().Retries == 0 {
		t.Fatal("no request met a stopped task: the test proves nothing")
	}
}

func TestLaneThatFailedToConnectIsPassedOver(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	// 127.0.0.3 refuses; it stays in DNS (a task that died but is not yet removed).
	cfg := quiet(staticLookup("127.0.0.1", "127.0.0.2", "127.0.0.3"))
	cfg.DownFor = time.Hour
	tr := New(cfg)
	c := &http.Client{Transport: tr}
	for i := 0; i < 30; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	if got := bs[0].requests.Load() + bs[1].requests.Load(); got != 30 {
		t.Fatalf("live tasks served %d of 30", got)
	}
	// Without passing over, every third request would meet the refusing task.
	if r := tr.Stats().Retries; r != 1 {
		t.Fatalf("%d retries for 30 requests, want 1 (the refusing task is passed over after its first failure)", r)
	}
}
