package conf

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
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
		"SHARE":          "half",
	}, nil)
	done, err := s.Parse(nil)
	if done || err == nil {
		t.Fatalf("Parse = %v, %v; want an error", done, err)
	}
	for _, name := range []string{`TESTABILITY: "yes please": not a boolean`, `MAX_IN_FLIGHT: "many": not a whole number`,
		`PROBE_INTERVAL: "2": not a duration`, `SHARE: "half": not a number`, "EDGE_DISCOVERY: \"dns\": must be one of name, watcher", "CUSTOM", "LOG_LEVEL", "AMQP_URL_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if code := s.ExitCode(err); code != 2 {
		t.Fatalf("ExitCode = %d, want 2", code)
	}
}

func TestAMalformedValueFromAFileIsNotShown(t *testing.T) {
	s, _, _, _ := newSet(map[string]string{"MAX_IN_FLIGHT_FILE": "/n", "GRACE_FILE": "/g"}, map[string]string{"/n": "s3cret\n", "/g": "hunter2h"})
	s.Duration(new(time.Duration), "grace", time.Second, "grace", AtLeast(time.Millisecond))
	_, err := s.Parse(nil)
	if err == nil || !strings.Contains(err.Error(), "MAX_IN_FLIGHT_FILE") || !strings.Contains(err.Error(), "GRACE_FILE") ||
		strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v; want both variables named and their content not shown", err)
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
		"[LOG_LEVEL]", "-log-level level", `(default ":6767")`, "name, watcher"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "[VERSION]") {
		t.Errorf("-version has no variable, the usage says it has:\n%s", out)
	}
}

// A VERSION in a container's environment (many images set one) must not turn
// a service into a program that prints its version and exits.
func TestVersionVariableIsIgnored(t *testing.T) {
	s, _, out, _ := newSet(map[string]string{"VERSION": "true"}, nil)
	if done, err := s.Parse(nil); done || err != nil || out.Len() != 0 {
		t.Fatalf("Parse with VERSION=true = %v, %v, printed %q; want a plain start", done, err, out)
	}
	s, _, _, _ = newSet(map[string]string{"VERSION": "1.2.3"}, nil)
	if done, err := s.Parse(nil); done || err != nil {
		t.Fatalf("Parse with VERSION=1.2.3 = %v, %v; want a plain start", done, err)
	}
}

func TestChecksNameWhereTheValueCameFrom(t *testing.T) {
	newChecked := func(env map[string]string) (*Set, *struct {
		n      int
		d      time.Duration
		f      float64
		listen string
		url    string
	}) {
		s, _, _, _ := newSet(env, nil)
		var c struct {
			n      int
			d      time.Duration
			f      float64
			listen string
			url    string
		}
		s.Int(&c.n, "rise", 1, "passes in a row", AtLeast(1))
		s.Duration(&c.d, "grace", time.Second, "grace", Between(time.Millisecond, time.Minute))
		s.Float64(&c.f, "ratio", 0.5, "ratio", Between(0.0, 1.0))
		s.String(&c.listen, "debug-listen", "", "debug", func(v string) error {
			if v == "" {
				return nil
			}
			return HostPort(v)
		})
		s.URL(&c.url, "watcher-url", "http://swarmwatcher:6969", "watcher", "http", "https")
		return s, &c
	}
	s, c := newChecked(map[string]string{"RISE": "3", "GRACE": "2s", "RATIO": "1", "DEBUG_LISTEN": "127.0.0.1:6060", "WATCHER_URL": "https://w:1/x"})
	if _, err := s.Parse(nil); err != nil || c.n != 3 || c.d != 2*time.Second || c.f != 1 || c.listen != "127.0.0.1:6060" || c.url != "https://w:1/x" {
		t.Fatalf("good values: %+v, %v", *c, err)
	}
	s, _ = newChecked(map[string]string{"RISE": "0", "GRACE": "2h", "RATIO": "1.5", "DEBUG_LISTEN": "6060", "WATCHER_URL": "swarmwatcher:6969"})
	_, err := s.Parse(nil)
	for _, want := range []string{`RISE: "0": must be at least 1`, `GRACE: "2h": must be 1ms … 1m0s`, `RATIO: "1.5"`,
		`DEBUG_LISTEN: "6060": want host:port`, `WATCHER_URL: "swarmwatcher:6969"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	s, _ = newChecked(map[string]string{"RISE": "0"})
	if _, err := s.Parse([]string{"-rise", "0", "-watcher-url", "ftp://w/"}); err == nil ||
		!strings.Contains(err.Error(), `-rise: "0": must be at least 1`) || strings.Contains(err.Error(), "RISE") ||
		!strings.Contains(err.Error(), `-watcher-url: "ftp://w/": want a URL of scheme http or https`) {
		t.Errorf("a flag's bad value must name the flag: %v", err)
	}
}

func TestEnvPrefixKeepsAnotherBinarysVariablesOut(t *testing.T) {
	env := map[string]string{"PATH": "/usr/bin:/bin", "PORT": "80", "HEALTHCHECKER_TIMEOUT": "3s", "LOG_LEVEL": "loud"}
	var out bytes.Buffer
	s := New("healthchecker", "")
	s.EnvPrefix = "HEALTHCHECKER_"
	s.Stdout = &out
	s.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var path string
	var port int
	var timeout time.Duration
	s.String(&path, "path", "/health", "path")
	s.Int(&port, "port", 0, "port")
	s.Duration(&timeout, "timeout", 2*time.Second, "timeout")
	if _, err := s.Parse(nil); err != nil || path != "/health" || port != 0 || timeout != 3*time.Second {
		t.Fatalf("Parse = %v; path %q port %d timeout %s", err, path, port, timeout)
	}
	if _, err := s.Parse([]string{"-h"}); err != nil || !strings.Contains(out.String(), "[HEALTHCHECKER_PATH]") {
		t.Fatalf("usage must name the prefixed variable: %v\n%s", err, out.String())
	}
}

func TestVersionIsDone(t *testing.T) {
	s, _, out, _ := newSet(map[string]string{"MAX_IN_FLIGHT": "oops"}, nil)
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

func TestRunEndsOnSIGTERMAndReportsFailure(t *testing.T) {
	s, _, _, errOut := newSet(map[string]string{"LOG_FORMAT": "text"}, nil)
	if _, err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	code := s.Run(func(ctx context.Context, log *slog.Logger) error {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			log.Info("stopping")
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("SIGTERM did not end the context")
		}
	})
	if code != 0 || !strings.Contains(errOut.String(), "msg=stopping service=demo") {
		t.Fatalf("Run = %d, log %q; want 0 and the binary's name on every line", code, errOut)
	}
	errOut.Reset()
	if code := s.Run(func(context.Context, *slog.Logger) error { return errors.New("listen :6767: in use") }); code != 1 ||
		!strings.Contains(errOut.String(), `msg="demo stopped" service=demo err="listen :6767: in use"`) {
		t.Fatalf("Run = %d, log %q; want 1 and the error logged", code, errOut)
	}
}
