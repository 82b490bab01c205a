package lbclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// laneOf returns the lane of host:port for addr once a request made it
// (tests look at its counts).
func laneOf(tr *Transport, hostport, addr string) *lane {
	var found *lane
	waitFor(func() bool {
		p := (*tr.pools.Load())[hostport]
		if p == nil {
			return false
		}
		for _, l := range p.current().lanes {
			if l.addr.String() == addr {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

func (l *lane) counts() (open, idle, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, len(l.idle), len(l.waiters)
}

// waitFor spins until cond holds (the test's own timeout bounds it).
func waitFor(cond func() bool) {
	for !cond() {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// oneConnClient is a client over one lane to 127.0.0.1 that keeps one
// connection at most, and waits for it as long as wait.
func oneConnClient(wait time.Duration) (*Transport, *http.Client) {
	cfg := quiet(staticLookup("127.0.0.1"))
	cfg.MaxConnsPerTask = 1
	cfg.MaxConnWait = wait
	cfg.VIPLanes = 1
	tr := New(cfg)
	return tr, &http.Client{Transport: tr}
}

// fetchAll GETs url and reads the answer to its end.
func fetchAll(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return err
}

func TestConnBoundMakesRequestsWaitAndAllSucceed(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1", "127.0.0.2")
	hold := make(chan struct{})
	var started atomic.Int64
	for _, b := range bs {
		b.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.requests.Add(1)
			started.Add(1)
			<-hold
			_, _ = io.WriteString(w, b.ip)
		})
	}
	cfg := quiet(staticLookup("127.0.0.1", "127.0.0.2"))
	cfg.MaxConnsPerTask = 2
	cfg.MaxConnWait = time.Hour
	tr := New(cfg)
	c := &http.Client{Transport: tr}
	const n = 12
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("http://svc:" + port + "/")
			if err != nil {
				failed.Add(1)
				t.Errorf("GET: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	// Two connections per task carry a request each; the other eight wait.
	hp := "svc:" + port
	l1, l2 := laneOf(tr, hp, "127.0.0.1"), laneOf(tr, hp, "127.0.0.2")
	waitFor(func() bool {
		_, _, w1 := l1.counts()
		_, _, w2 := l2.counts()
		return started.Load() == 4 && w1+w2 == n-4
	})
	close(hold)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	for _, b := range bs {
		if got := b.conns.Load(); got != 2 {
			t.Errorf("task %s got %d connections, want the bound, 2", b.ip, got)
		}
		if got := b.requests.Load(); got != n/2 {
			t.Errorf("task %s served %d requests, want %d", b.ip, got, n/2)
		}
	}
	for _, l := range []*lane{l1, l2} {
		if open, idle, waiting := l.counts(); open != 2 || idle != 2 || waiting != 0 {
			t.Errorf("lane %s: open %d idle %d waiting %d, want 2 2 0", l.addr, open, idle, waiting)
		}
		if v := l.inflight.Load(); v != 0 {
			t.Errorf("lane %s: %d in flight after every answer", l.addr, v)
		}
	}
}

func TestWaiterDialsWhenAConnectionCloses(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	hold := make(chan struct{})
	var first atomic.Bool
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs[0].requests.Add(1)
		if first.CompareAndSwap(false, true) {
			<-hold
			w.Header().Set("Connection", "close") // not kept: its slot frees
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr, c := oneConnClient(time.Hour)
	errs := make(chan error, 2)
	fetch := func() { errs <- fetchAll(c, "http://svc:"+port+"/") }
	go fetch()
	waitFor(func() bool { return bs[0].requests.Load() == 1 })
	go fetch()
	l := laneOf(tr, "svc:"+port, "127.0.0.1")
	waitFor(func() bool { _, _, w := l.counts(); return w == 1 })
	close(hold)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := bs[0].conns.Load(); got != 2 {
		t.Fatalf("%d connections, want 2 (the waiter dials once the first closes)", got)
	}
	if open, _, waiting := l.counts(); open != 1 || waiting != 0 {
		t.Fatalf("open %d waiting %d, want 1 0", open, waiting)
	}
}

func TestCanceledWaiterLeavesTheLaneUsable(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	hold := make(chan struct{})
	var held atomic.Int64
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			<-hold
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr, c := oneConnClient(time.Hour)
	done := make(chan error, 1)
	go func() { done <- fetchAll(c, "http://svc:"+port+"/hold") }()
	waitFor(func() bool { return held.Load() == 1 })
	l := laneOf(tr, "svc:"+port, "127.0.0.1")

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc:"+port+"/", nil)
	waited := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		waited <- err
	}()
	waitFor(func() bool { _, _, w := l.counts(); return w == 1 })
	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled waiter: %v, want context.Canceled", err)
	}
	if open, _, waiting := l.counts(); open != 1 || waiting != 0 {
		t.Fatalf("after the cancel: open %d waiting %d, want 1 0", open, waiting)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The held connection came back and serves the next request.
	if got := get(t, c, "http://svc:"+port+"/"); got != "ok" {
		t.Fatalf("answer %q", got)
	}
	if got := bs[0].conns.Load(); got != 1 {
		t.Fatalf("%d connections, want 1", got)
	}
	if v := l.inflight.Load(); v != 0 {
		t.Fatalf("%d in flight after every answer", v)
	}
}

func TestWaiterDialsPastTheBoundWhenNoConnectionComesBack(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	hold := make(chan struct{})
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs[0].requests.Add(1)
		if r.URL.Path == "/hold" {
			<-hold // a task waiting on a slow dependency
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr, c := oneConnClient(10 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- fetchAll(c, "http://svc:"+port+"/hold") }()
	waitFor(func() bool { return bs[0].requests.Load() == 1 })
	// The only connection is held: the next request does not queue behind
	// it but, after MaxConnWait, gets its answer on a second connection.
	if err := fetchAll(c, "http://svc:"+port+"/"); err != nil {
		t.Fatal(err)
	}
	l := laneOf(tr, "svc:"+port, "127.0.0.1")
	if open, idle, waiting := l.counts(); open != 2 || idle != 1 || waiting != 0 {
		t.Fatalf("while the first is held: open %d idle %d waiting %d, want 2 1 0", open, idle, waiting)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := bs[0].conns.Load(); got != 2 {
		t.Fatalf("%d connections, want 2", got)
	}
	if v := l.inflight.Load(); v != 0 {
		t.Fatalf("%d in flight after every answer", v)
	}
}
