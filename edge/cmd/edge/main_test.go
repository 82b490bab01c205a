package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, _, done, err := load(nil)
	if done || err != nil || c.Listen != ":6767" || c.Target.String() != "http://accountservice:6767" || c.Discovery != "name" ||
		c.MaxInFlight != 128 || c.Testability || c.Grace != 10*time.Second || c.DebugListen != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	t.Setenv("EDGE_DISCOVERY", "watcher")
	t.Setenv("EDGE_TARGET", "http://accountservice-canary:6767")
	t.Setenv("UPSTREAM_TIMEOUT", "")
	c, _, _, err = load([]string{"-watcher-url", "http://w:1", "-max-in-flight-per-task", "5", "-testability"})
	if err != nil || c.Discovery != "watcher" || c.WatcherURL != "http://w:1" || c.Target.Host != "accountservice-canary:6767" ||
		c.MaxInFlight != 5 || !c.Testability || c.UpstreamTimeout != 15*time.Second {
		t.Fatalf("env and flags: %+v %v", c, err)
	}
	for env, val := range map[string]string{"EDGE_DISCOVERY": "dns", "EDGE_TARGET": "accountservice:6767", "MAX_IN_FLIGHT_PER_TASK": "-1", "DIAL_TIMEOUT": "1", "LISTEN": "6767"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}

// TestTestabilityReachesTheProxy: the setting is what decides whether
// /testability/* is proxied (it once stopped at the Config).
func TestTestabilityReachesTheProxy(t *testing.T) {
	var upstreamSaw atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamSaw.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer upstream.Close()
	for _, on := range []bool{false, true} {
		t.Setenv("EDGE_TARGET", upstream.URL)
		args := []string{}
		if on {
			args = append(args, "-testability")
		}
		cfg, _, _, err := load(args)
		if err != nil {
			t.Fatal(err)
		}
		h, _, closeTransport, err := handler(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := upstreamSaw.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/testability/healthy/false", nil))
		closeTransport()
		reached := upstreamSaw.Load() - before
		if on && (rec.Code != http.StatusOK || reached != 1) {
			t.Errorf("testability on: %d, upstream reached %d times; want 200 from upstream", rec.Code, reached)
		}
		if !on && (rec.Code != http.StatusNotFound || reached != 0) {
			t.Errorf("testability off: %d, upstream reached %d times; want 404 at the edge", rec.Code, reached)
		}
	}
}
