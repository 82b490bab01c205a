package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := parseConfig(nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Listen != ":6969" || cfg.Interval != 5*time.Second || cfg.ProbeInterval != 2*time.Second ||
			cfg.ProbeTimeout != time.Second || cfg.Rise != 1 || cfg.Fall != 2 || cfg.Debounce != 200*time.Millisecond || len(cfg.Networks) != 0 {
			t.Errorf("defaults = %+v", cfg)
		}
	})
	t.Run("environment, then flags win", func(t *testing.T) {
		t.Setenv("WATCHER_PROBE_INTERVAL", "1s")
		t.Setenv("WATCHER_NETWORK", "goblog_net, other_net")
		t.Setenv("WATCHER_FALL", "3")
		cfg, err := parseConfig([]string{"-fall", "4", "-listen", "127.0.0.1:7000"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ProbeInterval != time.Second || cfg.Fall != 4 || cfg.Listen != "127.0.0.1:7000" || strings.Join(cfg.Networks, "|") != "goblog_net|other_net" {
			t.Errorf("cfg = %+v", cfg)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out strings.Builder
		_, err := parseConfig([]string{"-h"}, &out)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "swarmwatcher.port") || !strings.Contains(out.String(), "WATCHER_PROBE_INTERVAL") {
			t.Errorf("help: %v\n%s", err, out.String())
		}
	})
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"-interval", "soon"}, "not a duration"},
		{[]string{"-rise", "0"}, "at least 1"},
		{[]string{"-fall", "x"}, "not a whole number"},
		{[]string{"-probe-timeout", "3s"}, "longer than -probe-interval"},
		{[]string{"-network", "ingress"}, "ingress"},
		{[]string{"-log-format", "xml"}, "json or text"},
		{[]string{"-webhooks", "ftp://x"}, "-webhooks"},
		{[]string{"stray"}, "unexpected arguments"},
	}
	for _, tt := range bad {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseConfig(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
