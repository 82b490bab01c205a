package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/syncbuf"
)

const feederCSV = "accountId\n10000\n10001\n"

// noEnv is an empty environment: the tests do not depend on the variables
// of whoever runs them.
func noEnv(string) (string, bool) { return "", false }

// envOf is an environment holding kv.
func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func servedByServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	byConn := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ip, ok := byConn[r.RemoteAddr]
		if !ok {
			ip = fmt.Sprintf("10.0.1.%d", len(byConn)%2+1)
			byConn[r.RemoteAddr] = ip
		}
		mu.Unlock()
		fmt.Fprintf(w, `{"id":"x","servedBy":%q}`, ip)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-users", "x"}, `invalid value "x" for flag -users`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-users", "0"}, "users 0: must be 1"},
		{[]string{"-baseUrl", "localhost:6767"}, "scheme must be http"},
		{[]string{"-base-url", "localhost:6767"}, "scheme must be http"},
		{[]string{"-keep-alive=maybe"}, `invalid boolean value "maybe" for -keep-alive`},
		{[]string{"-max-requests-per-conn", "-1"}, "must be 0 (no limit) or more"},
		{[]string{"-duration", "0s", "-pause", "-1s"}, "duration 0s: must be positive"},
		{[]string{"extra"}, `unexpected arguments: extra`},
		{[]string{"-users", "5", "extra"}, `unexpected arguments: extra`},
		{[]string{"-path", "/accounts"}, `request-path "/accounts": must start with / and contain {id}`},
		{[]string{"-feeder", "/does/not/exist.csv"}, "open feeder"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Env{Args: tt.args, Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV), DefaultOut: t.TempDir()})
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, errOut.String())
			}
			if !strings.Contains(tt.want, "feeder") && !strings.Contains(errOut.String(), "Run 'gatling -h' for usage") {
				t.Fatalf("no pointer to the usage after the error:\n%s", errOut.String())
			}
		})
	}
	var errOut bytes.Buffer
	if code := Run(context.Background(), Env{Args: nil, Stdout: &errOut, Stderr: &errOut, LookupEnv: noEnv, DefaultOut: t.TempDir()}); code != ExitUsage || !strings.Contains(errOut.String(), "-feeder is required") {
		t.Fatalf("no feeder: exit %d\n%s", code, errOut.String())
	}
	errOut.Reset()
	if code := Run(context.Background(), Env{Args: []string{"-h"}, Stdout: &errOut, Stderr: &errOut, LookupEnv: noEnv}); code != ExitOK {
		t.Fatalf("-h: exit %d\n%s", code, errOut.String())
	}
	help := errOut.String()
	for _, want := range []string{"-base-url URL", "-max-requests-per-conn", "-keep-alive", "-assert EXPR", "p99<5ms", "-baseUrl ", "same as -base-url", "-maxRequestsPerConn ", "same as -max-requests-per-conn", "Exit status"} {
		if !strings.Contains(help, want) {
			t.Errorf("-h lacks %q:\n%s", want, help)
		}
	}
	// Each flag is listed once; the aliases only in their own section.
	if n := strings.Count(help, "alias of"); n != 0 {
		t.Errorf("aliases listed among the flags (%d):\n%s", n, help)
	}
}

// TestBadAssertions: a malformed -assert is a usage error naming the
// expression, and no request is sent.
func TestBadAssertions(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"servedBy":"a"}`)
	}))
	t.Cleanup(srv.Close)
	for _, expr := range []string{"p99<<5ms", "p98<5ms", "p99<5", "ko", "ko<1%%", ""} {
		t.Run(expr, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Env{
				Args:   []string{"-base-url", srv.URL, "-users", "1", "-ramp", "0s", "-duration", "200ms", "-assert", "ko=0", "-assert", expr, "-out", t.TempDir()},
				Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV),
			})
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d\n%s", code, ExitUsage, errOut.String())
			}
			if !strings.Contains(errOut.String(), fmt.Sprintf("invalid value %q for flag -assert", expr)) || !strings.Contains(errOut.String(), "Run 'gatling -h' for usage") {
				t.Fatalf("stderr does not name the expression or lacks the usage:\n%s", errOut.String())
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests sent despite a malformed assertion", n)
	}
}

func TestShortRun(t *testing.T) {
	srv := servedByServer(t)
	dir := t.TempDir()
	var out bytes.Buffer
	var errOut syncbuf.Buffer
	code := Run(context.Background(), Env{
		Args:   []string{"-baseUrl", srv.URL, "-users", "4", "-ramp", "200ms", "-duration", "1500ms", "-pause", "50ms", "-out", dir},
		Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV),
	})
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "users 4 active") || !strings.Contains(errOut.String(), "req/s") {
		t.Errorf("no progress line:\n%s", errOut.String())
	}
	for _, want := range []string{"requests", "p99", "10.0.1.1", "10.0.1.2", "report: " + filepath.Join(dir, "index.html")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	var s struct {
		Requests struct{ Total, OK, KO int64 }
		ServedBy map[string]int64
		Run      struct {
			Interrupted bool
			Feeder      string
		}
		Host *struct {
			CPUs                int
			BusyPercent         float64
			ContextSwitchesPerS float64
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, v := range s.ServedBy {
		sum += v
	}
	if s.Requests.Total < 20 || s.Requests.KO != 0 || sum != s.Requests.Total || s.Run.Interrupted {
		t.Fatalf("stats %+v: want ≥ 20 OK requests, servedBy adding up to the total", s)
	}
	// This host's counters, over the run (the tests run on Linux).
	if h := s.Host; h == nil || h.CPUs < 1 || h.BusyPercent <= 0 || h.BusyPercent > 100 || h.ContextSwitchesPerS <= 0 {
		t.Errorf("stats.json host: %+v, want this host's CPUs, a busy share in (0, 100] and context switches", h)
	}
	if !strings.Contains(out.String(), "\nhost: ") {
		t.Errorf("summary lacks the host line:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Fatal(err)
	}
}

func TestInterruptWritesReport(t *testing.T) {
	srv := servedByServer(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncbuf.Buffer
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Env{
			Args:   []string{"-baseUrl", srv.URL, "-users", "10", "-ramp", "1s", "-duration", "1h", "-pause", "20ms", "-interval", "100ms", "-assert", "ko=0", "-assert", "ok>=1000000"},
			Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV), DefaultOut: parent,
			Now: func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) },
		})
	}()
	time.Sleep(500 * time.Millisecond)
	cancel() // what Ctrl-C does through signal.NotifyContext
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after the interrupt")
	}
	if code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, ExitInterrupted, errOut.String())
	}
	dir := filepath.Join(parent, "20261122-120000") // the default, timestamped
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatalf("no report after interrupt: %v\n%s", err, errOut.String())
	}
	var s struct {
		Requests struct{ Total int64 }
		Run      struct {
			Interrupted  bool
			UsersStarted int64
		}
		Assertions []struct{ Passed bool }
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if !s.Run.Interrupted || s.Requests.Total == 0 || s.Run.UsersStarted >= 10 {
		t.Fatalf("stats after interrupt: %+v", s)
	}
	if !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted:\n%s", errOut.String())
	}
	// The assertions are checked on what ran.
	if len(s.Assertions) != 2 || !s.Assertions[0].Passed || s.Assertions[1].Passed {
		t.Errorf("assertions after interrupt: %+v", s.Assertions)
	}
	if !strings.Contains(out.String(), "assertion ko=0: passed") || !strings.Contains(out.String(), "assertion ok>=1000000: failed") {
		t.Errorf("summary after interrupt lacks the assertions:\n%s", out.String())
	}
}

// statsFile is the part of stats.json these tests read.
type statsFile struct {
	Requests    struct{ Total, OK, KO int64 }
	LatencyMs   map[string]*float64 `json:"latencyMs"`
	KOLatencyMs map[string]*float64 `json:"koLatencyMs"`
	Ranges      []struct {
		Name       string
		Count      int64
		Percentage float64
	}
	Errors     map[string]int64
	Assertions []struct {
		Expression string
		Passed     bool
		Actual     *float64
		Detail     string
	}
}

func readStats(t *testing.T, dir string) statsFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s statsFile
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("stats.json: %v\n%s", err, b)
	}
	return s
}

// closedPort is an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSplitOKAndKO: a server answering every third request with 500 delays
// its OK answers by 3 ms and answers 500 at once: the OK latencies hold only
// the OK answers, the KO ones only the 500s.
func TestSplitOKAndKO(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%3 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		time.Sleep(3 * time.Millisecond)
		fmt.Fprint(w, `{"servedBy":"10.0.1.1"}`)
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var out bytes.Buffer
	var errOut syncbuf.Buffer
	code := Run(context.Background(), Env{
		Args:   []string{"-base-url", srv.URL, "-users", "2", "-ramp", "0s", "-duration", "300ms", "-pause", "5ms", "-quiet", "-out", dir, "-assert", "ok>0", "-assert", "p50>=3ms"},
		Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV),
	})
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	s := readStats(t, dir)
	if s.Requests.OK == 0 || s.Requests.KO == 0 || s.Errors["status 500"] != s.Requests.KO {
		t.Fatalf("requests %+v errors %v: want both outcomes", s.Requests, s.Errors)
	}
	okMin, koMax := s.LatencyMs["min"], s.KOLatencyMs["max"]
	if okMin == nil || koMax == nil || *okMin < 3 {
		t.Fatalf("OK min %v KO max %v: the OK answers all took ≥ 3 ms", okMin, koMax)
	}
	if s.Ranges[0].Count != s.Requests.OK || s.Ranges[3].Name != "failed" || s.Ranges[3].Count != s.Requests.KO {
		t.Fatalf("ranges %+v for %+v", s.Ranges, s.Requests)
	}
	if len(s.Assertions) != 2 || !s.Assertions[0].Passed || !s.Assertions[1].Passed {
		t.Fatalf("assertions %+v", s.Assertions)
	}
	for _, want := range []string{"assertion ok>0: passed (ok ", "assertion p50>=3ms: passed (p50 ", "t < 800 ms", "failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// TestClosedPort: every request refused. Nothing is reported as an OK
// latency, -assert ko=0 fails the run with exit 1, and a latency assertion
// fails too instead of passing on the refusals' speed.
func TestClosedPort(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	var errOut syncbuf.Buffer
	code := Run(context.Background(), Env{
		Args:   []string{"-base-url", "http://" + closedPort(t), "-users", "1", "-ramp", "0s", "-duration", "200ms", "-pause", "10ms", "-quiet", "-out", dir, "-assert", "ko=0", "-assert", "p99<5ms"},
		Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV),
	})
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailed, out.String(), errOut.String())
	}
	s := readStats(t, dir)
	if s.Requests.Total == 0 || s.Requests.OK != 0 || s.Requests.KO != s.Requests.Total {
		t.Fatalf("requests %+v", s.Requests)
	}
	if len(s.LatencyMs) != 7 || len(s.KOLatencyMs) != 7 {
		t.Fatalf("latencyMs %v koLatencyMs %v: want seven fields each", s.LatencyMs, s.KOLatencyMs)
	}
	for k, v := range s.LatencyMs {
		if v != nil {
			t.Errorf("latencyMs.%s = %v, want null: no OK response", k, *v)
		}
		if s.KOLatencyMs[k] == nil {
			t.Errorf("koLatencyMs.%s is null", k)
		}
	}
	if s.Ranges[3].Count != s.Requests.Total || s.Ranges[3].Percentage != 100 {
		t.Errorf("ranges %+v", s.Ranges)
	}
	if len(s.Assertions) != 2 || s.Assertions[0].Passed || s.Assertions[1].Passed || s.Assertions[1].Actual != nil {
		t.Fatalf("assertions %+v", s.Assertions)
	}
	for _, want := range []string{"assertion ko=0: failed (ko ", "assertion p99<5ms: failed (p99 not measured: no OK responses)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "2 of 2 assertions failed") {
		t.Errorf("stderr does not say the assertions failed:\n%s", errOut.String())
	}
}

// TestAssertionExitCodes: 0 when every assertion passes, 1 when one fails,
// against the same healthy server; the report is written either way.
func TestAssertionExitCodes(t *testing.T) {
	srv := servedByServer(t)
	for _, tt := range []struct {
		asserts []string
		code    int
	}{
		{nil, ExitOK},
		{[]string{"ko=0", "p99<10s", "ok>=1", "reqPerSec>0"}, ExitOK},
		{[]string{"ko=0", "p99<1us"}, ExitFailed},
		{[]string{"ok>=1000000"}, ExitFailed},
	} {
		t.Run(strings.Join(tt.asserts, ","), func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-baseUrl", srv.URL, "-users", "1", "-ramp", "0s", "-duration", "100ms", "-pause", "10ms", "-quiet", "-out", dir}
			for _, a := range tt.asserts {
				args = append(args, "-assert", a)
			}
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Env{Args: args, Stdout: &out, Stderr: &errOut, LookupEnv: noEnv, EmbeddedFeeder: []byte(feederCSV)})
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tt.code, out.String(), errOut.String())
			}
			if s := readStats(t, dir); len(s.Assertions) != len(tt.asserts) {
				t.Fatalf("stats.json holds %d assertions, want %d", len(s.Assertions), len(tt.asserts))
			}
		})
	}
}

func TestCanonicalArgs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"-baseUrl http://x -users 5", "-base-url http://x -users 5"},
		{"--baseUrl=http://x -keepAlive=false -maxRequestsPerConn 10", "--base-url=http://x -keep-alive=false -max-requests-per-conn 10"},
		{"-keepAlive -baseUrl http://x", "-keep-alive -base-url http://x"},
		{"-path /a/{id} -quiet -baseUrl u", "-request-path /a/{id} -quiet -base-url u"},
		// A value is never rewritten, nor anything after -- or a non-flag.
		{"-feeder -baseUrl -users 1", "-feeder -baseUrl -users 1"},
		{"-users 1 -- -baseUrl", "-users 1 -- -baseUrl"},
		{"extra -baseUrl x", "extra -baseUrl x"},
		{"-assert ko=0 -assert p99<5ms", "-assert ko=0 -assert p99<5ms"},
	}
	for _, tt := range tests {
		if got := strings.Join(canonicalArgs(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("canonicalArgs(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestEnvironment: every flag has its variable (conf's rule); the command
// line wins; ASSERT takes comma-separated expressions; a malformed variable
// is an error naming it, before any load; PATH is not the request path.
func TestEnvironment(t *testing.T) {
	srv := servedByServer(t)
	base := map[string]string{
		"BASE_URL": srv.URL, "USERS": "1", "RAMP": "0s", "DURATION": "100ms", "PAUSE": "10ms", "QUIET": "true",
		"PATH": "/usr/local/bin:/usr/bin", "ASSERT": "ko=0,requests>0",
	}
	with := func(kv map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range kv {
			m[k] = v
		}
		return m
	}
	t.Run("variables", func(t *testing.T) {
		dir := t.TempDir()
		var out, errOut bytes.Buffer
		code := Run(context.Background(), Env{Args: []string{"-out", dir}, Stdout: &out, Stderr: &errOut, EmbeddedFeeder: []byte(feederCSV),
			LookupEnv: envOf(with(map[string]string{"USERS": "3"}))})
		if code != ExitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), "assertion ko=0: passed") || !strings.Contains(out.String(), "assertion requests>0: passed") {
			t.Fatalf("ASSERT not applied:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "3 users (3 started)") || strings.Contains(errOut.String(), "req/s |") {
			t.Fatalf("USERS or QUIET not applied:\n%s\n%s", out.String(), errOut.String())
		}
	})
	t.Run("flag wins", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := Run(context.Background(), Env{Args: []string{"-out", t.TempDir(), "-users", "2", "-assert", "ok>0"}, Stdout: &out, Stderr: &errOut,
			EmbeddedFeeder: []byte(feederCSV), LookupEnv: envOf(with(map[string]string{"USERS": "many", "ASSERT": "p99<<1"}))})
		if code != ExitOK || !strings.Contains(out.String(), "2 users (2 started)") || strings.Contains(out.String(), "assertion ko=0") {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
	})
	for _, tt := range []struct{ name, value, want string }{
		{"ASSERT", "ko=0,p99<<5ms", `ASSERT: "ko=0,p99<<5ms"`},
		{"USERS", "x", `USERS: "x"`},
		{"KEEP_ALIVE", "maybe", `KEEP_ALIVE: "maybe"`},
		{"BASE_URL", "localhost:6767", "scheme must be http"},
	} {
		t.Run("malformed "+tt.name, func(t *testing.T) {
			var hits atomic.Int64
			probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
			defer probe.Close()
			env := with(map[string]string{"BASE_URL": probe.URL})
			env[tt.name] = tt.value
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Env{Args: []string{"-out", t.TempDir()}, Stdout: &out, Stderr: &errOut, EmbeddedFeeder: []byte(feederCSV), LookupEnv: envOf(env)})
			if code != ExitUsage || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, want %d and %q\n%s", code, ExitUsage, tt.want, errOut.String())
			}
			if hits.Load() != 0 {
				t.Fatalf("%d requests sent", hits.Load())
			}
		})
	}
}
