package conf

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type settings struct {
	listen  string
	on      bool
	n       int
	wait    time.Duration
	mode    string
	urls    []string
	secret  string
	ratio   float64
	setFunc string
}

func newSet(env map[string]string, files map[string]string) (*Set, *settings, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	s := New("demo", "Demonstrates the one configuration mechanism.")
	s.Stdout, s.Stderr = &out, &errOut
	s.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	s.ReadFile = func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
	var c settings
	s.String(&c.listen, "listen", ":6767", "address to serve on")
	s.Bool(&c.on, "testability", false, "serve /testability")
	s.Int(&c.n, "max-in-flight", 64, "requests in flight at most")
	s.Duration(&c.wait, "probe-interval", 2*time.Second, "period of probes")
	s.Enum(&c.mode, "edge-discovery", "name", []string{"name", "watcher"}, "how to find accountservice")
	s.List(&c.urls, "webhook-urls", nil, "URLs that receive changes")
	s.String(&c.secret, "amqp-url", "", "broker URL")
	s.Float64(&c.ratio, "share", 0.5, "share")
	s.Func("custom", "a value of its own", func(v string) error {
		if v == "bad" {
			return errors.New("bad is not allowed")
		}
		c.setFunc = v
		return nil
	})
	return s, &c, &out, &errOut
}

func TestEnvNameRule(t *testing.T) {
	for flag, env := range map[string]string{"listen": "LISTEN", "edge-discovery": "EDGE_DISCOVERY", "amqp-url": "AMQP_URL"} {
		if got := EnvName(flag); got != env {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, env)
		}
	}
}

func TestDefaultsEnvAndFlagsInThatOrder(t *testing.T) {
	env := map[string]string{
		"LISTEN":         ":9000",
		"TESTABILITY":    "true",
		"MAX_IN_FLIGHT":  "",      // empty: unset, the default stays
		"PROBE_INTERVAL": "500ms", // overridden by the flag below
		"EDGE_DISCOVERY": "watcher",
		"WEBHOOK_URLS":   "http://a/, ,http://b/",
		"AMQP_URL_FILE":  "/run/secrets/amqp",
		"SHARE":          "0.25",
	}
	s, c, _, _ := newSet(env, map[string]string{"/run/secrets/amqp": "amqp://u:p@rabbitmq:5672/\n"})
	done, err := s.Parse([]string{"-probe-interval", "1s", "-custom", "x"})
	if done || err != nil {
		t.Fatalf("Parse = %v, %v; want false, nil", done, err)
	}
	want := settings{listen: ":9000", on: true, n: 64, wait: time.Second, mode: "watcher",
		urls: []string{"http://a/", "http://b/"}, secret: "amqp://u:p@rabbitmq:5672/", ratio: 0.25, setFunc: "x"}
	if c.listen != want.listen || c.on != want.on || c.n != want.n || c.wait != want.wait || c.mode != want.mode ||
		strings.Join(c.urls, " ") != strings.Join(want.urls, " ") || c.secret != want.secret || c.ratio != want.ratio || c.setFunc != want.setFunc {
		t.Fatalf("settings = %+v\nwant       %+v", *c, want)
	}
}

func TestVariableWinsOverFileAndEmptyVariableFallsToFile(t *testing.T) {
	files := map[string]string{"/f": "from-file"}
	s, c, _, _ := newSet(map[string]string{"AMQP_URL": "from-env", "AMQP_URL_FILE": "/f"}, files)
	if _, err := s.Parse(nil); err != nil || c.secret != "from-env" {
		t.Fatalf("secret = %q, err %v; want from-env", c.secret, err)
	}
	s, c, _, _ = newSet(map[string]string{"AMQP_URL": "", "AMQP_URL_FILE": "/f"}, files)
	if _, err := s.Parse(nil); err != nil || c.secret != "from-file" {
		t.Fatalf("secret = %q, err %v; want from-file", c.secret, err)
	}
}

func TestMalformedValuesNameTheVariableAllAtOnce(t *testing.T) {
	s, _, _, _ := newSet(map[string]string{
		"TESTABILITY":    "yes please",
		"MAX_IN_FLIGHT":  "many",
		"PROBE_INTERVAL": "2",
		"EDGE_DISCOVERY": "dns",
		"CUSTOM":         "bad",
		"LOG_LEVEL":      "loud",
		"AMQP_URL_FILE":  "/missing",
	}, nil)
	done, err := s.Parse(nil)
	if done || err == nil {
		t.Fatalf("Parse = %v, %v; want an error", done, err)
	}
	for _, name := range []string{"TESTABILITY", "MAX_IN_FLIGHT", "PROBE_INTERVAL", "EDGE_DISCOVERY: \"dns\": must be one of name, watcher", "CUSTOM", "LOG_LEVEL", "AMQP_URL_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if code := s.ExitCode(err); code != 2 {
		t.Fatalf("ExitCode = %d, want 2", code)
	}
}

func TestOversizedFileIsAnError(t *testing.T) {
	s, _, _, _ := newSet(map[string]string{"AMQP_URL_FILE": "/big"}, map[string]string{"/big": strings.Repeat("x", maxFileValue+1)})
	if _, err := s.Parse(nil); err == nil || !strings.Contains(err.Error(), "AMQP_URL_FILE") {
		t.Fatalf("Parse = %v, want an error naming AMQP_URL_FILE", err)
	}
}

func TestMalformedFlagAndStrayArgument(t *testing.T) {
	for _, args := range [][]string{{"-max-in-flight", "x"}, {"-nope"}, {"stray"}} {
		s, _, _, _ := newSet(nil, nil)
		if done, err := s.Parse(args); done || err == nil {
			t.Errorf("Parse(%q) = %v, %v; want an error", args, done, err)
		}
	}
}

func TestHelpPrintsUsageWithEveryVariableAndIsDone(t *testing.T) {
	s, _, out, _ := newSet(map[string]string{"MAX_IN_FLIGHT": "oops"}, nil)
	done, err := s.Parse([]string{"-h"})
	if !done || err != nil || s.ExitCode(err) != 0 {
		t.Fatalf("Parse(-h) = %v, %v; want done, nil, exit 0", done, err)
	}
	for _, want := range []string{"Usage: demo", "Demonstrates", "-listen string  [LISTEN]", "[EDGE_DISCOVERY]",
		"[LOG_LEVEL]", "[VERSION]", `(default ":6767")`, "name, watcher"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
}

func TestVersionIsDone(t *testing.T) {
	s, _, out, _ := newSet(nil, nil)
	done, err := s.Parse([]string{"-version"})
	if !done || err != nil || !strings.HasPrefix(out.String(), "demo ") {
		t.Fatalf("Parse(-version) = %v, %v, printed %q", done, err, out)
	}
}

func TestLoggerHonoursLevelAndFormat(t *testing.T) {
	s, _, _, _ := newSet(map[string]string{"LOG_LEVEL": "warn", "LOG_FORMAT": "text"}, nil)
	if _, err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if s.LogLevel() != slog.LevelWarn {
		t.Fatalf("LogLevel = %v, want WARN", s.LogLevel())
	}
	var buf bytes.Buffer
	log := s.Logger(&buf)
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "level=WARN msg=shown k=v") {
		t.Fatalf("log = %q", got)
	}
}
