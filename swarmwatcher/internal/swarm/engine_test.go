package swarm

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// fakeEngine replays Engine API answers from testdata/ over HTTP, counts the
// calls and can be told to fail or hang per path.
type fakeEngine struct {
	t   testing.TB
	srv *httptest.Server

	mu      sync.Mutex
	bodies  map[string][]byte // "/tasks" -> JSON
	status  map[string]int    // "/tasks" -> forced HTTP status
	hang    map[string]bool   // "/tasks" -> accept and never answer
	calls   map[string]int
	queries map[string]url.Values
	events  chan string // lines streamed by /events; closing it ends the stream
	stop    chan struct{}
	// In-flight list calls (not /_ping or /events): the most at once, and
	// a gate: with gate > 0 a call waits (up to 2 s) until gate are in
	// flight.
	inflight, maxInflight, gate int
	arrived                     chan struct{}
}

// setGate makes list calls wait until n are in flight; it resets the count
// of the most in flight.
func (e *fakeEngine) setGate(n int) {
	e.mu.Lock()
	e.gate, e.maxInflight, e.arrived = n, 0, make(chan struct{})
	e.mu.Unlock()
}

func (e *fakeEngine) mostInFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxInflight
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

func newFakeEngine(t testing.TB) *fakeEngine {
	t.Helper()
	e := &fakeEngine{
		t:       t,
		bodies:  map[string][]byte{},
		status:  map[string]int{},
		hang:    map[string]bool{},
		calls:   map[string]int{},
		queries: map[string]url.Values{},
		stop:    make(chan struct{}),
	}
	for path, file := range map[string]string{
		"/services":                     "services.json",
		"/tasks":                        "tasks.json",
		"/nodes":                        "nodes.json",
		"/networks":                     "networks.json",
		"/containers/c0ffee123456/json": "container_c0ffee123456.json",
	} {
		e.setFile(path, file)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(func() {
		close(e.stop)
		e.srv.CloseClientConnections()
		e.srv.Close()
	})
	return e
}

func (e *fakeEngine) setFile(path, file string) {
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.bodies[path] = b
	e.mu.Unlock()
}

func (e *fakeEngine) set(path string, body []byte) {
	e.mu.Lock()
	e.bodies[path] = body
	e.mu.Unlock()
}

func (e *fakeEngine) fail(path string, status int) {
	e.mu.Lock()
	e.status[path] = status
	e.mu.Unlock()
}

func (e *fakeEngine) hangOn(path string) {
	e.mu.Lock()
	e.hang[path] = true
	e.mu.Unlock()
}

func (e *fakeEngine) count(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[path]
}

func (e *fakeEngine) totalCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for p, c := range e.calls {
		if p != "/_ping" {
			n += c
		}
	}
	return n
}

func (e *fakeEngine) query(path string) url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.queries[path]
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	path := versionPrefix.ReplaceAllString(r.URL.Path, "")
	w.Header().Set("Api-Version", "1.41")
	if path == "/_ping" {
		_, _ = w.Write([]byte("OK"))
		return
	}
	e.mu.Lock()
	e.calls[path]++
	e.queries[path] = r.URL.Query()
	body, ok := e.bodies[path]
	status, hang, events := e.status[path], e.hang[path], e.events
	var gate chan struct{}
	if path != "/events" {
		e.inflight++
		e.maxInflight = max(e.maxInflight, e.inflight)
		if e.gate > 0 {
			gate = e.arrived
			if e.inflight >= e.gate {
				close(e.arrived)
				e.gate = 0
			}
		}
		defer func() {
			e.mu.Lock()
			e.inflight--
			e.mu.Unlock()
		}()
	}
	e.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(2 * time.Second):
		}
	}
	if hang {
		select {
		case <-r.Context().Done():
		case <-e.stop:
		}
		return
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"fake engine: forced failure"}`))
		return
	}
	if path == "/events" && events != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case line, ok := <-events:
				if !ok {
					return
				}
				_, _ = w.Write([]byte(line + "\n"))
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			case <-e.stop:
				return
			}
		}
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"No such object: ` + strings.TrimPrefix(path, "/") + `"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// client returns a Docker client talking to the fake engine, built as main
// builds its own (version negotiation on).
func (e *fakeEngine) client() *client.Client {
	return clientFor(e.t, "tcp://"+e.srv.Listener.Addr().String())
}

func clientFor(t testing.TB, host string) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
