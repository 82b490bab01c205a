package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/lbclient"
)

// task is one accountservice stand-in bound to a loopback address; tasks of a
// test share a port, as a service's tasks do.
type task struct {
	ip  string
	srv *httptest.Server
}

func startTasks(t *testing.T, ips []string, h func(ip string) http.Handler) (port string, tasks []task) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		tasks = tasks[:0]
		port = "0"
		ok := true
		for _, ip := range ips {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				ok = false
				break
			}
			_, port, _ = net.SplitHostPort(ln.Addr().String())
			srv := httptest.NewUnstartedServer(h(ip))
			srv.Listener = ln
			srv.Start()
			tasks = append(tasks, task{ip: ip, srv: srv})
		}
		if ok {
			for _, tk := range tasks {
				t.Cleanup(tk.srv.Close)
			}
			return port, tasks
		}
		for _, tk := range tasks {
			tk.srv.Close()
		}
	}
	t.Fatal("could not bind one port on every loopback address")
	return "", nil
}

func lookup(ips ...string) func(context.Context, string) ([]netip.Addr, error) {
	return func(context.Context, string) ([]netip.Addr, error) {
		out := make([]netip.Addr, 0, len(ips))
		for _, s := range ips {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func newEdge(t *testing.T, port string, ips ...string) *httptest.Server {
	edge, _ := newEdgeWith(t, port, func(*Config, *lbclient.Config) {}, ips...)
	return edge
}

func newEdgeWith(t *testing.T, port string, set func(*Config, *lbclient.Config), ips ...string) (*httptest.Server, *Proxy) {
	target, _ := url.Parse("http://accountservice:" + port)
	lc := lbclient.Config{Lookup: lookup(ips...), RefreshInterval: time.Hour}
	cfg := Config{Target: target}
	set(&cfg, &lc)
	cfg.Transport = lbclient.New(lc)
	p := New(cfg)
	edge := httptest.NewServer(p)
	t.Cleanup(edge.Close)
	return edge, p
}

// echo answers with what it received, signed with its address.
func echo(ip string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Served-By", ip)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"servedBy": ip, "method": r.Method, "uri": r.URL.RequestURI(), "body": string(body),
			"custom": r.Header.Get("X-Custom"), "host": r.Host,
		})
	})
}

func TestSpreadsOverTasks(t *testing.T) {
	port, _ := startTasks(t, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, echo)
	edge := newEdge(t, port, "127.0.0.1", "127.0.0.2", "127.0.0.3")
	seen := map[string]int{}
	prev := ""
	for i := 0; i < 30; i++ {
		resp, err := http.Get(edge.URL + "/accounts/10000")
		if err != nil {
			t.Fatal(err)
		}
		by := resp.Header.Get("X-Served-By")
		resp.Body.Close()
		if by == prev {
			t.Fatalf("request %d landed on the same task as the one before (%s)", i, by)
		}
		prev = by
		seen[by]++
	}
	if len(seen) != 3 || seen["127.0.0.1"] != 10 {
		t.Fatalf("want 10 requests on each of 3 tasks, got %v", seen)
	}
}

func TestPassesRequestAndResponseUnchanged(t *testing.T) {
	port, _ := startTasks(t, []string{"127.0.0.1"}, echo)
	edge, _ := newEdgeWith(t, port, func(c *Config, _ *lbclient.Config) { c.Testability = true }, "127.0.0.1")
	req, _ := http.NewRequest(http.MethodPut, edge.URL+"/testability/healthy/false?x=1&y=%2F", strings.NewReader(`{"a":1}`))
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Served-By") != "127.0.0.1" {
		t.Fatalf("status and headers not passed back: %d %v", resp.StatusCode, resp.Header)
	}
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"method": "PUT", "uri": "/testability/healthy/false?x=1&y=%2F", "body": `{"a":1}`, "custom": "kept"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: upstream saw %q, want %q", k, got[k], v)
		}
	}
	if !strings.HasPrefix(got["host"], "127.0.0.1:") {
		t.Errorf("the client's Host should be passed on, upstream saw %q", got["host"])
	}
}

func TestRefusingTaskIsSkipped(t *testing.T) {
	port, _ := startTasks(t, []string{"127.0.0.1", "127.0.0.2"}, echo)
	// 127.0.0.9 is a task that is gone: its connection is refused.
	edge := newEdge(t, port, "127.0.0.9", "127.0.0.1", "127.0.0.2")
	for i := 0; i < 12; i++ {
		resp, err := http.Get(edge.URL + "/accounts/10000")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Fatalf("request %d: %d, want every request served by a live task", i, resp.StatusCode)
		}
	}
}

func TestNoTaskAnswersIs502Fast(t *testing.T) {
	port, tasks := startTasks(t, []string{"127.0.0.1"}, echo)
	tasks[0].srv.Close()
	edge := newEdge(t, port, "127.0.0.1", "127.0.0.9")
	start := time.Now()
	resp, err := http.Get(edge.URL + "/accounts/10000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("want a JSON 502, got %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var body struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != 502 || body.Error == "" {
		t.Fatalf("body: %+v %v", body, err)
	}
	for _, internal := range []string{"127.0.0", port, "accountservice", "dial", "refused"} {
		if strings.Contains(body.Error, internal) {
			t.Errorf("the 502 body names %q: %q", internal, body.Error)
		}
	}
	t.Logf("502 after %s", elapsed)
}

func TestOwnHealthIsOffTheProxiedPaths(t *testing.T) {
	port, _ := startTasks(t, []string{"127.0.0.1"}, echo)
	edge := newEdge(t, port, "127.0.0.1")
	resp, err := http.Get(edge.URL + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Served-By") != "" {
		t.Fatalf("edge health: %d, served by %q", resp.StatusCode, resp.Header.Get("X-Served-By"))
	}
	resp, err = http.Get(edge.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Served-By") == "" {
		t.Fatal("/health must be proxied to accountservice")
	}
}

func TestTestabilityIs404UnlessOn(t *testing.T) {
	port, tasks := startTasks(t, []string{"127.0.0.1"}, echo)
	_ = tasks
	for _, on := range []bool{false, true} {
		edge, _ := newEdgeWith(t, port, func(c *Config, _ *lbclient.Config) { c.Testability = on }, "127.0.0.1")
		for _, path := range []string{"/testability/healthy/false", "/testability", "/testability/x/y"} {
			req, _ := http.NewRequest(http.MethodPut, edge.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			proxied := resp.Header.Get("X-Served-By") != ""
			if on != proxied || (!on && resp.StatusCode != http.StatusNotFound) {
				t.Errorf("testability %v, PUT %s: %d, proxied %v", on, path, resp.StatusCode, proxied)
			}
		}
	}
}

func TestBeyondTheBoundIs503WithRetryAfter(t *testing.T) {
	hold := make(chan struct{})
	var started atomic.Int64
	port, _ := startTasks(t, []string{"127.0.0.1", "127.0.0.2"}, func(ip string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started.Add(1)
			<-hold
			w.Header().Set("X-Served-By", ip)
		})
	})
	defer close(hold)
	edge, p := newEdgeWith(t, port, func(_ *Config, lc *lbclient.Config) { lc.MaxInFlightPerTask = 2 }, "127.0.0.1", "127.0.0.2")
	for i := 0; i < 4; i++ {
		go func() {
			if resp, err := http.Get(edge.URL + "/accounts/10000"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for started.Load() < 4 {
		runtime.Gosched()
	}
	for i := 0; i < 3; i++ {
		resp, err := http.Get(edge.URL + "/accounts/10000")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != RetryAfter {
			t.Fatalf("beyond the bound: %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	if got := started.Load(); got != 4 {
		t.Fatalf("%d requests reached the tasks, want only the 4 within the bound", got)
	}
	if got := p.Stats().Overloaded; got != 3 {
		t.Fatalf("Overloaded = %d, want 3", got)
	}
}
