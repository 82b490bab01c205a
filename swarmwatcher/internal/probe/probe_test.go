package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/nettest"
)

// fakeClock advances by step on every reading, so latencies are exact.
type fakeClock struct {
	now  time.Time
	step time.Duration
}

func (c *fakeClock) Now() time.Time {
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func newProber(t *testing.T, timeout time.Duration, now func() time.Time) *Prober {
	t.Helper()
	p, err := New(Config{Timeout: timeout, MaxBody: 64 << 10, Concurrency: 4, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	var redirectFollowed atomic.Bool
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"status":"UP"}`)) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"DOWN"}`))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 160 { // 10 MB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/target", http.StatusFound) })
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) { redirectFollowed.Store(true) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedURL := "http://" + closed.Addr().String() + "/health"
	_ = closed.Close()

	clock := &fakeClock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), step: 3 * time.Millisecond}
	p := newProber(t, 100*time.Millisecond, clock.Now)
	tests := []struct {
		path     string
		url      string
		outcome  Outcome
		code     int
		errHas   string
		maxBytes int64
	}{
		{path: "/ok", outcome: Pass, code: 200},
		{path: "/nocontent", outcome: Pass, code: 204},
		{path: "/busy", outcome: Warn, code: 429, errHas: "429"},
		{path: "/broken", outcome: Fail, code: 503, errHas: "HTTP 503"},
		{path: "/slow", outcome: Fail, errHas: "timeout after 100ms"},
		{path: "/huge", outcome: Pass, code: 200, maxBytes: 64 << 10},
		{path: "/redirect", outcome: Fail, code: 302, errHas: "redirect (not followed)"},
		{path: "/missing", outcome: Fail, code: 404, errHas: "HTTP 404"},
		{path: "refused", url: refusedURL, outcome: Fail, errHas: "connection refused"},
		{path: "bad url", url: "http://[::1", outcome: Fail, errHas: "bad probe URL"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			url := tt.url
			if url == "" {
				url = srv.URL + tt.path
			}
			r := p.Check(context.Background(), url)
			if r.Outcome != tt.outcome || r.Code != tt.code {
				t.Errorf("outcome %s code %d (%s), want %s %d", r.Outcome, r.Code, r.Err, tt.outcome, tt.code)
			}
			if tt.errHas != "" && !strings.Contains(r.Err, tt.errHas) {
				t.Errorf("err %q, want it to mention %q", r.Err, tt.errHas)
			}
			if tt.errHas == "" && r.Err != "" {
				t.Errorf("unexpected err %q", r.Err)
			}
			if tt.maxBytes > 0 && r.BodyBytes > tt.maxBytes {
				t.Errorf("read %d body bytes, cap is %d", r.BodyBytes, tt.maxBytes)
			}
			if r.Latency != clock.step {
				t.Errorf("latency %v, want the injected clock's step %v", r.Latency, clock.step)
			}
		})
	}
	if redirectFollowed.Load() {
		t.Error("redirect was followed")
	}
}

func TestCheckNeverOutlivesContext(t *testing.T) {
	silent, _ := nettest.SilentListener(t) // accepts and never answers
	p := newProber(t, time.Hour, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := p.Check(ctx, "http://"+silent+"/health")
	if r.Outcome != Fail || !strings.Contains(r.Err, "timeout") {
		t.Errorf("result %+v, want a failed probe ended by the caller's deadline", r)
	}
}

func TestCheckAllBoundsConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // hold the slot so overlaps show
		if r.URL.Path == "/bad" {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	p := newProber(t, time.Second, nil)
	var urls []string
	for i := range 40 {
		if i%10 == 0 {
			urls = append(urls, srv.URL+"/bad")
		} else {
			urls = append(urls, srv.URL+"/ok")
		}
	}
	// Three calls at once share the one bound.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { p.CheckAll(context.Background(), urls) })
	}
	res := p.CheckAll(context.Background(), urls)
	wg.Wait()
	for i, r := range res {
		want := Pass
		if i%10 == 0 {
			want = Fail
		}
		if r.Outcome != want {
			t.Errorf("result %d = %s, want %s (order kept)", i, r.Outcome, want)
		}
	}
	if pk := peak.Load(); pk > 4 {
		t.Errorf("peak concurrency %d over three CheckAll calls at once, limit is 4", pk)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Timeout: time.Second}, {Timeout: time.Second, MaxBody: 1}} {
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}
