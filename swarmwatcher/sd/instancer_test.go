package sd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/goblog/goblog/swarmwatcher/api"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/kit/endpoint"
	kitsd "github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	"github.com/go-kit/log"
)

// feed is one connection of the fake watcher's event stream: whatever the
// test sends on out is written and flushed; closing out ends the response.
type feed struct{ out chan string }

func newFeed() *feed { return &feed{out: make(chan string, 16)} }

func (f *feed) event(name api.EventType, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	f.out <- fmt.Sprintf("event: %s\ndata: %s\n\n", name, b)
}

func (f *feed) raw(s string) { f.out <- s }
func (f *feed) end()         { close(f.out) }

// fakeWatcher serves /api/events, one queued feed per connection; with no
// feed queued it answers 503.
type fakeWatcher struct {
	srv   *httptest.Server
	feeds chan *feed
	mu    sync.Mutex
	conns int
}

func newFakeWatcher(t testing.TB) *fakeWatcher {
	t.Helper()
	fw := &fakeWatcher{feeds: make(chan *feed, 16)}
	fw.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/events" {
			http.NotFound(w, r)
			return
		}
		fw.mu.Lock()
		fw.conns++
		fw.mu.Unlock()
		var f *feed
		select {
		case f = <-fw.feeds:
		default:
			http.Error(w, "no feed", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case s, ok := <-f.out:
				if !ok {
					return
				}
				io.WriteString(w, s)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(fw.srv.Close)
	return fw
}

func (fw *fakeWatcher) connections() int {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.conns
}

func task(id, addr string, health api.Health) api.Task {
	return api.Task{ID: id, Slot: 1, Node: "n1", State: "running", DesiredState: "running",
		Address: addr, Port: 6767, Health: health, LastCheck: "2026-11-22T11:00:00Z"}
}

func svc(name string, tasks ...api.Task) api.Service {
	return api.Service{ID: "id-" + name, Name: name, Replicas: api.Replicas{Desired: len(tasks), Running: len(tasks)}, Tasks: tasks}
}

// sleeps records the backoff the Instancer asks for and waits only 1 ms.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func testConfig(fw *fakeWatcher, sl *sleeps) Config {
	return Config{
		WatcherURL:     fw.srv.URL,
		Service:        "goblog_accountservice",
		ConnectTimeout: 2 * time.Second,
		IdleTimeout:    2 * time.Second,
		MinBackoff:     100 * time.Millisecond,
		MaxBackoff:     800 * time.Millisecond,
		Sleep:          sl.sleep,
	}
}

func start(t *testing.T, cfg Config) (*Instancer, chan kitsd.Event) {
	t.Helper()
	in, err := NewInstancer(cfg)
	if err != nil {
		t.Fatalf("NewInstancer: %v", err)
	}
	t.Cleanup(in.Stop)
	ch := make(chan kitsd.Event, 64)
	in.Register(ch)
	return in, ch
}

// next returns the next event or fails after a generous deadline.
func next(t *testing.T, ch chan kitsd.Event) kitsd.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return kitsd.Event{}
	}
}

func wantSet(t *testing.T, ev kitsd.Event, wantErr bool, want ...string) {
	t.Helper()
	if (ev.Err != nil) != wantErr {
		t.Fatalf("event err = %v, want error: %v (instances %v)", ev.Err, wantErr, ev.Instances)
	}
	if len(want) == 0 && len(ev.Instances) == 0 {
		return
	}
	if !slices.Equal(ev.Instances, want) {
		t.Fatalf("instances = %v, want %v (err %v)", ev.Instances, want, ev.Err)
	}
}

func TestSnapshotPublishesPassingTasksOnly(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.raw(": hello\n\n")
	f.event("snapshot", []api.Service{
		svc("goblog_accountservice",
			task("a", "10.0.1.7", api.HealthPassing),
			task("b", "10.0.1.8", api.HealthStarting),
			task("c", "10.0.1.9", api.HealthCritical),
			task("d", "10.0.1.10", api.HealthDraining),
			task("e", "10.0.1.11", api.HealthWarning),
			task("f", "10.0.1.12", api.HealthUnknown),
			task("g", "10.0.1.5", api.HealthPassing),
			task("h", "", api.HealthPassing), // no address yet: unusable
		),
		svc("goblog_quotes-service", task("q", "10.0.1.20", api.HealthPassing)),
	})

	_, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.5:6767", "10.0.1.7:6767")
}

func TestServiceNameAndPortOverride(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{
		svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing)),
		svc("goblog_quotes-service", task("q", "10.0.1.20", api.HealthPassing)),
	})
	cfg := testConfig(fw, &sleeps{})
	cfg.Service = "quotes-service" // resolved to goblog_quotes-service
	cfg.Port = 8080
	_, ch := start(t, cfg)
	wantSet(t, next(t, ch), false, "10.0.1.20:8080")
}

func TestEventsAddFlipRemove(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")

	change := func(typ api.EventType, tk *api.Task) api.Change {
		return api.Change{Type: typ, Service: "goblog_accountservice", Task: tk, At: "2026-11-22T11:00:01Z"}
	}
	b := task("b", "10.0.1.8", api.HealthStarting)
	f.raw("id: 1\n")
	f.event(api.TaskAdded, change(api.TaskAdded, &b)) // starting: no change to publish
	b.Health = api.HealthPassing
	f.raw("id: 2\n")
	f.event(api.HealthChanged, change(api.HealthChanged, &b))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767")

	a := task("a", "10.0.1.7", api.HealthCritical)
	f.event(api.HealthChanged, change(api.HealthChanged, &a))
	wantSet(t, next(t, ch), false, "10.0.1.8:6767")

	// Other services' events and unknown event types change nothing.
	q := task("q", "10.0.1.20", api.HealthPassing)
	f.event(api.TaskAdded, api.Change{Type: api.TaskAdded, Service: "goblog_quotes-service", Task: &q})
	f.event("task-teleported", map[string]string{"weird": "yes"})
	f.raw("data: {\"type\":\"no event name\"}\n\n")

	f.event(api.TaskRemoved, change(api.TaskRemoved, &b))
	wantSet(t, next(t, ch), false)

	a.Health = api.HealthPassing
	f.event(api.HealthChanged, change(api.HealthChanged, &a))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")

	f.event(api.ServiceRemoved, api.Change{Type: api.ServiceRemoved, Service: "goblog_accountservice"})
	ev := next(t, ch)
	wantSet(t, ev, true, "10.0.1.7:6767") // not listed any more: error, last good set kept
	if !errors.Is(ev.Err, ErrServiceNotFound) {
		t.Fatalf("err = %v, want ErrServiceNotFound", ev.Err)
	}
	if in.Malformed() != 0 {
		t.Fatalf("malformed = %d, want 0", in.Malformed())
	}
}

func TestMalformedEventIsSkipped(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")

	f.raw("event: task-added\ndata: {\"type\":\"task-added\",\"service\":\n\n")               // truncated JSON
	f.raw("event: health-changed\ndata: {\"service\":\"goblog_accountservice\"}\n\n")         // no task
	f.raw("event: status\ndata: [1,2]\n\n")                                                   // wrong shape
	f.raw("event: task-added\ndata: {\"service\":\"goblog_accountservice\",\"task\":{}}\n\n") // no task id
	b := task("b", "10.0.1.8", api.HealthPassing)
	f.event(api.TaskAdded, api.Change{Type: api.TaskAdded, Service: "goblog_accountservice", Task: &b})
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767")
	if got := in.Malformed(); got != 4 {
		t.Fatalf("malformed = %d, want 4", got)
	}
}

func TestFeedCutMidEventKeepsLastGoodSetAndReconnects(t *testing.T) {
	fw := newFakeWatcher(t)
	sl := &sleeps{}
	f1 := newFeed()
	fw.feeds <- f1
	f1.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("b", "10.0.1.8", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, sl))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767")

	// The next connection, ready before the cut: b has gone, c has come.
	f2 := newFeed()
	fw.feeds <- f2
	f2.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("c", "10.0.1.9", api.HealthPassing))})

	// Cut in the middle of an event that would remove a: it must not apply.
	f1.raw("event: task-removed\ndata: {\"type\":\"task-removed\",\"service\":\"goblog_accountservice\",\"task\":{\"id\":\"a\"")
	f1.end()

	ev := next(t, ch)
	wantSet(t, ev, true, "10.0.1.7:6767", "10.0.1.8:6767")
	if got := in.State(); !slices.Equal(got.Instances, ev.Instances) || got.Err == nil {
		t.Fatalf("State() = %+v, want the last good set with the error", got)
	}
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.9:6767")
	if n := fw.connections(); n != 2 {
		t.Fatalf("connections = %d, want 2", n)
	}
	if d := sl.get(); len(d) != 1 || d[0] < 50*time.Millisecond || d[0] > 100*time.Millisecond {
		t.Fatalf("backoff = %v, want one delay in [50ms, 100ms]", d)
	}
}

func TestServerGoneBacksOffAndKeepsSet(t *testing.T) {
	fw := newFakeWatcher(t)
	sl := &sleeps{}
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, sl))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")

	fw.srv.CloseClientConnections()
	fw.srv.Close()
	ev := next(t, ch)
	wantSet(t, ev, true, "10.0.1.7:6767")

	// Let it fail a few times: the delays double up to MaxBackoff, jittered
	// into [d/2, d]; the published set never empties.
	deadline := time.Now().Add(5 * time.Second)
	for len(sl.get()) < 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := sl.get()
	if len(got) < 6 {
		t.Fatalf("only %d reconnect attempts", len(got))
	}
	for i, d := range got[:6] {
		ceil := min(100*time.Millisecond<<i, 800*time.Millisecond)
		if d < ceil/2 || d > ceil {
			t.Errorf("backoff %d = %v, want in [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	if st := in.State(); st.Err == nil || !slices.Equal(st.Instances, []string{"10.0.1.7:6767"}) {
		t.Fatalf("State() = %+v, want the last good set with an error", st)
	}
	for len(ch) > 0 {
		wantSet(t, <-ch, true, "10.0.1.7:6767")
	}
}

func TestStaleIsTreatedAsLostFeed(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("b", "10.0.1.8", api.HealthPassing))})
	_, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767")

	f.event("status", api.Status{Stale: true, Error: "docker: context deadline exceeded", Since: "2026-11-22T11:00:00Z"})
	ev := next(t, ch)
	wantSet(t, ev, true, "10.0.1.7:6767", "10.0.1.8:6767")
	if !errors.Is(ev.Err, ErrStale) || !strings.Contains(ev.Err.Error(), "deadline exceeded") {
		t.Fatalf("err = %v, want ErrStale with the watcher's reason", ev.Err)
	}
	// While stale, changes are folded in but not published.
	c := task("c", "10.0.1.9", api.HealthPassing)
	f.event(api.TaskAdded, api.Change{Type: api.TaskAdded, Service: "goblog_accountservice", Task: &c})
	f.event("status", api.Status{Stale: false, Since: "2026-11-22T11:00:05Z"})
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767", "10.0.1.9:6767")

	// Every task unknown: the same as stale, the set stays.
	for _, id := range []string{"a", "b", "c"} {
		tk := task(id, "", api.HealthUnknown)
		f.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice", Task: &tk})
	}
	// a, then b leave the set; when c turns unknown too the error comes.
	wantSet(t, next(t, ch), false, "10.0.1.8:6767", "10.0.1.9:6767")
	wantSet(t, next(t, ch), false, "10.0.1.9:6767")
	ev = next(t, ch)
	wantSet(t, ev, true, "10.0.1.9:6767")
	if !errors.Is(ev.Err, ErrStale) {
		t.Fatalf("err = %v, want ErrStale", ev.Err)
	}
}

func TestQuietFeedIsLost(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	cfg := testConfig(fw, &sleeps{})
	cfg.IdleTimeout = 50 * time.Millisecond
	_, ch := start(t, cfg)
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")
	ev := next(t, ch) // no keepalive within 50 ms
	wantSet(t, ev, true, "10.0.1.7:6767")
	if !strings.Contains(ev.Err.Error(), "nothing received") {
		t.Fatalf("err = %v, want a quiet-feed error", ev.Err)
	}
}

func TestWatcherThatNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and never answer
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	in, err := NewInstancer(Config{
		WatcherURL: "http://" + ln.Addr().String(), Service: "x",
		ConnectTimeout: 50 * time.Millisecond, Sleep: (&sleeps{}).sleep,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	st := in.State()
	if st.Err == nil || !strings.Contains(st.Err.Error(), "no answer within") {
		t.Fatalf("State() = %+v, want a connect-timeout error", st)
	}
}

func TestNon200IsAnError(t *testing.T) {
	fw := newFakeWatcher(t) // no feed queued: 503
	in, err := NewInstancer(testConfig(fw, &sleeps{}))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	if st := in.State(); st.Err == nil || !strings.Contains(st.Err.Error(), "503") || st.Instances != nil {
		t.Fatalf("State() = %+v, want a 503 error and no instances", st)
	}
}

func TestStopEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	in, err := NewInstancer(testConfig(fw, &sleeps{}))
	if err != nil {
		t.Fatal(err)
	}
	// A registered channel nobody reads must not keep Stop from returning.
	stuck := make(chan kitsd.Event)
	go in.Register(stuck)
	time.Sleep(10 * time.Millisecond)
	done := make(chan struct{})
	go func() { in.Stop(); in.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	fw.srv.Close()
	fw.srv.Client().CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Stop, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestUnreadableSnapshotReconnects(t *testing.T) {
	fw := newFakeWatcher(t)
	f1, f2 := newFeed(), newFeed()
	fw.feeds <- f1
	fw.feeds <- f2
	f1.raw("event: snapshot\ndata: [{\"name\":\n\n")
	f2.event("snapshot", []api.Service{svc("goblog_accountservice", task("a", "10.0.1.7", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	ev := next(t, ch)
	if ev.Err != nil { // the first result may be the error, then the set
		wantSet(t, ev, true)
		ev = next(t, ch)
	}
	wantSet(t, ev, false, "10.0.1.7:6767")
	if in.Malformed() != 1 {
		t.Fatalf("malformed = %d, want 1", in.Malformed())
	}
}

// TestWithGoKitBalancer runs the Instancer in go-kit's usual chain and shows
// the balancer keeps its endpoints when the watcher goes away.
func TestWithGoKitBalancer(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("b", "10.0.1.8", api.HealthPassing))})
	in, ch := start(t, testConfig(fw, &sleeps{}))
	next(t, ch)

	factory := func(instance string) (endpoint.Endpoint, io.Closer, error) {
		return func(context.Context, any) (any, error) { return instance, nil }, nil, nil
	}
	endpointer := kitsd.NewEndpointer(in, factory, log.NewNopLogger())
	defer endpointer.Close()
	call := lb.Retry(2, time.Second, lb.NewRoundRobin(endpointer))

	seen := func() map[string]int {
		m := map[string]int{}
		for i := 0; i < 10; i++ {
			r, err := call(context.Background(), nil)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			m[r.(string)]++
		}
		return m
	}
	waitFor := func(want map[string]int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		var got map[string]int
		for time.Now().Before(deadline) {
			if got = seen(); fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("balanced over %v, want %v", got, want)
	}
	waitFor(map[string]int{"10.0.1.7:6767": 5, "10.0.1.8:6767": 5})

	a := task("a", "10.0.1.7", api.HealthCritical)
	f.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice", Task: &a})
	waitFor(map[string]int{"10.0.1.8:6767": 10})

	fw.srv.CloseClientConnections()
	fw.srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for in.State().Err == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if in.State().Err == nil {
		t.Fatal("no error after the watcher went away")
	}
	waitFor(map[string]int{"10.0.1.8:6767": 10})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{Service: "a"}, "watcher url"},
		{"bad scheme", Config{WatcherURL: "ftp://x", Service: "a"}, "watcher url"},
		{"no service", Config{WatcherURL: "http://x:6969"}, "service name"},
		{"bad port", Config{WatcherURL: "http://x", Service: "a", Port: 70000}, "port"},
		{"bad subset", Config{WatcherURL: "http://x", Service: "a", Subset: &SubsetConfig{Size: 0}}, "subset"},
		{"client timeout", Config{WatcherURL: "http://x", Service: "a", Client: &http.Client{Timeout: time.Second}}, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
			if _, err := NewInstancer(tc.cfg); err == nil {
				t.Fatal("NewInstancer accepted a bad config")
			}
		})
	}
	if err := (Config{WatcherURL: "http://swarmwatcher:6969", Service: "goblog_accountservice"}).Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
}

func TestInstancerSubset(t *testing.T) {
	fw := newFakeWatcher(t)
	f := newFeed()
	fw.feeds <- f
	f.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("b", "10.0.1.8", api.HealthPassing),
		task("c", "10.0.1.9", api.HealthPassing), task("d", "10.0.1.10", api.HealthPassing),
		task("e", "10.0.1.11", api.HealthCritical))})
	cfg := testConfig(fw, &sleeps{})
	cfg.Subset = &SubsetConfig{ClientID: 3, Size: 2}
	_, ch := start(t, cfg)
	all := []string{"10.0.1.10:6767", "10.0.1.7:6767", "10.0.1.8:6767", "10.0.1.9:6767"}
	wantSet(t, next(t, ch), false, Subset(all, 3, 2)...)
}

// TestNoVerdictKeepsTheSet: a watcher that has just started lists the tasks
// before probing them ("starting"); the Instancer must not publish an empty
// set for it (the edge would answer 502 until the first probes).
func TestNoVerdictKeepsTheSet(t *testing.T) {
	fw := newFakeWatcher(t)
	f1, f2 := newFeed(), newFeed()
	fw.feeds <- f1
	f1.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthPassing), task("b", "10.0.1.8", api.HealthPassing))})
	_, ch := start(t, testConfig(fw, &sleeps{}))
	wantSet(t, next(t, ch), false, "10.0.1.7:6767", "10.0.1.8:6767")

	// The watcher restarts: its first view has the tasks, not yet probed.
	fw.feeds <- f2
	f1.end()
	wantSet(t, next(t, ch), true, "10.0.1.7:6767", "10.0.1.8:6767") // the cut
	f2.event("snapshot", []api.Service{svc("goblog_accountservice",
		task("a", "10.0.1.7", api.HealthStarting), task("b", "10.0.1.8", api.HealthStarting))})
	ev := next(t, ch)
	wantSet(t, ev, true, "10.0.1.7:6767", "10.0.1.8:6767")
	if !errors.Is(ev.Err, ErrNoVerdict) {
		t.Fatalf("err = %v, want ErrNoVerdict", ev.Err)
	}
	a := task("a", "10.0.1.7", api.HealthPassing)
	f2.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice", Task: &a})
	wantSet(t, next(t, ch), false, "10.0.1.7:6767")
	// Once a verdict exists, a task that is only starting is simply left out.
	c := task("c", "10.0.1.9", api.HealthStarting)
	f2.event(api.TaskAdded, api.Change{Type: api.TaskAdded, Service: "goblog_accountservice", Task: &c})
	a.Health = api.HealthCritical
	f2.event(api.HealthChanged, api.Change{Type: api.HealthChanged, Service: "goblog_accountservice", Task: &a})
	wantSet(t, next(t, ch), false)
}
