package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, _, done, err := load(nil)
		if done || err != nil {
			t.Fatal(done, err)
		}
		if cfg.Listen != ":6969" || cfg.Interval != 5*time.Second || cfg.ProbeInterval != 2*time.Second ||
			cfg.ProbeTimeout != time.Second || cfg.Rise != 1 || cfg.Fall != 2 || cfg.Debounce != 20*time.Millisecond || cfg.FastPoll != 100*time.Millisecond || cfg.FastFor != 5*time.Second ||
			len(cfg.Networks) != 0 || cfg.Grace != 5*time.Second || cfg.DebugListen != "" {
			t.Errorf("defaults = %+v", cfg)
		}
	})
	t.Run("environment, then flags win", func(t *testing.T) {
		t.Setenv("PROBE_INTERVAL", "1s")
		t.Setenv("NETWORK", "goblog_net, other_net")
		t.Setenv("FALL", "3")
		t.Setenv("RISE", "") // empty: unset
		t.Setenv("WEBHOOK_URLS", "http://hook:8080/a,http://hook:8080/b")
		cfg, _, _, err := load([]string{"-fall", "4", "-listen", "127.0.0.1:7000"})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.ProbeInterval != time.Second || cfg.Fall != 4 || cfg.Rise != 1 || cfg.Listen != "127.0.0.1:7000" ||
			strings.Join(cfg.Networks, "|") != "goblog_net|other_net" || len(cfg.Webhooks) != 2 {
			t.Errorf("cfg = %+v", cfg)
		}
	})
	t.Run("help", func(t *testing.T) {
		_, s, _, _ := load(nil)
		var out bytes.Buffer
		s.Usage(&out)
		if !strings.Contains(out.String(), "swarmwatcher.port") || !strings.Contains(out.String(), "[PROBE_INTERVAL]") {
			t.Errorf("usage:\n%s", out.String())
		}
	})
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"-interval", "soon"}, "-interval"},
		{[]string{"-rise", "0"}, "at least 1"},
		{[]string{"-fall", "x"}, "-fall"},
		{[]string{"-probe-timeout", "3s"}, "longer than -probe-interval"},
		{[]string{"-network", "ingress"}, "ingress"},
		{[]string{"-log-format", "xml"}, "json, text"},
		{[]string{"-webhook-urls", "ftp://x"}, "-webhook-urls"},
		{[]string{"stray"}, "unexpected arguments"},
	}
	for _, tt := range bad {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, _, err := load(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	for env, val := range map[string]string{"INTERVAL": "5", "HISTORY": "0", "WEBHOOK_URLS": "ftp://x", "LISTEN": "6969", "PROBE_CONCURRENCY": "many"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			if _, _, _, err := load(nil); err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}

func TestLoadWebhookAndBoundSettings(t *testing.T) {
	t.Setenv("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	t.Setenv("WEBHOOK_EVENTS", "health-changed, task-removed")
	t.Setenv("EVENT_CLIENTS", "10")
	t.Setenv("SD_LABEL_PREFIXES", "team.")
	cfg, _, _, err := load([]string{"-event-clients-per-ip", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.WebhookSecret) != 24 || len(cfg.WebhookEvents) != 2 || cfg.EventClients != 10 || cfg.EventClientsPerIP != 3 ||
		strings.Join(cfg.SDLabelPrefixes, "|") != "team." {
		t.Errorf("cfg = %+v", cfg)
	}
	for _, tt := range []struct{ env, value, want string }{
		{"WEBHOOK_SECRET", "short", "WEBHOOK_SECRET"},
		{"WEBHOOK_SECRET", "whsec_!!", "WEBHOOK_SECRET"},
		{"WEBHOOK_EVENTS", "task-added,task-exploded", "WEBHOOK_EVENTS"},
		{"EVENT_CLIENTS", "0", "EVENT_CLIENTS"},
		{"WEBHOOK_URLS", "ftp://user:pa55@x/?token=s3cr3t", "WEBHOOK_URLS"},
	} {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			_, _, _, err := load(nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
			for _, secret := range []string{"short", "pa55", "s3cr3t"} {
				if err != nil && strings.Contains(tt.value, secret) && strings.Contains(err.Error(), secret) {
					t.Errorf("err = %v repeats %q", err, secret)
				}
			}
		})
	}
}
