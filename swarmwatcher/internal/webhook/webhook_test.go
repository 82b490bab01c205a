package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// change is what a receiver decodes; N numbers the test's changes (sent
// in the "at" field).
type change struct {
	Type    string `json:"type"`
	Service string `json:"service"`
	At      string `json:"at"`
	N       int    `json:"-"`
}

// chg is the n-th change the test sends.
func chg(typ, service string, n int) api.Change {
	if typ == "" {
		typ = string(api.TaskAdded)
	}
	return api.Change{Type: api.EventType(typ), Service: service, At: strconv.Itoa(n)}
}

// receiver records what it was sent; answer decides each reply.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []change
	hdrs   []http.Header
	bodies [][]byte // raw, as received
	calls  int
	answer func(call int, w http.ResponseWriter, r *http.Request) // nil: 204
}

func newReceiver(t *testing.T, answer func(int, http.ResponseWriter, *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.calls++
		call := rc.calls
		var c change
		if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/json" && json.Unmarshal(body, &c) == nil {
			c.N, _ = strconv.Atoi(c.At)
			rc.got = append(rc.got, c)
			rc.hdrs = append(rc.hdrs, r.Header.Clone())
			rc.bodies = append(rc.bodies, body)
		}
		rc.mu.Unlock()
		if rc.answer != nil {
			rc.answer(call, w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []change {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// sleeps records the backoff asked for and sleeps 1 ms only.
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

// fullJitter draws the top of the jitter range: the nominal delay.
func fullJitter(n int64) int64 { return n }

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func run(t *testing.T, cfg Config) (*Dispatcher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return d, reg
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func counter(d *Dispatcher, c *prometheus.CounterVec, u string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(redact(u)))
}

func TestDeliversInOrderToEveryURL(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	d, reg := run(t, Config{URLs: []string{a.srv.URL + "/hook", b.srv.URL + "/hook?token=secret"}})
	for i := 1; i <= 5; i++ {
		d.Send(chg("task-added", "goblog_accountservice", i))
	}
	for _, rc := range []*receiver{a, b} {
		eventually(t, "five changes", func() bool { return len(rc.received()) == 5 })
		for i, c := range rc.received() {
			if c.N != i+1 || c.Type != "task-added" || c.Service != "goblog_accountservice" {
				t.Fatalf("change %d = %+v", i, c)
			}
		}
		if id := rc.hdrs[0].Get("X-Swarmwatcher-Delivery"); id != "1" {
			t.Errorf("delivery id = %q, want 1", id)
		}
	}
	// The receiver has the body before the dispatcher sees the answer and counts it.
	eventually(t, "delivered_total 5", func() bool { return counter(d, d.m.sent, b.srv.URL+"/hook?token=secret") == 5 })
	// The metric label never carries the token.
	n, err := testutil.GatherAndCount(reg, "swarmwatcher_webhook_delivered_total")
	if err != nil || n != 2 {
		t.Fatalf("delivered_total series = %d, %v; want 2", n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "secret") {
					t.Fatalf("metric %s label %q leaks the query", mf.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestRetriesAfter500WithBackoff(t *testing.T) {
	rc := newReceiver(t, func(call int, w http.ResponseWriter, r *http.Request) {
		if call <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	sl := &sleeps{}
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, MinBackoff: 100 * time.Millisecond, Sleep: sl.sleep, Jitter: fullJitter})
	d.Send(chg("health-changed", "", 1))
	eventually(t, "delivery", func() bool { return counter(d, d.m.sent, rc.srv.URL) == 1 })
	if got := sl.get(); !slices.Equal(got, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}) {
		t.Errorf("backoff = %v, want [100ms 200ms]", got)
	}
	if got := counter(d, d.m.retries, rc.srv.URL); got != 2 {
		t.Errorf("retries_total = %v, want 2", got)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.hdrs) != 3 || rc.hdrs[2].Get("X-Swarmwatcher-Attempt") != "3" ||
		rc.hdrs[0].Get("X-Swarmwatcher-Delivery") != rc.hdrs[2].Get("X-Swarmwatcher-Delivery") {
		t.Errorf("attempt headers wrong: %v", rc.hdrs)
	}
}

func TestAlways500GivesUp(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, MaxAttempts: 3, Sleep: (&sleeps{}).sleep})
	d.Send(chg("", "", 1))
	d.Send(chg("", "", 2))
	eventually(t, "two failures", func() bool { return counter(d, d.m.failed, rc.srv.URL) == 2 })
	if got := len(rc.received()); got != 6 {
		t.Errorf("receiver saw %d attempts, want 6", got)
	}
}

func TestPermanent4xxIsNotRetried(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, Sleep: (&sleeps{}).sleep})
	d.Send(chg("", "", 1))
	eventually(t, "failure", func() bool { return counter(d, d.m.failed, rc.srv.URL) == 1 })
	if got := len(rc.received()); got != 1 {
		t.Errorf("receiver saw %d attempts, want 1", got)
	}
}

func TestHangingReceiverHitsDeadlineAndNeverBlocksSend(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	good := newReceiver(t, nil)
	d, _ := run(t, Config{
		URLs:    []string{rc.srv.URL, good.srv.URL},
		Timeout: 20 * time.Millisecond, MaxAttempts: 2, QueueSize: 4,
		Sleep: (&sleeps{}).sleep,
	})

	// Thousands of changes while one receiver hangs: Send returns every time.
	const n = 2000
	sent := make(chan struct{})
	go func() {
		for i := 1; i <= n; i++ {
			d.Send(chg("", "", i))
		}
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked behind a hanging receiver")
	}
	eventually(t, "a give-up on the hanging receiver", func() bool { return counter(d, d.m.failed, rc.srv.URL) >= 1 })

	// The hanging URL keeps at most QueueSize waiting; every change is
	// either dropped or given up on, none is lost without a count.
	if q := testutil.ToFloat64(d.m.queued.WithLabelValues(redact(rc.srv.URL))); q > 4 {
		t.Errorf("queue_length = %v, want at most 4", q)
	}
	eventually(t, "every change dropped or failed at the hanging receiver", func() bool {
		return counter(d, d.m.dropped, rc.srv.URL)+counter(d, d.m.failed, rc.srv.URL) == n
	})
	if dropped := counter(d, d.m.dropped, rc.srv.URL); dropped < n/2 {
		t.Errorf("dropped_total = %v, want most of the %d changes dropped", dropped, n)
	}
	// The healthy receiver got the newest change whatever it had to drop.
	eventually(t, "the last change at the good receiver", func() bool {
		got := good.received()
		return len(got) > 0 && got[len(got)-1].N == n
	})
	// Delivery is at least once: under load a 20 ms deadline can expire after
	// the receiver got the POST, and the retry repeats it with the same
	// X-Swarmwatcher-Delivery id. Counted by id, nothing is lost or reordered.
	got := slices.CompactFunc(good.received(), func(a, b change) bool { return a.N == b.N })
	if !slices.IsSortedFunc(got, func(a, b change) int { return a.N - b.N }) {
		t.Errorf("good receiver got changes out of order")
	}
	// Every change is accounted for: acknowledged, dropped, or given up on
	// (a change given up on may still have reached the receiver late).
	var delivered, dropped, failed float64
	eventually(t, "every change accounted for at the good receiver", func() bool {
		delivered, dropped, failed = counter(d, d.m.sent, good.srv.URL), counter(d, d.m.dropped, good.srv.URL), counter(d, d.m.failed, good.srv.URL)
		return int(delivered+dropped+failed) == n
	})
	got = slices.CompactFunc(good.received(), func(a, b change) bool { return a.N == b.N })
	if len(got) < int(delivered) {
		t.Errorf("good receiver saw %d distinct changes, fewer than the %v acknowledged", len(got), delivered)
	}
}

func TestReceiverThatDisappears(t *testing.T) {
	rc := newReceiver(t, nil)
	sl := &sleeps{}
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, MaxAttempts: 4, MinBackoff: 10 * time.Millisecond, Sleep: sl.sleep, Jitter: fullJitter})
	d.Send(chg("", "", 1))
	eventually(t, "first delivery", func() bool { return counter(d, d.m.sent, rc.srv.URL) == 1 })
	rc.srv.Close()
	d.Send(chg("", "", 2))
	eventually(t, "give-up", func() bool { return counter(d, d.m.failed, rc.srv.URL) == 1 })
	if got := sl.get(); !slices.Equal(got, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}) {
		t.Errorf("backoff = %v, want [10ms 20ms 40ms]", got)
	}
}

func TestDropsOldestWhenFull(t *testing.T) {
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	d, err := New(Config{URLs: []string{rc.srv.URL}, QueueSize: 3, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ { // nothing delivers yet
		d.Send(chg("", "", i))
	}
	if got := counter(d, d.m.dropped, rc.srv.URL); got != 7 {
		t.Fatalf("dropped_total = %v, want 7", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	eventually(t, "three deliveries", func() bool { return len(rc.received()) == 3 })
	cancel()
	<-done
	if got := rc.received(); got[0].N != 8 || got[1].N != 9 || got[2].N != 10 {
		t.Fatalf("received %+v, want the newest three (8, 9, 10)", got)
	}
}

// TestRunStopsMidRetry: a cancelled Run returns even while a delivery is
// in flight to a receiver that never answers and has a long deadline.
func TestRunStopsMidRetry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
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
	d, err := New(Config{URLs: []string{"http://" + ln.Addr().String()}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	d.Send(chg("", "", 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if got := testutil.ToFloat64(d.m.failed.WithLabelValues(redact("http://" + ln.Addr().String()))); got != 0 {
		t.Errorf("failed_total = %v after shutdown, want 0 (shutdown is not a receiver failure)", got)
	}
}

func TestParseURLsAndValidate(t *testing.T) {
	got, err := ParseURLs(" http://a:1/h , https://b/x?t=1,,")
	if err != nil || !slices.Equal(got, []string{"http://a:1/h", "https://b/x?t=1"}) {
		t.Fatalf("ParseURLs = %v, %v", got, err)
	}
	if got, err := ParseURLs(""); err != nil || len(got) != 0 {
		t.Fatalf("ParseURLs(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"ftp://a/b", "a:1/h", "http://", "http://user:pw@[::1"} {
		if _, err := ParseURLs(bad); err == nil {
			t.Errorf("ParseURLs(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q leaks credentials", err)
		}
	}
	if _, err := New(Config{URLs: []string{"http://a"}, QueueSize: -1}); err == nil {
		t.Error("New accepted a negative queue size")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Registerer: reg}); err == nil {
		t.Error("registering the metrics twice went unnoticed")
	}
	var nilD *Dispatcher
	nilD.Send(api.Change{}) // no URLs configured: a no-op, not a panic
}
