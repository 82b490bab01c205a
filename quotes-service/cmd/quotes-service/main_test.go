package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	c, _, done, err := load(nil)
	if done || err != nil || c.Listen != ":8080" || c.SelfDNS != "tasks.quotes-service" || c.Grace != 10*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	t.Setenv("LISTEN", "127.0.0.1:9090")
	t.Setenv("SHUTDOWN_GRACE", "")
	if c, _, _, err := load([]string{"-shutdown-grace", "2s"}); err != nil || c.Listen != "127.0.0.1:9090" || c.Grace != 2*time.Second {
		t.Fatalf("env and flags: %+v %v", c, err)
	}
	for env, val := range map[string]string{"LISTEN": "8080", "SHUTDOWN_GRACE": "10", "DEBUG_LISTEN": "localhost"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}
