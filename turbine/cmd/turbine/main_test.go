package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8282" || c.AMQPURL != "amqp://guest:guest@rabbitmq:5672/" || c.EmitInterval != time.Second || c.StreamPath != "/hystrix.stream" {
		t.Fatalf("defaults: %+v", c)
	}
	t.Setenv("AMQP_URL", "amqp://u:p@broker:5673/")
	if c, err := parseFlags([]string{"-emit-interval", "500ms"}); err != nil || c.AMQPURL != "amqp://u:p@broker:5673/" || c.EmitInterval != 500*time.Millisecond {
		t.Fatalf("env and flags: %+v %v", c, err)
	}
	t.Setenv("WATCHER_URL", "http://watcher.example:7000")
	if c, err := parseFlags([]string{"-max-streams", "3"}); err != nil || c.WatcherURL != "http://watcher.example:7000" || c.MaxStreams != 3 {
		t.Fatalf("turbine settings: %+v %v", c.Config, err)
	}
	for _, bad := range [][]string{{"-listen", "8282"}, {"-amqp-url", ""}, {"-emit-interval", "1ms"}, {"-log-format", "xml"}, {"-nope"},
		{"-max-streams", "0"}, {"-watcher-url", "swarmwatcher"}, {"-verify-interval", "0s"}, {"-max-line", "10"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%v) accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestRedact(t *testing.T) {
	if got := redact("amqp://guest:secret@rabbitmq:5672/"); strings.Contains(got, "secret") || !strings.Contains(got, "rabbitmq") {
		t.Errorf("redact = %q", got)
	}
	if got := redact("::not a url"); got != "(unparsable URL)" {
		t.Errorf("redact(garbage) = %q", got)
	}
}
