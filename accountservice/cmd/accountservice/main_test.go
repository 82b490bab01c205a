package main

import (
	"strings"
	"testing"
)

// parse is load without the -h/-version outcome, for the tests.
func parse(args []string) (Config, error) {
	c, _, _, err := load(args)
	return c, err
}

func TestParse(t *testing.T) {
	c, err := parse([]string{"-accounts-db", "/tmp/x.db", "-quote-strength", "2", "-testability"})
	if err != nil {
		t.Fatal(err)
	}
	if c.DBPath != "/tmp/x.db" || c.QuoteStrength != 2 || !c.Testability || c.Listen != ":6767" || c.DebugListen != "" {
		t.Fatalf("flags not applied: %+v", c)
	}
	t.Setenv("TESTABILITY", "yes-please")
	if _, err := parse(nil); err == nil || !strings.Contains(err.Error(), "TESTABILITY") {
		t.Fatalf("a malformed env must be reported, got %v", err)
	}
	t.Setenv("TESTABILITY", "true")
	if c, err := parse(nil); err != nil || !c.Testability {
		t.Fatalf("env TESTABILITY=true: %+v %v", c, err)
	}
	t.Setenv("TESTABILITY", "")
	if c, err := parse(nil); err != nil || c.Testability {
		t.Fatalf("an empty TESTABILITY is unset: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"-quote-strength", "11"}, {"-quote-timeout", "0s"}, {"-quotes-requests-per-conn", "0"}, {"-nope"}, {"-amqp-url", "rabbitmq:5672"}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%v) accepted", bad)
		}
	}
	for env, val := range map[string]string{"QUOTE_STRENGTH": "11", "ACCOUNTS_DB": "", "QUOTES_URL": "quotes-service", "AMQP_URL": "guest@rabbitmq", "TOKEN_TTL": "2s"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			_, err := parse(nil)
			if val == "" {
				if err != nil {
					t.Fatalf("an empty %s is unset, got %v", env, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), env) {
				t.Fatalf("%s=%s: err %v, want it named", env, val, err)
			}
		})
	}
}

func TestParseQuotesDiscovery(t *testing.T) {
	c, err := parse(nil)
	if err != nil || c.QuotesDiscovery != "name" || c.WatcherURL != "http://swarmwatcher:6969" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	t.Setenv("QUOTES_DISCOVERY", "watcher")
	if c, err := parse([]string{"-watcher-url", "http://w:1"}); err != nil || c.QuotesDiscovery != "watcher" || c.WatcherURL != "http://w:1" {
		t.Fatalf("watcher: %+v %v", c, err)
	}
	if _, err := parse([]string{"-quotes-discovery", "consul"}); err == nil {
		t.Fatal("an unknown discovery was accepted")
	}
}
