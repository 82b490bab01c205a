package main

import (
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/discoverytoken"
)

func TestLoad(t *testing.T) {
	if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), "AMQP_URL") {
		t.Fatalf("no broker URL: err %v, want one naming AMQP_URL", err)
	}
	t.Setenv("AMQP_URL", "amqp://u:p@rabbitmq:5672/")
	c, _, done, err := load(nil)
	if done || err != nil {
		t.Fatal(done, err)
	}
	if c.Listen != ":8282" || c.AMQPURL != "amqp://u:p@rabbitmq:5672/" || c.EmitInterval != time.Second || c.StreamPath != "/hystrix.stream" || c.DebugListen != "" ||
		c.WatcherURL != "http://swarmwatcher:6969" || c.MaxStreams != 256 {
		t.Fatalf("defaults: %+v", c)
	}
	t.Setenv("AMQP_URL", "amqp://u:p@broker:5673/")
	t.Setenv("EXPIRY_INTERVAL", "") // empty: unset
	t.Setenv("WATCHER_URL", "http://watcher.example:7000")
	if c, _, _, err := load([]string{"-emit-interval", "500ms", "-max-streams", "3"}); err != nil || c.AMQPURL != "amqp://u:p@broker:5673/" ||
		c.EmitInterval != 500*time.Millisecond || c.ExpiryInterval != 250*time.Millisecond || c.WatcherURL != "http://watcher.example:7000" || c.MaxStreams != 3 {
		t.Fatalf("env and flags: %+v %v", c, err)
	}
	if c.SelfPreservation != (discoverytoken.SelfPreservation{Share: 0.5, Min: 3, MaxProtection: 10 * time.Minute}) {
		t.Fatalf("self-preservation defaults: %+v", c.SelfPreservation)
	}
	t.Setenv("PROTECT_MAX", "90s")
	if c, _, _, err := load([]string{"-protect-share", "0.3", "-protect-min", "5"}); err != nil ||
		c.SelfPreservation != (discoverytoken.SelfPreservation{Share: 0.3, Min: 5, MaxProtection: 90 * time.Second}) {
		t.Fatalf("self-preservation settings: %+v %v", c.SelfPreservation, err)
	}
	if c, _, _, err := load([]string{"-no-self-preservation"}); err != nil || !c.SelfPreservation.Disabled {
		t.Fatalf("-no-self-preservation: %+v %v", c.SelfPreservation, err)
	}
	t.Setenv("PROTECT_MAX", "")
	for _, bad := range [][]string{{"-protect-share", "1"}, {"-protect-share", "0"}, {"-protect-share", "NaN"}, {"-protect-min", "0"}, {"-protect-max", "10ms"}} {
		if _, _, _, err := load(bad); err == nil {
			t.Errorf("load(%v) accepted", bad)
		}
	}
	for _, bad := range [][]string{{"-listen", "8282"}, {"-amqp-url", ""}, {"-emit-interval", "1ms"}, {"-log-format", "xml"}, {"-nope"},
		{"-max-streams", "0"}, {"-watcher-url", "swarmwatcher"}, {"-verify-interval", "0s"}, {"-max-line", "10"},
		{"-min-backoff", "2s", "-max-backoff", "1s"}, {"-stream-path", "hystrix.stream"}} {
		if _, _, _, err := load(bad); err == nil {
			t.Errorf("load(%v) accepted", bad)
		}
	}
	// A malformed duration in the environment used to be ignored silently.
	for env, val := range map[string]string{"EMIT_INTERVAL": "1", "EXPIRY_INTERVAL": "soon", "AMQP_URL": "rabbitmq:5672",
		"IDLE_TIMEOUT": "forever", "MAX_CLIENTS": "many", "WATCHER_URL": "swarmwatcher:6969"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}
