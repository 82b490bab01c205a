package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/gatling/internal/feeder"
	"github.com/goblog/goblog/gatling/internal/stats"
	"github.com/goblog/goblog/internal/nettest"
)

// replicas is an httptest server that answers like accountservice behind a
// balancer: each new connection is pinned to one of n fake replicas.
type replicas struct {
	srv    *httptest.Server
	conns  atomic.Int64
	mu     sync.Mutex
	byConn map[string]string
	paths  map[string]int
	accept []string
}

func newReplicas(t *testing.T, n int, status int) *replicas {
	t.Helper()
	r := &replicas{byConn: map[string]string{}, paths: map[string]int{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		ip, ok := r.byConn[req.RemoteAddr]
		if !ok {
			ip = fmt.Sprintf("10.0.1.%d", len(r.byConn)%n+1)
			r.byConn[req.RemoteAddr] = ip
		}
		r.paths[req.URL.Path]++
		r.accept = append(r.accept, req.Header.Get("Accept"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"id":"%s","name":"Person","servedBy":"%s"}`, strings.TrimPrefix(req.URL.Path, "/accounts/"), ip)
	}))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func testConfig(base string) Config {
	c := Defaults()
	c.BaseURL = base
	c.Users = 5
	c.Ramp = 100 * time.Millisecond
	c.Duration = 600 * time.Millisecond
	c.Pause = 20 * time.Millisecond
	c.Timeout = 5 * time.Second
	c.Interval = 100 * time.Millisecond
	return c
}

func run(t *testing.T, ctx context.Context, cfg Config, ids ...string) (stats.Summary, []Tick, error) {
	t.Helper()
	if len(ids) == 0 {
		ids = []string{"10000", "10001", "10002"}
	}
	f, err := feeder.NewCircular(ids)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rec := stats.NewRecorder(start)
	var mu sync.Mutex
	var ticks []Tick
	r, err := NewRunner(cfg, f, rec, func(tk Tick) { mu.Lock(); ticks = append(ticks, tk); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(ctx, start)
	mu.Lock()
	defer mu.Unlock()
	return rec.Summary(time.Now()), ticks, err
}

func TestRunCountsAddUp(t *testing.T) {
	srv := newReplicas(t, 3, http.StatusOK)
	s, ticks, err := run(t, context.Background(), testConfig(srv.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests.Total < 5*10 || s.Requests.KO != 0 || s.Requests.OK != s.Requests.Total {
		t.Fatalf("requests %+v errors %v; want ≥ 50 requests, all OK", s.Requests, s.Errors)
	}
	var sum int64
	for _, v := range s.ServedBy {
		sum += v
	}
	if sum != s.Requests.Total || s.ServedByMissing != 0 {
		t.Fatalf("servedBy %v adds up to %d, want total %d", s.ServedBy, sum, s.Requests.Total)
	}
	if len(s.ServedBy) != 3 {
		t.Fatalf("servedBy %v, want 3 replicas (5 users, one connection each)", s.ServedBy)
	}
	// One connection per user, kept alive.
	if c := srv.conns.Load(); c != 5 {
		t.Fatalf("server saw %d connections, want 5 (one per user)", c)
	}
	// The feeder is circular and shared: ids are used evenly.
	srv.mu.Lock()
	for _, id := range []string{"10000", "10001", "10002"} {
		if n := srv.paths["/accounts/"+id]; n < int(s.Requests.Total)/3-1 || n > int(s.Requests.Total)/3+1 {
			t.Errorf("id %s asked %d times of %d", id, n, s.Requests.Total)
		}
	}
	for _, a := range srv.accept {
		if a != "application/json" {
			t.Fatalf("Accept %q", a)
		}
	}
	srv.mu.Unlock()
	// The timeline covers the run and its requests add up too.
	var inTimeline int64
	for _, p := range s.Timeline {
		inTimeline += p.Requests
	}
	if inTimeline != s.Requests.Total || len(ticks) < 5 {
		t.Fatalf("timeline: %d requests in %d points (%d ticks), want %d", inTimeline, len(s.Timeline), len(ticks), s.Requests.Total)
	}
	if last := ticks[len(ticks)-1]; last.Users != 0 || last.Started != 5 {
		t.Fatalf("last tick %+v: want 0 active of 5 started", last)
	}
}

func TestConnectionOptions(t *testing.T) {
	t.Run("cap per connection", func(t *testing.T) {
		srv := newReplicas(t, 4, http.StatusOK)
		cfg := testConfig(srv.srv.URL)
		cfg.Users = 2
		cfg.MaxRequestsPerConn = 3
		s, _, err := run(t, context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Each user opens a connection per 3 requests (rounded up).
		min := s.Requests.Total / 3
		if c := srv.conns.Load(); c < min || c > min+2 {
			t.Fatalf("%d connections for %d requests, want about a third", c, s.Requests.Total)
		}
	})
	t.Run("keep-alive off", func(t *testing.T) {
		srv := newReplicas(t, 4, http.StatusOK)
		cfg := testConfig(srv.srv.URL)
		cfg.Users = 2
		cfg.KeepAlive = false
		s, _, err := run(t, context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if c := srv.conns.Load(); c != s.Requests.Total {
			t.Fatalf("%d connections for %d requests, want one each", c, s.Requests.Total)
		}
	})
}

func TestKOs(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		srv := newReplicas(t, 1, http.StatusNotFound)
		cfg := testConfig(srv.srv.URL)
		cfg.Users = 1
		s, _, _ := run(t, context.Background(), cfg)
		if s.Requests.OK != 0 || s.Requests.KO == 0 || s.Errors["status 404"] != s.Requests.KO || len(s.ServedBy) != 0 {
			t.Fatalf("requests %+v errors %v servedBy %v", s.Requests, s.Errors, s.ServedBy)
		}
	})
	t.Run("deadline on a server that never answers", func(t *testing.T) {
		silent, _ := nettest.SilentListener(t)
		cfg := testConfig("http://" + silent)
		cfg.Users = 2
		cfg.Ramp = 0
		cfg.Duration = 100 * time.Millisecond
		cfg.Timeout = 300 * time.Millisecond
		t0 := time.Now()
		s, _, err := run(t, context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Requests.Total != 2 || s.Errors["timeout"] != 2 {
			t.Fatalf("requests %+v errors %v; want 2 timeouts", s.Requests, s.Errors)
		}
		if s.LatencyMs.Measured() {
			t.Fatalf("OK latency %+v measured from timeouts", s.LatencyMs)
		}
		if min, ok := s.KOLatencyMs.Get("min"); !ok || min < 300 {
			t.Fatalf("KO latency min %v (%v): want the timeouts, ≥ 300 ms", min, ok)
		}
		t.Logf("2 users against a silent server: done in %v", time.Since(t0))
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := testConfig("http://" + addr)
		cfg.Users = 1
		cfg.Duration = 50 * time.Millisecond
		s, _, _ := run(t, context.Background(), cfg)
		if s.Requests.KO == 0 || s.Errors["connection refused"] != s.Requests.KO {
			t.Fatalf("requests %+v errors %v", s.Requests, s.Errors)
		}
	})
}

func TestCancelStopsCleanly(t *testing.T) {
	// The server holds each request a while so that some are in flight when
	// the run is cancelled.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, `{"servedBy":"10.0.1.1"}`)
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.Users = 20
	cfg.Ramp = 2 * time.Second // not all users start before the cancel
	cfg.Duration = time.Hour
	cfg.Pause = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(400*time.Millisecond, cancel)
	done := make(chan struct{})
	var s stats.Summary
	var err error
	go func() {
		defer close(done)
		s, _, err = run(t, ctx, cfg)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if s.Requests.Total == 0 || s.Requests.KO != 0 {
		t.Fatalf("requests %+v errors %v: want some, and no KO for requests cut by the cancel", s.Requests, s.Errors)
	}
	if s.ServedBy["10.0.1.1"] != s.Requests.Total {
		t.Fatalf("servedBy %v total %d", s.ServedBy, s.Requests.Total)
	}
	if len(s.Timeline) == 0 {
		t.Fatal("no timeline after cancel")
	}
}

func TestValidate(t *testing.T) {
	ok := Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"scheme", func(c *Config) { c.BaseURL = "ftp://x" }, "scheme must be http"},
		{"no host", func(c *Config) { c.BaseURL = "http://" }, "no host"},
		{"unparsable", func(c *Config) { c.BaseURL = "http://[::1" }, "base-url"},
		{"query", func(c *Config) { c.BaseURL = "http://x/?a=1" }, "no query"},
		{"users", func(c *Config) { c.Users = 0 }, "users 0"},
		{"ramp", func(c *Config) { c.Ramp = -time.Second }, "ramp"},
		{"duration", func(c *Config) { c.Duration = 0 }, "duration"},
		{"pause", func(c *Config) { c.Pause = -1 }, "pause"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
		{"cap", func(c *Config) { c.MaxRequestsPerConn = -1 }, "max-requests-per-conn"},
		{"path", func(c *Config) { c.Path = "/accounts" }, "{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
