package main

// The exit status of the real command, run as its own process: the test
// binary re-runs itself as gatling when GATLING_TEST_MAIN is set.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/syncbuf"
)

func TestMain(m *testing.M) {
	if os.Getenv("GATLING_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// gatling runs the command with args and only the variables in env (none
// of the caller's: each flag has one) and returns its exit status and output.
func gatling(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append([]string{"GATLING_TEST_MAIN=1"}, env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run gatling: %v", err)
	}
	return code, out.String(), errOut.String()
}

func accountsServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id":%q,"servedBy":"10.0.1.7"}`, strings.TrimPrefix(r.URL.Path, "/accounts/"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestExitStatus(t *testing.T) {
	srv := accountsServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	short := []string{"-users", "2", "-ramp", "0s", "-duration", "200ms", "-pause", "20ms", "-quiet"}
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string // in stdout+stderr
	}{
		{"help", nil, []string{"-h"}, 0, "Usage: gatling"},
		{"contract's command line, shortened", nil, []string{"-baseUrl", srv.URL, "-users", "2", "-ramp", "100ms", "-duration", "300ms", "-pause", "50ms"}, 0, "responses per servedBy"},
		{"assertions pass", nil, append([]string{"-base-url", srv.URL, "-assert", "ko=0", "-assert", "p99<10s", "-assert", "reqPerSec>0"}, short...), 0, "assertion p99<10s: passed"},
		{"an assertion fails", nil, append([]string{"-base-url", srv.URL, "-assert", "ko=0", "-assert", "p99<1us"}, short...), 1, "assertion p99<1us: failed"},
		{"malformed assertion", nil, append([]string{"-base-url", srv.URL, "-assert", "p99<<5ms"}, short...), 2, `invalid value "p99<<5ms" for flag -assert`},
		{"closed port with ko=0", nil, append([]string{"-base-url", closed, "-assert", "ko=0"}, short...), 1, "assertion ko=0: failed"},
		{"closed port without assertions", nil, append([]string{"-base-url", closed}, short...), 0, "connection refused"},
		{"unknown flag", nil, []string{"-base_url", srv.URL}, 2, "flag provided but not defined: -base_url"},
		{"ASSERT against a closed port", []string{"ASSERT=ko=0"}, append([]string{"-base-url", closed}, short...), 1, "assertion ko=0: failed"},
		{"malformed ASSERT", []string{"ASSERT=p99<5"}, append([]string{"-base-url", srv.URL}, short...), 2, `ASSERT: "p99<5"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-out", t.TempDir()}, tt.args...)
			code, out, errOut := gatling(t, tt.env, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", tt.want, out, errOut)
			}
		})
	}
}

// TestInterruptChecksAssertions: SIGINT stops the run; the report is written,
// the assertions are checked and printed, and the status is 130.
func TestInterruptChecksAssertions(t *testing.T) {
	srv := accountsServer(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-base-url", srv.URL, "-users", "2", "-ramp", "0s", "-duration", "1h", "-pause", "20ms",
		"-interval", "100ms", "-out", dir, "-assert", "ko=0")
	cmd.Env = []string{"GATLING_TEST_MAIN=1"}
	var out strings.Builder
	var errOut syncbuf.Buffer // read while the process writes it
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the first progress line: the run is under way.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errOut.String(), "req/s") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no progress line in 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("gatling did not stop after SIGINT")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit %v, want 130\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "assertion ko=0: passed") {
		t.Errorf("no assertion line after the interrupt:\n%s", out.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Assertions []struct{ Passed bool }
		Run        struct{ Interrupted bool }
	}
	if err := json.Unmarshal(b, &s); err != nil || len(s.Assertions) != 1 || !s.Run.Interrupted {
		t.Fatalf("stats.json after interrupt: %v %+v", err, s)
	}
}
