package turbine

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/discoverytoken"
)

// hystrixServer replays a recorded stream once a connection opens, then pings until the
// client leaves.
func hystrixServer(t *testing.T, file string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hystrix.stream" {
			http.NotFound(w, r)
			return
		}
		conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(raw)
		_, _ = w.Write([]byte("data: {not json}\n\n"))
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
	t.Cleanup(srv.Close)
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
	for _, s := range agg.Snapshot() {
		if s["type"] == "HystrixCommand" {
			n, _ := strconv.Atoi(string(s["reportingHosts"].(json.Number)))
			return n
		}
	}
	return 0
}

func TestStreamsFollowTheRegistry(t *testing.T) {
	okSrv, okConns := hystrixServer(t, "testdata/host-ok.stream")
	failSrv, _ := hystrixServer(t, "testdata/host-failing.stream")
	ctx, cancel := context.WithCancel(context.Background())
	agg := NewAggregator()
	s := NewStreams(ctx, StreamsConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, IdleTimeout: time.Second}, agg)
	defer func() { cancel(); s.Wait() }()

	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventAdded, Instance: instanceFor(t, "a", okSrv.URL)})
	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventAdded, Instance: instanceFor(t, "b", failSrv.URL)})
	waitFor(t, "both streams connect and report", func() bool {
		c := s.Connected()
		return c["a"] && c["b"] && reporting(agg) == 2
	})
	if okConns.Load() != 1 {
		t.Fatalf("%d connections to one instance, want 1", okConns.Load())
	}
	waitFor(t, "the bad line is counted", func() bool { return s.BadLines() >= 2 })

	s.HandleEvent(discoverytoken.Event{Type: discoverytoken.EventRemoved, Instance: instanceFor(t, "b", failSrv.URL)})
	if n := reporting(agg); n != 1 {
		t.Fatalf("right after removal reportingHosts = %d, want 1", n)
	}
	if _, ok := s.Connected()["b"]; ok {
		t.Fatal("removed instance still listed")
	}
}

func TestStreamsRetryWhileTheInstanceLives(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "not yet", http.StatusServiceUnavailable)
	}))
	defer flaky.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewStreams(ctx, StreamsConfig{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}, NewAggregator())
	s.Add(instanceFor(t, "a", flaky.URL))
	waitFor(t, "several retries", func() bool { return calls.Load() >= 3 })
	if s.Connected()["a"] {
		t.Fatal("a 503 counts as connected")
	}
	s.Remove("a")
	s.Wait() // the goroutine ends on removal
	n := calls.Load()
	time.Sleep(50 * time.Millisecond)
	if calls.Load() != n {
		t.Fatal("still retrying after removal")
	}
	cancel()
}

func TestStreamsDropAHungConnection(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // headers, then silence
	}))
	defer hung.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewStreams(ctx, StreamsConfig{IdleTimeout: 50 * time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour}, NewAggregator())
	s.Add(instanceFor(t, "a", hung.URL))
	waitFor(t, "connected", func() bool { return s.Connected()["a"] })
	waitFor(t, "the idle watchdog drops it", func() bool { return !s.Connected()["a"] })
	cancel()
	s.Wait()
}
