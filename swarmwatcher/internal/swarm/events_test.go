package swarm

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// triggers records the reasons Watch gives, in order.
type triggers struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func newTriggers() *triggers { return &triggers{ch: make(chan string, 100)} }

func (tr *triggers) fn(reason string) {
	tr.mu.Lock()
	tr.got = append(tr.got, reason)
	tr.mu.Unlock()
	tr.ch <- reason
}

func (tr *triggers) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-tr.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no trigger within 10s")
		return ""
	}
}

func TestWatchTriggersOnRelevantEvents(t *testing.T) {
	e := newFakeEngine(t)
	lines := make(chan string)
	e.events = lines
	d := newDiscovery(t, e, Config{})
	tr := newTriggers()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- d.Watch(ctx, WatchConfig{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}, tr.fn)
	}()
	if r := tr.next(t); r != "event stream connected" {
		t.Fatalf("first trigger = %q, want a re-list on connect", r)
	}
	lines <- `{"Type":"container","Action":"exec_start: /healthchecker -port 6767","Actor":{"ID":"abc"},"scope":"local","time":1}`
	lines <- `{"Type":"service","Action":"update","Actor":{"ID":"svcaccount000000000000000","Attributes":{"name":"goblog_accountservice","replicas.new":"3","replicas.old":"1"}},"scope":"swarm","time":2}`
	if r := tr.next(t); r != "service update" {
		t.Fatalf("trigger = %q, want service update (exec events are noise)", r)
	}
	lines <- `{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"abc"},"scope":"local","time":3}`
	if r := tr.next(t); r != "container health_status: healthy" {
		t.Fatalf("trigger = %q", r)
	}
	lines <- `this is not JSON`
	if r := tr.next(t); r != "event stream lost" {
		t.Fatalf("trigger = %q, want the broken stream noticed", r)
	}
	if r := tr.next(t); r != "event stream connected" {
		t.Fatalf("trigger = %q, want a reconnect followed by a re-list", r)
	}
	if n := e.count("/events"); n != 2 {
		t.Errorf("/events called %d times, want 2", n)
	}
	if f := e.query("/events").Get("filters"); !strings.Contains(f, `"service":true`) || !strings.Contains(f, `"node":true`) || !strings.Contains(f, `"container":true`) {
		t.Errorf("events filters = %s", f)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v on cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchReconnectsWhenEngineFailsOrHangs(t *testing.T) {
	for _, mode := range []string{"fail", "hang"} {
		t.Run(mode, func(t *testing.T) {
			e := newFakeEngine(t)
			if mode == "fail" {
				e.fail("/events", 500)
			} else {
				e.hangOn("/events")
			}
			d := newDiscovery(t, e, Config{CallTimeout: 20 * time.Millisecond})
			tr := newTriggers()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				// A refused subscription is reported just after Events returns; a
				// long grace makes sure it is never taken for a connected stream.
				_ = d.Watch(ctx, WatchConfig{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, ConnectGrace: 2 * time.Second}, tr.fn)
				close(done)
			}()
			for range 3 {
				if r := tr.next(t); r != "event stream lost" {
					t.Fatalf("trigger = %q", r)
				}
			}
			cancel()
			<-done
			if n := e.count("/events"); n < 3 {
				t.Errorf("/events called %d times, want reconnect attempts", n)
			}
		})
	}
}
