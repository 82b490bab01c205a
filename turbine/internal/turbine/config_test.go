package turbine

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"emit-interval":        func(c *Config) { c.EmitInterval = time.Millisecond },
		"stream-path":          func(c *Config) { c.StreamPath = "hystrix.stream" },
		"watcher-url":          func(c *Config) { c.WatcherURL = "swarmwatcher:6969" },
		"stack":                func(c *Config) { c.Stack = "" },
		"verify-interval":      func(c *Config) { c.VerifyInterval = 0 },
		"watcher-timeout":      func(c *Config) { c.WatcherTimeout = -time.Second },
		"dial-timeout":         func(c *Config) { c.DialTimeout = 0 },
		"idle-timeout":         func(c *Config) { c.IdleTimeout = 0 },
		"max-backoff":          func(c *Config) { c.MaxBackoff = c.MinBackoff / 2 },
		"max-streams":          func(c *Config) { c.MaxStreams = 0 },
		"max-concurrent-dials": func(c *Config) { c.MaxConcurrentDials = 0 },
		"max-line":             func(c *Config) { c.MaxLine = 10 },
		"max-keys-per-host":    func(c *Config) { c.MaxKeysPerHost = 0 },
		"max-bytes-per-host":   func(c *Config) { c.MaxBytesPerHost = c.MaxLine - 1 },
		"max-clients":          func(c *Config) { c.MaxClients = 0 },
		"max-clusters":         func(c *Config) { c.MaxClusters = 0 },
		"write-timeout":        func(c *Config) { c.WriteTimeout = 0 },
	} {
		c := DefaultConfig()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Validate = %v, want an error naming it", name, err)
		}
	}
}
