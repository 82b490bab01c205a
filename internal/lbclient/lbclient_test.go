package lbclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
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

func TestNewConnectionPerRequestAlternates(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: staticLookup("127.0.0.2", "127.0.0.1")})}
	var seq []string
	for i := 0; i < 10; i++ {
		seq = append(seq, get(t, c, "http://svc:"+port+"/"))
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("successive requests hit the same backend: %v", seq)
		}
	}
	for _, b := range bs {
		if b.requests.Load() != 5 || b.conns.Load() != 5 {
			t.Errorf("%s: %d requests on %d connections, want 5 on 5", b.ip, b.requests.Load(), b.conns.Load())
		}
	}
}

func TestKeepAliveIsCappedAndSpread(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	c := &http.Client{Transport: New(Config{RequestsPerConn: 4, Lookup: staticLookup("127.0.0.1", "127.0.0.2", "127.0.0.3")})}
	const n = 60
	for i := 0; i < n; i++ {
		get(t, c, "http://svc:"+port+"/")
	}
	var conns int64
	for _, b := range bs {
		conns += b.conns.Load()
		if got := b.requests.Load(); got != n/3 {
			t.Errorf("%s served %d of %d requests, want an even third", b.ip, got, n)
		}
	}
	if conns != n/4 {
		t.Errorf("%d connections for %d requests, want %d (4 requests each)", conns, n, n/4)
	}
}

func TestConcurrentCallsSpread(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	c := &http.Client{Transport: New(Config{RequestsPerConn: 4, Lookup: staticLookup("127.0.0.1", "127.0.0.2")})}
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
	for _, b := range bs {
		if got := b.requests.Load(); got < 60 {
			t.Errorf("%s served only %d of 200 requests", b.ip, got)
		}
	}
}

func TestRefusingAddressIsSkipped(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	// 127.0.0.4 has nothing listening: the dial is refused and the next address is tried.
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: staticLookup("127.0.0.4", "127.0.0.1")})}
	for i := 0; i < 6; i++ {
		if got := get(t, c, "http://svc:"+port+"/"); got != "127.0.0.1" {
			t.Fatalf("answer from %q", got)
		}
	}
	if bs[0].requests.Load() != 6 {
		t.Fatalf("backend served %d of 6", bs[0].requests.Load())
	}
}

// vipLookup mimics a VIP whose first connection goes to a dead task: the name
// resolves to one address, refused the first time, good afterwards.
func vipLookup(good string) func(context.Context, string) ([]netip.Addr, error) {
	var calls atomic.Int64
	return func(context.Context, string) ([]netip.Addr, error) {
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.4")}, nil
		}
		return []netip.Addr{netip.MustParseAddr(good)}, nil
	}
}

func TestIdempotentRequestRetriedOnce(t *testing.T) {
	port, _ := startBackends(t, "127.0.0.1")
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: vipLookup("127.0.0.1")})}
	if got := get(t, c, "http://svc:"+port+"/"); got != "127.0.0.1" {
		t.Fatalf("answer from %q", got)
	}
}

func TestPostIsNotRetried(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: vipLookup("127.0.0.1")})}
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
			// Sorted, the addresses are [127.0.0.1 127.0.0.5]; the rotation starts at
			// index 1, so every other request's first connection is broken.
			c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: staticLookup("127.0.0.5", "127.0.0.1")})}
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
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: staticLookup("127.0.0.5", "127.0.0.1")})}
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
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, Lookup: staticLookup("127.0.0.5", "127.0.0.1")})}
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
	c := &http.Client{Transport: New(Config{RequestsPerConn: 1, ResponseHeaderTimeout: 50 * time.Millisecond, Lookup: staticLookup("127.0.0.1")})}
	resp, err := c.Get("http://svc:" + port + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatal("want a timeout")
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for one timed-out GET, want 1 (no retry)", n)
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
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
