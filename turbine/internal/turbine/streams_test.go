package turbine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/internal/nettest"
)

// testConfig is DefaultConfig with intervals short enough for tests.
func testConfig() Config {
	c := DefaultConfig()
	c.VerifyInterval = 10 * time.Millisecond
	c.MinBackoff, c.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	c.IdleTimeout = time.Second
	return c
}

// fakeVerifier verifies every address in ok; err, when set, is the watcher being away;
// tenants names the tenant of an address.
type fakeVerifier struct {
	mu      sync.Mutex
	ok      map[string]bool
	tenants map[string]string
	err     error
}

func verifyAll() *fakeVerifier { return &fakeVerifier{} }

func (f *fakeVerifier) RunningTask(_ context.Context, _, address string) (Placement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Placement{}, f.err
	}
	return Placement{Running: f.ok == nil || f.ok[address], Tenant: f.tenants[address]}, nil
}

func (f *fakeVerifier) set(ok map[string]bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ok, f.err = ok, err
}

// hystrixServer replays a recorded stream once a connection opens, then pings until the
// client leaves.
func hystrixServer(t *testing.T, file string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return streamServer(t, func(w io.Writer) { _, _ = w.Write(raw); _, _ = w.Write([]byte("data: {not json}\n\n")) })
}

// streamServer answers /hystrix.stream with what write sends, then pings until the client
// leaves; it counts the connections.
func streamServer(t *testing.T, write func(io.Writer)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hystrix.stream" {
			http.NotFound(w, r)
			return
		}
		conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		write(w)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if _, err := w.Write([]byte(": ping\n\n")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}))
	// Streams may still read it when the test ends: cut them, or Close waits for them.
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv, &conns
}

func instanceFor(t *testing.T, id, url string) discoverytoken.Instance {
	t.Helper()
	host, port, err := net.SplitHostPort(url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return discoverytoken.Instance{InstanceID: id, Service: "accountservice", Address: host, Port: p, State: discoverytoken.StateUp}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func reporting(agg *Aggregator) int {
	for _, s := range agg.Snapshot(Cluster{}) {
		if s["type"] == "HystrixCommand" {
			n, _ := strconv.Atoi(string(s["reportingHosts"].(json.Number)))
			return n
		}
	}
	return 0
}

// startStreams runs Streams until the test ends.
func startStreams(t *testing.T, cfg Config, agg *Aggregator, v Verifier) *Streams {
	t.Helper()
	s := NewStreams(cfg, agg, v, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func TestStreamsFollowTheRegistry(t *testing.T) {
	okSrv, okConns := hystrixServer(t, "testdata/host-ok.stream")
	failSrv, _ := hystrixServer(t, "testdata/host-failing.stream")
	agg := NewAggregator(0, 0)
	s := startStreams(t, testConfig(), agg, verifyAll())

	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventAdded, Instance: instanceFor(t, "a", okSrv.URL)})
	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventAdded, Instance: instanceFor(t, "b", failSrv.URL)})
	waitFor(t, "both streams connect and report", func() bool {
		c := s.Connected()
		return c["a"] && c["b"] && reporting(agg) == 2
	})
	if okConns.Load() != 1 {
		t.Fatalf("%d connections to one instance, want 1", okConns.Load())
	}
	if st := s.Status()["a"]; !st.Verified || st.Dials != 1 {
		t.Fatalf("status of a: %+v, want verified with one dial", st)
	}
	waitFor(t, "the bad line is counted", func() bool { return s.BadLines() >= 2 })

	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventRemoved, Instance: instanceFor(t, "b", failSrv.URL)})
	if n := reporting(agg); n != 1 {
		t.Fatalf("right after removal reportingHosts = %d, want 1", n)
	}
	if _, ok := s.Connected()["b"]; ok {
		t.Fatal("removed instance still listed")
	}
	waitFor(t, "one stream active", func() bool { return s.Stats().Active == 1 })
}

// TestStreamsRecordTheWatchersTenant: an instance of a tenant's swarm service streams under
// the tenant the verifier reports, so ?cluster=<service>@<tenant> aggregates it and the plain
// cluster does not.
func TestStreamsRecordTheWatchersTenant(t *testing.T) {
	plain, _ := hystrixServer(t, "testdata/host-ok.stream")
	// The canary listens on another loopback address, so the fake verifier tells them apart.
	raw, err := os.ReadFile("testdata/host-ok.stream")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.3: %v", err)
	}
	canary := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(raw)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})}}
	canary.Start()
	t.Cleanup(func() { canary.CloseClientConnections(); canary.Close() })
	agg := NewAggregator(0, 0)
	canaryInst := instanceFor(t, "c", canary.URL)
	v := &fakeVerifier{tenants: map[string]string{"127.0.0.3": "canary"}}
	s := startStreams(t, testConfig(), agg, v)
	s.Add(instanceFor(t, "p", plain.URL))
	s.Add(canaryInst)
	waitFor(t, "both streams connect and report", func() bool {
		c := s.Connected()
		return c["p"] && c["c"] && reporting(agg) == 2
	})
	if st := s.Status(); st["c"].Tenant != "canary" || st["p"].Tenant != "" {
		t.Fatalf("status %+v, want c of tenant canary, p plain", st)
	}
	hosts := func(cluster string) int {
		cl, err := ParseCluster(cluster)
		if err != nil {
			t.Fatal(err)
		}
		for _, sm := range agg.Snapshot(cl) {
			if sm["type"] == "HystrixCommand" {
				n, _ := strconv.Atoi(string(sm["reportingHosts"].(json.Number)))
				return n
			}
		}
		return 0
	}
	for cluster, want := range map[string]int{"accountservice": 2, "accountservice@canary": 1, "accountservice@": 1, "@canary": 1, "@shadow": 0} {
		if got := hosts(cluster); got != want {
			t.Errorf("cluster %q: reportingHosts %d, want %d", cluster, got, want)
		}
	}
}

func TestStreamsRetryWhileTheInstanceLives(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "not yet", http.StatusServiceUnavailable)
	}))
	defer flaky.Close()
	s := startStreams(t, testConfig(), NewAggregator(0, 0), verifyAll())
	s.Add(instanceFor(t, "a", flaky.URL))
	waitFor(t, "several retries", func() bool { return calls.Load() >= 3 })
	if s.Connected()["a"] {
		t.Fatal("a 503 counts as connected")
	}
	s.Remove("a")
	waitFor(t, "the stream goroutine ends on removal", func() bool { return s.Stats().Active == 0 })
	n := calls.Load()
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != n {
		t.Fatal("still retrying after removal")
	}
}

func TestStreamsDropAHungConnection(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // headers, then silence
	}))
	defer hung.Close()
	cfg := testConfig()
	cfg.IdleTimeout, cfg.MinBackoff, cfg.MaxBackoff = 50*time.Millisecond, time.Hour, time.Hour
	s := startStreams(t, cfg, NewAggregator(0, 0), verifyAll())
	s.Add(instanceFor(t, "a", hung.URL))
	waitFor(t, "connected", func() bool { return s.Connected()["a"] })
	waitFor(t, "the idle watchdog drops it", func() bool { return !s.Connected()["a"] })
}

// fakeWatcher serves /api/services?logical=<name> as the swarmwatcher does: for
// accountservice, its plain service goblog_accountservice with the given running task
// addresses and a shut-down task, and its canary goblog_accountservice-canary (tenant canary)
// with one running task at 10.7.7.7; another service's task is in the answer too (like a
// watcher that ignores the filter). It counts the queries.
func fakeWatcher(t *testing.T, running ...string) (*httptest.Server, *atomic.Int32, *atomic.Bool) {
	t.Helper()
	var queries atomic.Int32
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		if down.Load() {
			http.Error(w, "engine unreachable", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/api/services" || r.URL.Query().Get("logical") == "" || r.URL.Query().Has("service") {
			http.Error(w, "unexpected query "+r.URL.String(), http.StatusBadRequest)
			return
		}
		var tasks []string
		for _, a := range running {
			tasks = append(tasks, fmt.Sprintf(`{"id":"t-%s","state":"running","desiredState":"running","address":%q,"port":6767,"health":"passing"}`, a, a))
		}
		tasks = append(tasks, `{"id":"t-old","state":"shutdown","desiredState":"shutdown","address":"10.9.9.9"}`)
		fmt.Fprintf(w, `[{"id":"s1","name":"goblog_accountservice","logical":"accountservice","replicas":{"desired":1,"running":1},"tasks":[%s]},
			{"id":"s3","name":"goblog_accountservice-canary","logical":"accountservice","tenant":"canary","replicas":{"desired":1,"running":1},
			 "tasks":[{"id":"c","state":"running","address":"10.7.7.7","tenant":"canary"}]},
			{"id":"s4","name":"goblog_accountservice-bad","logical":"accountservice","tenant":"no good","replicas":{"desired":1,"running":1},
			 "tasks":[{"id":"b","state":"running","address":"10.6.6.6","tenant":"no good"}]},
			{"id":"s5","name":"other_accountservice","logical":"accountservice","replicas":{"desired":1,"running":1},
			 "tasks":[{"id":"o","state":"running","address":"10.5.5.5"}]},
			{"id":"s2","name":"goblog_quotes-service","logical":"quotes-service","replicas":{"desired":1,"running":1},"tasks":[{"id":"q","state":"running","address":"10.8.8.8"}]}]`,
			strings.Join(tasks, ","))
	}))
	t.Cleanup(srv.Close)
	return srv, &queries, &down
}

func TestWatcherVerifier(t *testing.T) {
	srv, queries, down := fakeWatcher(t, "127.0.0.1", "::ffff:10.0.0.5")
	v := NewWatcherVerifier(srv.URL, "goblog", time.Hour, time.Second)
	now := time.Unix(1000, 0)
	v.now = func() time.Time { return now }
	ctx := context.Background()
	for _, c := range []struct {
		addr string
		want Placement
	}{
		{"127.0.0.1", Placement{Running: true}},
		{"10.0.0.5", Placement{Running: true}},                   // the same address spelled another way
		{"10.7.7.7", Placement{Running: true, Tenant: "canary"}}, // the canary version, its tenant the watcher's
		{"10.9.9.9", Placement{}},                                // a task, but not running
		{"10.8.8.8", Placement{}},                                // a running task of another service
		{"10.6.6.6", Placement{}},                                // a tenant that is no tenant name
		{"10.5.5.5", Placement{}},                                // another stack's accountservice
		{"169.254.169.254", Placement{}},
	} {
		got, err := v.RunningTask(ctx, "accountservice", c.addr)
		if err != nil || got != c.want {
			t.Errorf("RunningTask(%s) = %+v, %v; want %+v", c.addr, got, err, c.want)
		}
	}
	if q := queries.Load(); q != 1 {
		t.Fatalf("%d watcher queries for eight checks within the cache TTL, want 1", q)
	}
	if st := v.Stats(); st.BadTenants != 1 {
		t.Fatalf("stats %+v, want the invalid tenant counted once", st)
	}
	before := v.Stats()
	down.Store(true)
	now = now.Add(2 * time.Hour)
	if pl, err := v.RunningTask(ctx, "accountservice", "127.0.0.1"); err == nil || pl.Running {
		t.Fatalf("watcher down: %+v, %v; want an error", pl, err)
	}
	if after := v.Stats(); after.Errors != before.Errors+1 || after.LastError == "" {
		t.Fatalf("watcher stats after an error: %+v (before %+v)", after, before)
	}
	// A cut connection (the listener closes) is an error too, not "not a task".
	srv.Close()
	if _, err := v.RunningTask(ctx, "accountservice", "127.0.0.1"); err == nil {
		t.Fatal("closed watcher: no error")
	}
}

// TestWatcherVerifierWithoutTenants: a watcher from before tenants ignores ?logical= and
// answers every service without logical names; the plain service is then the only version.
func TestWatcherVerifierWithoutTenants(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"id":"s1","name":"goblog_accountservice","tasks":[{"id":"a","state":"running","address":"10.0.0.1"}]},
			{"id":"s2","name":"goblog_accountservice-canary","tasks":[{"id":"c","state":"running","address":"10.0.0.2"}]},
			{"id":"s3","name":"other_accountservice","tasks":[{"id":"o","state":"running","address":"10.0.0.3"}]}]`)
	}))
	defer srv.Close()
	v := NewWatcherVerifier(srv.URL, "goblog", time.Hour, time.Second)
	for addr, want := range map[string]bool{"10.0.0.1": true, "10.0.0.2": false, "10.0.0.3": false} {
		if pl, err := v.RunningTask(context.Background(), "accountservice", addr); err != nil || pl.Running != want || pl.Tenant != "" {
			t.Errorf("RunningTask(%s) = %+v, %v; want running %v, no tenant", addr, pl, err, want)
		}
	}
}

func TestWatcherVerifierCacheIsBounded(t *testing.T) {
	srv, _, _ := fakeWatcher(t)
	v := NewWatcherVerifier(srv.URL, "goblog", time.Hour, time.Second)
	for i := range maxCachedServices + 1 {
		_, _ = v.RunningTask(context.Background(), fmt.Sprintf("s%d", i), "10.0.0.1")
	}
	v.mu.Lock()
	n := len(v.cache)
	v.mu.Unlock()
	if st := v.Stats(); n > maxCachedServices || st.CacheFull != 1 {
		t.Fatalf("cache holds %d services, cap %d; stats %+v", n, maxCachedServices, st)
	}
}

func TestWatcherVerifierDeadline(t *testing.T) {
	silent, _ := nettest.SilentListener(t) // accepts and never answers
	v := NewWatcherVerifier("http://"+silent, "goblog", time.Second, 50*time.Millisecond)
	if _, err := v.RunningTask(context.Background(), "accountservice", "10.0.0.1"); err == nil {
		t.Fatal("a silent watcher answered")
	}
}

// TestStreamsDialOnlyVerifiedInstances: through a fake watcher, a task's address is dialled,
// an address that is no task is listed unverified and never dialled, and with the watcher
// down nothing new is dialled while the existing stream stays connected.
func TestStreamsDialOnlyVerifiedInstances(t *testing.T) {
	task, taskConns := hystrixServer(t, "testdata/host-ok.stream")
	// The impostor listens on another loopback address, so the watcher can tell them apart.
	impostorLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2: %v", err)
	}
	var impostorConns atomic.Int32
	impostor := &httptest.Server{Listener: impostorLn, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		impostorConns.Add(1)
	})}}
	impostor.Start()
	defer impostor.Close()

	watcher, _, down := fakeWatcher(t, "127.0.0.1")
	v := NewWatcherVerifier(watcher.URL, "goblog", time.Millisecond, time.Second)
	s := startStreams(t, testConfig(), NewAggregator(0, 0), v)

	s.Add(instanceFor(t, "task", task.URL))
	s.Add(instanceFor(t, "impostor", impostor.URL))
	waitFor(t, "the task's stream connects", func() bool { return s.Connected()["task"] })
	before := s.Stats()
	waitFor(t, "the impostor is refused again", func() bool { return s.Stats().Unverified >= before.Unverified+3 })
	if st := s.Status()["impostor"]; st.Verified || st.Dials != 0 || st.Connected {
		t.Fatalf("impostor status %+v: want unverified, never dialled", st)
	}
	if n := impostorConns.Load(); n != 0 {
		t.Fatalf("the impostor was dialled %d times", n)
	}

	// The watcher goes away: a new instance (even a real task) is not dialled, the
	// connected stream stays.
	down.Store(true)
	task2, task2Conns := hystrixServer(t, "testdata/host-ok.stream")
	before = s.Stats()
	s.Add(instanceFor(t, "task2", task2.URL))
	waitFor(t, "new dials held back", func() bool { return s.Stats().WatcherDown >= before.WatcherDown+3 })
	if n := task2Conns.Load(); n != 0 {
		t.Fatalf("dialled %d times while the watcher was down", n)
	}
	if !s.Connected()["task"] || taskConns.Load() != 1 {
		t.Fatalf("the existing stream did not stay: connected %v, connections %d", s.Connected()["task"], taskConns.Load())
	}
	down.Store(false)
	waitFor(t, "task2 dialled once the watcher is back", func() bool { return s.Connected()["task2"] })
	if n := impostorConns.Load(); n != 0 {
		t.Fatalf("the impostor was dialled %d times", n)
	}
}

func TestStreamsCapTheirNumber(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreams = 2
	var srvs []*httptest.Server
	for range 3 {
		srv, _ := hystrixServer(t, "testdata/host-ok.stream")
		srvs = append(srvs, srv)
	}
	s := startStreams(t, cfg, NewAggregator(0, 0), verifyAll())
	before := s.Stats()
	for i, srv := range srvs {
		s.Add(instanceFor(t, fmt.Sprint("i", i), srv.URL))
	}
	waitFor(t, "two streams connected, the third capped", func() bool {
		st := s.Stats()
		return st.Connected == 2 && st.CappedStreams == before.CappedStreams+1
	})
	if st := s.Stats(); st.Active != 2 {
		t.Fatalf("%d streams active, cap 2", st.Active)
	}
	s.Remove("i0")
	waitFor(t, "the waiting instance gets the freed slot", func() bool { return s.Connected()["i2"] })
}

func TestStreamsCapConcurrentDials(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConcurrentDials = 1
	release := make(chan struct{})
	var inFlight, most atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		inFlight.Add(-1)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer slow.Close()
	s := startStreams(t, cfg, NewAggregator(0, 0), verifyAll())
	before := s.Stats()
	for i := range 3 {
		s.Add(instanceFor(t, fmt.Sprint("i", i), slow.URL))
	}
	waitFor(t, "dials wait for the slot", func() bool { return s.Stats().DialWaits >= before.DialWaits+2 })
	close(release)
	waitFor(t, "all three connect", func() bool { return s.Stats().Connected == 3 })
	if m := most.Load(); m != 1 {
		t.Fatalf("%d dials in flight at once, cap 1", m)
	}
}

// TestStreamsCutAHostileStream: huge lines, many keys and an endless event are cut and
// counted, and the honest stream beside them keeps reporting.
func TestStreamsCutAHostileStream(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLine, cfg.MaxKeysPerHost, cfg.MaxBytesPerHost = 4<<10, 5, 16<<10
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour // one connection each
	honest, _ := hystrixServer(t, "testdata/host-ok.stream")
	huge, _ := streamServer(t, func(w io.Writer) {
		fmt.Fprintf(w, "data: {\"type\":\"HystrixCommand\",\"name\":\"x\",\"pad\":%q}\n\n", strings.Repeat("a", 8<<10))
	})
	many, _ := streamServer(t, func(w io.Writer) {
		for i := range 50 {
			fmt.Fprintf(w, "data: {\"type\":\"HystrixCommand\",\"name\":\"k%d\",\"requestCount\":1}\n\n", i)
		}
	})
	endless, _ := streamServer(t, func(w io.Writer) {
		for range 100 { // 100 data lines of 1 KiB, never an empty line to end the event
			fmt.Fprintf(w, "data: %s\n", strings.Repeat("b", 1<<10))
		}
	})
	agg := NewAggregator(cfg.MaxKeysPerHost, cfg.MaxBytesPerHost)
	s := startStreams(t, cfg, agg, verifyAll())
	before := s.Stats()
	for id, srv := range map[string]*httptest.Server{"honest": honest, "huge": huge, "many": many, "endless": endless} {
		s.Add(instanceFor(t, id, srv.URL))
	}
	waitFor(t, "each hostile stream cut once", func() bool {
		st := s.Stats()
		return st.CutLineTooLong == before.CutLineTooLong+1 && st.CutTooManyKeys == before.CutTooManyKeys+1 &&
			st.CutTooManyBytes == before.CutTooManyBytes+1
	})
	waitFor(t, "the honest stream reports alone", func() bool { return s.Connected()["honest"] && reporting(agg) == 1 })
	for _, id := range []string{"huge", "many", "endless"} {
		if s.Connected()[id] {
			t.Errorf("%s still connected", id)
		}
	}
	if k := agg.Keys(); k > 2+cfg.MaxKeysPerHost {
		t.Errorf("%d keys aggregated after the cut", k)
	}
}

func TestConsumeStopsAtTheEnd(t *testing.T) {
	s := NewStreams(testConfig(), NewAggregator(0, 0), verifyAll(), nil)
	h := s.agg.AddHost("h", "x", "")
	err := s.consume(strings.NewReader("data: {\"type\":\"a\",\"name\":\"b\"}\n\n"), h, func() {}, func() {})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("consume = %v, want the end of the stream", err)
	}
	if s.agg.Keys() != 1 {
		t.Fatal("the sample was not aggregated")
	}
}
