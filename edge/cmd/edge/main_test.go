package main

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	c, _, done, err := load(nil)
	if done || err != nil || c.Listen != ":6767" || c.Target.String() != "http://accountservice:6767" || c.Discovery != "name" ||
		c.RequestsPerConn != 1 || c.Grace != 10*time.Second || c.DebugListen != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	t.Setenv("EDGE_DISCOVERY", "watcher")
	t.Setenv("EDGE_TARGET", "http://accountservice-canary:6767")
	t.Setenv("UPSTREAM_TIMEOUT", "")
	c, _, _, err = load([]string{"-watcher-url", "http://w:1", "-requests-per-conn", "5"})
	if err != nil || c.Discovery != "watcher" || c.WatcherURL != "http://w:1" || c.Target.Host != "accountservice-canary:6767" ||
		c.RequestsPerConn != 5 || c.UpstreamTimeout != 15*time.Second {
		t.Fatalf("env and flags: %+v %v", c, err)
	}
	for env, val := range map[string]string{"EDGE_DISCOVERY": "dns", "EDGE_TARGET": "accountservice:6767", "REQUESTS_PER_CONN": "0", "DIAL_TIMEOUT": "1", "LISTEN": "6767"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}
