package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// fakeEngine is an HTTP server on a unix socket that records what reaches it. /events sends
// one event at once, then one more per value on next, then ends.
type fakeEngine struct {
	socket string
	next   chan struct{}

	mu   sync.Mutex
	seen []string
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "sp") // short: a unix socket path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &fakeEngine{socket: filepath.Join(dir, "docker.sock"), next: make(chan struct{})}
	ln, err := net.Listen("unix", e.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.seen = append(e.seen, r.Method+" "+r.URL.RequestURI())
	e.mu.Unlock()
	switch stripVersion(r.URL.Path) {
	case "/events":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, `{"Type":"service","Action":"create","n":1}`)
		w.(http.Flusher).Flush()
		for n := 2; n <= 3; n++ {
			select {
			case <-e.next:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, `{"Type":"service","Action":"update","n":%d}`+"\n", n)
			w.(http.Flusher).Flush()
		}
	case "/services":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `[{"ID":"svc1","Spec":{"Name":"goblog_edge"}}]`)
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}
}

func (e *fakeEngine) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

// start serves a Proxy for e on loopback with the given server deadlines.
func start(t *testing.T, e *fakeEngine, cfg Config, deadline time.Duration) (*Proxy, string) {
	t.Helper()
	cfg.Socket = e.socket
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(p)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = deadline, deadline
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func do(t *testing.T, method, url string, hdr http.Header, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

func TestOnlyGetAndHeadReachTheEngine(t *testing.T) {
	e := newFakeEngine(t)
	p, url := start(t, e, Config{}, 5*time.Second)
	for _, tc := range []struct {
		method string
		want   int
	}{
		{http.MethodGet, 200}, {http.MethodHead, 200},
		{http.MethodPost, 403}, {http.MethodPut, 403}, {http.MethodDelete, 403},
		{http.MethodPatch, 403}, {http.MethodOptions, 403}, {"PROPFIND", 403},
	} {
		t.Run(tc.method, func(t *testing.T) {
			before, seenBefore := p.Stats(), len(e.requests())
			code, body := do(t, tc.method, url+"/v1.41/services", nil, nil)
			if code != tc.want {
				t.Fatalf("%s /services: %d %s, want %d", tc.method, code, body, tc.want)
			}
			after, seen := p.Stats(), e.requests()
			if tc.want == 403 {
				if len(seen) != seenBefore || after.Refused != before.Refused+1 {
					t.Fatalf("refused %s reached the engine (%v) or was not counted (%+v → %+v)", tc.method, seen, before, after)
				}
				if tc.method != http.MethodHead && !strings.Contains(body, `"message":"socketproxy: method `+tc.method) {
					t.Fatalf("403 body %q does not say why in the engine's error shape", body)
				}
				return
			}
			if len(seen) != seenBefore+1 || seen[len(seen)-1] != tc.method+" /v1.41/services" {
				t.Fatalf("engine saw %v, want %s /v1.41/services last", seen, tc.method)
			}
		})
	}
}

func TestOnlyAllowedPathsReachTheEngine(t *testing.T) {
	e := newFakeEngine(t)
	_, url := start(t, e, Config{}, 5*time.Second)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/_ping", 200}, {"/v1.41/version", 200}, {"/v1.44/info", 200},
		{"/v1.41/services?status=true", 200}, {"/v1.41/services/abc", 200},
		{"/v1.41/tasks?filters=%7B%7D", 200}, {"/v1.41/nodes/n1", 200},
		{"/v1.41/networks/goblog_net", 200},
		{"/v1.41/containers/json?all=1", 200}, {"/v1.41/containers/c1/json", 200},
		{"/swarm", 403},                              // join tokens
		{"/v1.41/swarm", 403},                        // with the version prefix too
		{"/v1.41/swarm/unlockkey", 403},              //
		{"/v1.41/secrets", 403},                      //
		{"/v1.41/configs/c1", 403},                   // a config's data
		{"/v1.41/containers/c1/archive?path=/", 403}, // files of a container
		{"/v1.41/containers/c1/export", 403},         //
		{"/v1.41/containers/c1/logs", 403},           //
		{"/v1.41/images/get", 403},                   //
		{"/v1.41/services/", 403},                    // an empty segment is no id
		{"/v1.41/services/a/b", 403},                 //
		{"/v1.41/containers/c1/../../swarm", 403},    // not clean
		{"/v1.41/containers/a%2Fb/json", 403},        // escaped
		{"/v1.41//info", 403},                        //
		{"/v1.x/info", 403},                          // not a version
	} {
		t.Run(tc.path, func(t *testing.T) {
			seenBefore := len(e.requests())
			// A raw request line, so the client does not clean the path for us.
			code := rawGet(t, url, tc.path)
			if code != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.path, code, tc.want)
			}
			if reached := len(e.requests()) > seenBefore; reached != (tc.want == 200) {
				t.Fatalf("GET %s reached the engine: %v, want %v", tc.path, reached, tc.want == 200)
			}
		})
	}
}

func rawGet(t *testing.T, url, target string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestUpgradesAndBodiesAreRefused(t *testing.T) {
	e := newFakeEngine(t)
	_, url := start(t, e, Config{}, 5*time.Second)
	for name, tc := range map[string]struct {
		hdr  http.Header
		body io.Reader
	}{
		"upgrade":            {hdr: http.Header{"Upgrade": {"tcp"}, "Connection": {"Upgrade"}}},
		"connection upgrade": {hdr: http.Header{"Connection": {"keep-alive, Upgrade"}}},
		"websocket":          {hdr: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}},
		"body":               {body: strings.NewReader(`{"Name":"x"}`)},
	} {
		t.Run(name, func(t *testing.T) {
			seenBefore := len(e.requests())
			if code, body := do(t, http.MethodGet, url+"/v1.41/containers/c1/json", tc.hdr, tc.body); code != 403 {
				t.Fatalf("%d %s, want 403", code, body)
			}
			if len(e.requests()) != seenBefore {
				t.Fatalf("the request reached the engine: %v", e.requests())
			}
		})
	}
}

// The event stream reaches the client event by event, and outlives the server's read and
// write deadlines.
func TestEventsStreamThroughWithoutDeadline(t *testing.T) {
	e := newFakeEngine(t)
	const deadline = 150 * time.Millisecond
	_, url := start(t, e, Config{}, deadline)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1.41/events?filters=%7B%7D", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /events: %d", resp.StatusCode)
	}
	dec := json.NewDecoder(resp.Body)
	var ev struct{ N int }
	// The first event arrives while the engine still holds the stream open: it was flushed.
	if err := dec.Decode(&ev); err != nil || ev.N != 1 {
		t.Fatalf("first event: %+v %v", ev, err)
	}
	for n := 2; n <= 3; n++ {
		time.Sleep(3 * deadline) // past the server's read and write deadlines
		select {
		case e.next <- struct{}{}:
		case <-ctx.Done():
			t.Fatal("the engine's event handler is gone: the stream was cut")
		}
		if err := dec.Decode(&ev); err != nil || ev.N != n {
			t.Fatalf("event %d after %s: %+v %v", n, 3*deadline*time.Duration(n-1), ev, err)
		}
	}
}

func TestInFlightBound(t *testing.T) {
	e := newFakeEngine(t)
	p, url := start(t, e, Config{MaxInFlight: 1}, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	resp, err := http.DefaultClient.Do(req) // holds the only slot
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	before := p.Stats()
	code, _ := do(t, http.MethodGet, url+"/info", nil, nil)
	if code != http.StatusServiceUnavailable || p.Stats().Busy != before.Busy+1 {
		t.Fatalf("second request: %d, busy %d → %d; want 503 counted", code, before.Busy, p.Stats().Busy)
	}
}

func TestEngineDownIs502(t *testing.T) {
	p, err := New(Config{Socket: filepath.Join(t.TempDir(), "absent.sock")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	if code, body := do(t, http.MethodGet, srv.URL+"/info", nil, nil); code != http.StatusBadGateway || !strings.Contains(body, "did not answer") {
		t.Fatalf("%d %s, want 502", code, body)
	}
}

// The Docker Go client (what the swarmwatcher uses) reads through the proxy and gets the
// proxy's reason when it tries to write.
func TestDockerClientThroughProxy(t *testing.T) {
	e := newFakeEngine(t)
	_, url := start(t, e, Config{}, 5*time.Second)
	c, err := client.NewClientWithOpts(client.WithHost("tcp://"+strings.TrimPrefix(url, "http://")), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svcs, err := c.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil || len(svcs) != 1 || svcs[0].Spec.Name != "goblog_edge" {
		t.Fatalf("ServiceList: %+v %v", svcs, err)
	}
	seenBefore := len(e.requests())
	if err := c.ServiceRemove(ctx, "svc1"); err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("ServiceRemove through the proxy: %v, want the proxy's refusal", err)
	}
	if len(e.requests()) != seenBefore {
		t.Fatalf("a DELETE reached the engine: %v", e.requests())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{MaxInFlight: -1},
		{Allow: []string{"services"}},
		{Allow: []string{"/services/../swarm"}},
		{DialTimeout: -time.Second},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
}
