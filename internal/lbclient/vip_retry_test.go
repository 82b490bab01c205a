package lbclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeIPVS stands in for a service VIP on loopback: every connection made to
// the VIP goes to the next backend in turn (IPVS's round robin). A backend
// marked dead behaves like a task on a node that stopped: a new connection to
// it gets no answer to its SYN (the dial times out after dialTimeout) and a
// kept connection to it takes the request and then fails with ETIMEDOUT
// after userTimeout (TCP_USER_TIMEOUT: nothing is acknowledged). A loopback
// listener cannot do either (the kernel answers for it), hence the fake.
type fakeIPVS struct {
	backends                 []string
	dialTimeout, userTimeout time.Duration

	mu   sync.Mutex
	next int
	dead map[int]bool

	dials, deadDials, deadSends atomic.Int64
}

func newFakeIPVS(port string, dialTimeout, userTimeout time.Duration, ips ...string) *fakeIPVS {
	f := &fakeIPVS{dialTimeout: dialTimeout, userTimeout: userTimeout, dead: map[int]bool{}}
	for _, ip := range ips {
		f.backends = append(f.backends, net.JoinHostPort(ip, port))
	}
	return f
}

func (f *fakeIPVS) kill(i ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range i {
		f.dead[k] = true
	}
}

func (f *fakeIPVS) isDead(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dead[i]
}

func (f *fakeIPVS) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	f.mu.Lock()
	i := f.next % len(f.backends)
	f.next++
	dead := f.dead[i]
	f.mu.Unlock()
	f.dials.Add(1)
	if dead {
		f.deadDials.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(f.dialTimeout):
		}
		return nil, &net.OpError{Op: "dial", Net: network, Err: timeoutErr{}}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, f.backends[i])
	if err != nil {
		return nil, err
	}
	return &ipvsConn{Conn: c, f: f, i: i, closed: make(chan struct{})}, nil
}

// ipvsConn is a connection through the fake VIP to backend i.
type ipvsConn struct {
	net.Conn
	f      *fakeIPVS
	i      int
	once   sync.Once
	closed chan struct{}
}

func (c *ipvsConn) Read(p []byte) (int, error) {
	if c.f.isDead(c.i) {
		c.f.deadSends.Add(1)
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		case <-time.After(c.f.userTimeout):
		}
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}
	}
	return c.Conn.Read(p)
}

func (c *ipvsConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// vipTransport is a Transport to a VIP (127.0.0.9) that fakeIPVS spreads
// over backends on 127.0.0.1 … 127.0.0.4.
func vipTransport(t *testing.T) (tr *Transport, f *fakeIPVS, url string, bs []*backend) {
	t.Helper()
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}
	port, bs := startBackends(t, ips...)
	cfg := quiet(nil)
	cfg.DialTimeout, cfg.UserTimeout = 200*time.Millisecond, 300*time.Millisecond
	cfg.VIPMaxAge = time.Hour
	f = newFakeIPVS(port, cfg.DialTimeout, cfg.UserTimeout, ips...)
	tr = New(cfg)
	tr.dialHook = f.dial
	t.Cleanup(tr.CloseIdleConnections)
	return tr, f, "http://127.0.0.9:" + port + "/", bs
}

func TestVIPRetryReachesALiveTaskWhenTwoStop(t *testing.T) {
	for _, clients := range []int{1, 4} {
		t.Run(fmtInt(clients)+" clients", func(t *testing.T) {
			tr, f, url, bs := vipTransport(t)
			c := &http.Client{Transport: tr}
			// Every lane gets kept connections, spread by the fake IPVS over
			// the four tasks.
			for i := 0; i < 32; i++ {
				get(t, c, url)
			}
			// The node running tasks 2 and 3 (next to each other in IPVS's
			// turn) stops; they stay behind the VIP.
			f.kill(1, 2)
			before := bs[0].requests.Load() + bs[3].requests.Load()
			const each = 40
			var wg sync.WaitGroup
			var failed, slowest atomic.Int64
			var firstErr atomic.Value
			for k := 0; k < clients; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						t0 := time.Now()
						resp, err := c.Get(url)
						if err == nil {
							b, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if s := string(b); s != "127.0.0.1" && s != "127.0.0.4" {
								err = errors.New("answer from " + s)
							}
						}
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
						for took := int64(time.Since(t0)); ; {
							if old := slowest.Load(); took <= old || slowest.CompareAndSwap(old, took) {
								break
							}
						}
					}
				}()
			}
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d requests failed after two tasks stopped (first: %v)", n, clients*each, firstErr.Load())
			}
			if got := bs[0].requests.Load() + bs[3].requests.Load() - before; got != int64(clients*each) {
				t.Fatalf("the live tasks served %d of %d", got, clients*each)
			}
			if f.deadDials.Load()+f.deadSends.Load() == 0 {
				t.Fatal("no request met a stopped task: the test proves nothing")
			}
			t.Logf("%d requests: %d retries, %d connects and %d requests met a stopped task; slowest request %v (connect timeout %v, user timeout %v)",
				clients*each, tr.Stats().Retries, f.deadDials.Load(), f.deadSends.Load(),
				time.Duration(slowest.Load()).Round(time.Millisecond), f.dialTimeout, f.userTimeout)
		})
	}
}

func TestVIPRetriesAreBoundedWhenEveryTaskIsGone(t *testing.T) {
	tr, f, url, bs := vipTransport(t)
	f.kill(0, 1, 2, 3)
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err == nil {
		resp.Body.Close()
		t.Fatal("GET with every task gone must fail")
	}
	if !isDialError(err) {
		t.Fatalf("want the last connect's error, got %v", err)
	}
	if got, want := f.dials.Load(), int64(1+vipRetries); got != want {
		t.Fatalf("%d connects, want %d (the first attempt and %d retries)", got, want, vipRetries)
	}
	for _, b := range bs {
		if b.requests.Load() != 0 {
			t.Fatal("a request reached a task")
		}
	}
}

func TestVIPPostIsNotRetried(t *testing.T) {
	tr, f, url, bs := vipTransport(t)
	f.kill(0)
	resp, err := (&http.Client{Transport: tr}).Post(url, "text/plain", nil)
	if err == nil {
		resp.Body.Close()
		t.Fatal("POST whose connect timed out must fail, not be retried")
	}
	if f.dials.Load() != 1 || bs[1].requests.Load() != 0 {
		t.Fatalf("%d connects, %d requests on the next task; want 1 and 0", f.dials.Load(), bs[1].requests.Load())
	}
}

func TestTakeProvenPicksTheNewestConnectionAfterSince(t *testing.T) {
	t0 := time.Now()
	mk := func(ats ...time.Duration) *lane {
		l := &lane{}
		for _, d := range ats {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			l.idle = append(l.idle, &pconn{conn: a, lastUsed: t0.Add(d)})
		}
		return l
	}
	old, fresh, fresher, failed := mk(-time.Second), mk(time.Millisecond), mk(-time.Second, 2*time.Millisecond), mk(3*time.Millisecond)
	s := &laneSet{lanes: []*lane{old, fresh, fresher, failed}}
	l, pc := s.takeProven(t0, failed, 0)
	if l != fresher || !pc.lastUsed.Equal(t0.Add(2*time.Millisecond)) {
		t.Fatalf("took %v from lane %p, want the 2 ms one from %p", pc.lastUsed.Sub(t0), l, fresher)
	}
	if l.inflight.Load() != 1 {
		t.Fatalf("in flight on the lane: %d, want 1", l.inflight.Load())
	}
	if l, _ := s.takeProven(t0, failed, 0); l != fresh {
		t.Fatalf("second take: lane %p, want %p", l, fresh)
	}
	if l, _ := s.takeProven(t0, failed, 0); l != nil {
		t.Fatal("no connection is newer than since: want none")
	}
	if l, _ := s.takeProven(t0, nil, 1); l != failed {
		t.Fatalf("without skip: lane %p, want %p", l, failed)
	}
	// closeIdleBefore drops what is older than since, keeps the rest.
	fresher.closeIdleBefore(t0)
	old.closeIdleBefore(t0)
	if len(fresher.idle) != 0 || len(old.idle) != 0 {
		t.Fatalf("idle left: %d and %d, want 0", len(fresher.idle), len(old.idle))
	}
}
