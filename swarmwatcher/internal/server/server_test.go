package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	. "github.com/smartystreets/goconvey/convey"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

type fakeDisc struct {
	mu   sync.Mutex
	snap swarm.Snapshot
	err  error
}

func (f *fakeDisc) Refresh(context.Context) (swarm.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.err
}

func (f *fakeDisc) set(s swarm.Snapshot, err error) {
	f.mu.Lock()
	f.snap, f.err = s, err
	f.mu.Unlock()
}

type passAll struct{ now func() time.Time }

func (p passAll) CheckAll(_ context.Context, urls []string) []probe.Result {
	out := make([]probe.Result, len(urls))
	for i := range urls {
		out[i] = probe.Result{At: p.now(), Outcome: probe.Pass, Code: 200, Latency: 2 * time.Millisecond}
	}
	return out
}

func snapshot(tasks ...swarm.Task) swarm.Snapshot {
	return swarm.Snapshot{Services: []swarm.Service{{
		ID: "s1", Name: "goblog_accountservice", Desired: len(tasks), Running: len(tasks), ProbePort: 6767, ProbePath: "/health",
		Mode: "replicated", EndpointMode: "dnsrr", Labels: map[string]string{"swarmwatcher.port": "6767", "com.docker.stack.namespace": "goblog"},
		Tasks: tasks,
	}}}
}

func task(id, addr string, slot int) swarm.Task {
	return swarm.Task{ID: id, Slot: slot, NodeID: "n1", Node: "swarm-1", NodeStatus: "ready", NodeAvailability: "active", NodeAddress: "192.168.1.10",
		State: "running", DesiredState: "running", Address: addr, Network: "goblog_net"}
}

func newWatcher(t *testing.T, d *fakeDisc) *watch.Watcher {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }
	w, err := watch.New(watch.Config{
		PollInterval: time.Second, Debounce: time.Millisecond, ProbeInterval: time.Second, RetryMin: time.Millisecond,
		StaleAfter: time.Hour, Thresholds: probe.Thresholds{Rise: 1, Fall: 2, History: 5}, Now: now,
	}, d, passAll{now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// handler returns a Server's routes with its encoder running until the
// test ends.
func handler(t *testing.T, cfg Config, w Source) http.Handler {
	t.Helper()
	s := New(cfg, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s.Handler()
}

func get(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestHandlers(t *testing.T) {
	Convey("Given a watcher behind the handlers", t, func() {
		d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1), task("t2", "10.0.1.8", 2))}
		w := newWatcher(t, d)
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "swarmwatcher_test_gauge", Help: "x"}))
		h := handler(t, Config{Gatherer: reg}, w)

		Convey("before the engine answered", func() {
			Convey("/api/services is an empty array, not null", func() {
				rec := get(h, "/api/services")
				So(rec.Code, ShouldEqual, 200)
				So(strings.TrimSpace(rec.Body.String()), ShouldEqual, "[]")
			})
			Convey("/health is 503 and says why", func() {
				rec := get(h, "/health")
				So(rec.Code, ShouldEqual, 503)
				So(rec.Body.String(), ShouldContainSubstring, "no answer from the Docker API yet")
			})
		})

		Convey("after a re-list and a probe round", func() {
			So(w.Refresh(context.Background()), ShouldBeNil)
			w.Probe(context.Background(), false)

			Convey("/api/services has the contract's fields", func() {
				rec := get(h, "/api/services")
				So(rec.Code, ShouldEqual, 200)
				So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
				var list []map[string]any
				So(json.Unmarshal(rec.Body.Bytes(), &list), ShouldBeNil)
				So(list, ShouldHaveLength, 1)
				s := list[0]
				So(s["name"], ShouldEqual, "goblog_accountservice")
				So(s["replicas"], ShouldResemble, map[string]any{"desired": 2.0, "running": 2.0})
				tasks := s["tasks"].([]any)
				So(tasks, ShouldHaveLength, 2)
				t1 := tasks[0].(map[string]any)
				for _, k := range []string{"id", "slot", "node", "state", "desiredState", "address", "port", "health", "lastCheck", "latencyMs", "consecutiveFailures"} {
					So(t1, ShouldContainKey, k)
				}
				So(t1["address"], ShouldEqual, "10.0.1.7")
				So(t1["port"], ShouldEqual, 6767.0)
				So(t1["health"], ShouldEqual, "passing")
				So(t1["lastCheck"], ShouldEqual, "2026-11-22T12:00:00.000Z")
				So(t1["latencyMs"], ShouldEqual, 2.0)
			})

			Convey("/api/sd is Prometheus HTTP SD, one group per task", func() {
				rec := get(h, "/api/sd")
				So(rec.Code, ShouldEqual, 200)
				var groups []struct {
					Targets []string          `json:"targets"`
					Labels  map[string]string `json:"labels"`
				}
				So(json.Unmarshal(rec.Body.Bytes(), &groups), ShouldBeNil)
				So(groups, ShouldHaveLength, 2)
				So(groups[0].Targets, ShouldResemble, []string{"10.0.1.7:6767"})
				So(groups[0].Labels["__meta_swarmwatcher_service"], ShouldEqual, "goblog_accountservice")
				So(groups[0].Labels["__meta_swarmwatcher_health"], ShouldEqual, "passing")
				So(groups[0].Labels["__meta_swarmwatcher_task_slot"], ShouldEqual, "1")
				So(groups[0].Labels["__meta_swarmwatcher_service_label_swarmwatcher_port"], ShouldEqual, "6767")
				// Only allow-listed service labels leave the watcher.
				So(groups[0].Labels, ShouldNotContainKey, "__meta_swarmwatcher_service_label_com_docker_stack_namespace")
				So(groups[0].Labels, ShouldNotContainKey, "__meta_dockerswarm_service_label_com_docker_stack_namespace")
				So(groups[0].Labels["__meta_dockerswarm_service_label_swarmwatcher_port"], ShouldEqual, "6767")
				// The same facts under dockerswarm_sd's names.
				So(groups[0].Labels["__meta_dockerswarm_task_id"], ShouldEqual, "t1")
				So(groups[0].Labels["__meta_dockerswarm_task_slot"], ShouldEqual, "1")
				So(groups[0].Labels["__meta_dockerswarm_task_state"], ShouldEqual, "running")
				So(groups[0].Labels["__meta_dockerswarm_task_desired_state"], ShouldEqual, "running")
				So(groups[0].Labels["__meta_dockerswarm_service_name"], ShouldEqual, "goblog_accountservice")
				So(groups[0].Labels["__meta_dockerswarm_service_id"], ShouldEqual, "s1")
				So(groups[0].Labels["__meta_dockerswarm_service_mode"], ShouldEqual, "replicated")
				So(groups[0].Labels["__meta_dockerswarm_node_id"], ShouldEqual, "n1")
				So(groups[0].Labels["__meta_dockerswarm_node_hostname"], ShouldEqual, "swarm-1")
				So(groups[0].Labels["__meta_dockerswarm_node_availability"], ShouldEqual, "active")
				So(groups[0].Labels["__meta_dockerswarm_node_status"], ShouldEqual, "ready")
				So(groups[0].Labels["__meta_dockerswarm_node_address"], ShouldEqual, "192.168.1.10")
				So(groups[0].Labels["__meta_dockerswarm_network_name"], ShouldEqual, "goblog_net")
				// What the engine did not tell is left out rather than empty.
				So(groups[0].Labels, ShouldNotContainKey, "__meta_dockerswarm_task_container_id")
			})

			Convey("?service= narrows /api/services to one service", func() {
				var list []api.Service
				So(json.Unmarshal(get(h, "/api/services?service=goblog_accountservice").Body.Bytes(), &list), ShouldBeNil)
				So(list, ShouldHaveLength, 1)
				So(json.Unmarshal(get(h, "/api/services?service=nope").Body.Bytes(), &list), ShouldBeNil)
				So(list, ShouldHaveLength, 0)
			})

			Convey("/health is 200", func() {
				So(get(h, "/health").Code, ShouldEqual, 200)
			})

			Convey("when the engine fails, /health is 503 and the tasks are kept with health unknown", func() {
				d.set(swarm.Snapshot{}, errors.New("list services: dial unix /var/run/docker.sock: connect: permission denied"))
				So(w.Refresh(context.Background()), ShouldNotBeNil)
				rec := get(h, "/health")
				So(rec.Code, ShouldEqual, 503)
				So(rec.Body.String(), ShouldContainSubstring, "permission denied")
				var list []api.Service
				So(json.Unmarshal(get(h, "/api/services").Body.Bytes(), &list), ShouldBeNil)
				So(list[0].Tasks, ShouldHaveLength, 2)
				So(list[0].Tasks[0].Health, ShouldEqual, api.HealthUnknown)
				So(list[0].Tasks[0].Address, ShouldEqual, "10.0.1.7")
			})
		})

		Convey("/metrics serves the given registry", func() {
			rec := get(h, "/metrics")
			So(rec.Code, ShouldEqual, 200)
			So(rec.Body.String(), ShouldContainSubstring, "swarmwatcher_test_gauge")
		})

		Convey("/ is the page, locked down", func() {
			rec := get(h, "/")
			So(rec.Code, ShouldEqual, 200)
			So(rec.Header().Get("Content-Type"), ShouldStartWith, "text/html")
			So(rec.Header().Get("Content-Security-Policy"), ShouldContainSubstring, "default-src 'none'")
			body := rec.Body.String()
			So(body, ShouldContainSubstring, "EventSource")
			// Data only ever reaches the DOM through textContent.
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				So(body, ShouldNotContainSubstring, bad)
			}
			So(body, ShouldNotContainSubstring, "http://")
			So(body, ShouldNotContainSubstring, "https://")
		})

		Convey("unknown paths and methods get a JSON 404/405", func() {
			So(get(h, "/nope").Code, ShouldEqual, 404)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/services", nil))
			So(rec.Code, ShouldEqual, 405)
		})
	})
}

// sseReader reads events from a live stream.
type sseEvent struct{ id, event, data string }

func readEvent(t *testing.T, r *bufio.Reader) sseEvent {
	t.Helper()
	var ev sseEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			ev.event = "comment" + line
			return ev
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

func TestEventStream(t *testing.T) {
	d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1))}
	w := newWatcher(t, d)
	ctx := context.Background()
	_ = w.Refresh(ctx)
	w.Probe(ctx, false)
	srv := httptest.NewServer(handler(t, Config{Keepalive: 20 * time.Millisecond}, w))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)

	ev := readEvent(t, r)
	services := strings.TrimSpace(get(handler(t, Config{}, w), "/api/services").Body.String())
	if ev.event != "snapshot" || ev.data != services {
		t.Fatalf("first event %q data %s, want the snapshot equal to /api/services %s", ev.event, ev.data, services)
	}
	ev = readEvent(t, r)
	if ev.event != "status" || !strings.Contains(ev.data, `"stale":false`) {
		t.Fatalf("second event %+v, want the status", ev)
	}

	// Scale up: one task-added with an id.
	d.set(snapshot(task("t1", "10.0.1.7", 1), task("t2", "10.0.1.8", 2)), nil)
	_ = w.Refresh(ctx)
	for ev = readEvent(t, r); strings.HasPrefix(ev.event, "comment"); ev = readEvent(t, r) {
	}
	if ev.event != "task-added" || ev.id == "" {
		t.Fatalf("event %+v, want task-added with an id", ev)
	}
	var c map[string]any
	if err := json.Unmarshal([]byte(ev.data), &c); err != nil {
		t.Fatal(err)
	}
	if c["type"] != "task-added" || c["service"] != "goblog_accountservice" || c["at"] == "" || c["task"].(map[string]any)["address"] != "10.0.1.8" {
		t.Errorf("change = %v", c)
	}
	// Engine gone: a status event says stale, health changes follow.
	d.set(swarm.Snapshot{}, errors.New("engine gone"))
	_ = w.Refresh(ctx)
	for ev = readEvent(t, r); strings.HasPrefix(ev.event, "comment"); ev = readEvent(t, r) {
	}
	if ev.event != "status" || !strings.Contains(ev.data, `"stale":true`) || !strings.Contains(ev.data, "engine gone") {
		t.Fatalf("event %+v, want stale status", ev)
	}
	// Keepalive comments arrive while nothing changes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev = readEvent(t, r)
		if ev.event == "comment: keepalive" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no keepalive")
		}
	}
}

// blockingWriter is an SSE client that stops reading.
type blockingWriter struct {
	hdr     http.Header
	release chan struct{}
	writes  chan struct{}
}

func (b *blockingWriter) Header() http.Header { return b.hdr }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	b.writes <- struct{}{}
	<-b.release
	return 0, errors.New("client gone")
}
func (b *blockingWriter) Flush() {}

func TestSlowEventClientNeverBlocksTheWatcher(t *testing.T) {
	d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1))}
	w := newWatcher(t, d)
	h := handler(t, Config{ClientBuffer: 4}, w)
	bw := &blockingWriter{hdr: http.Header{}, release: make(chan struct{}), writes: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(bw, httptest.NewRequest(http.MethodGet, "/api/events?views=1", nil))
		close(done)
	}()
	<-bw.writes // the handler is now stuck writing the snapshot
	ctx := context.Background()
	finished := make(chan struct{})
	go func() {
		for i := range 100 {
			if i%2 == 0 {
				d.set(snapshot(task("t1", "10.0.1.7", 1), task("t2", "10.0.1.8", 2)), nil)
			} else {
				d.set(snapshot(task("t1", "10.0.1.7", 1)), nil)
			}
			_ = w.Refresh(ctx)
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher blocked on a client that does not read")
	}
	close(bw.release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not end after its client was dropped")
	}
}

// The stream outlives the server's WriteTimeout: each write extends its own
// deadline.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1))}
	w := newWatcher(t, d)
	_ = w.Refresh(context.Background())
	srv := httptest.NewUnstartedServer(handler(t, Config{Keepalive: 20 * time.Millisecond, WriteWait: time.Second}, w))
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	start := time.Now()
	keepalives := 0
	for time.Since(start) < 500*time.Millisecond {
		if ev := readEvent(t, r); ev.event == "comment: keepalive" {
			keepalives++
		}
	}
	if keepalives < 5 {
		t.Errorf("%d keepalives in 500ms", keepalives)
	}
}
