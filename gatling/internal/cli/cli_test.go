package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const feederCSV = "accountId\n10000\n10001\n"

// syncBuffer is written by the progress goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

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
		{[]string{"-duration", "0s", "-pause", "-1s"}, "duration 0s: must be positive"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-feeder", "/does/not/exist.csv"}, "open feeder"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Run(context.Background(), Env{Args: tt.args, Stdout: &out, Stderr: &errOut, EmbeddedFeeder: []byte(feederCSV), DefaultOut: t.TempDir()})
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, errOut.String())
			}
			if !strings.Contains(tt.want, "feeder") && !strings.Contains(errOut.String(), "Usage: gatling") {
				t.Fatalf("no usage after the error:\n%s", errOut.String())
			}
		})
	}
	var errOut bytes.Buffer
	if code := Run(context.Background(), Env{Args: nil, Stdout: &errOut, Stderr: &errOut, DefaultOut: t.TempDir()}); code != ExitUsage || !strings.Contains(errOut.String(), "-feeder is required") {
		t.Fatalf("no feeder: exit %d\n%s", code, errOut.String())
	}
	errOut.Reset()
	if code := Run(context.Background(), Env{Args: []string{"-h"}, Stdout: &errOut, Stderr: &errOut}); code != ExitOK || !strings.Contains(errOut.String(), "-maxRequestsPerConn") {
		t.Fatalf("-h: exit %d\n%s", code, errOut.String())
	}
}

func TestShortRun(t *testing.T) {
	srv := servedByServer(t)
	dir := t.TempDir()
	var out bytes.Buffer
	var errOut syncBuffer
	code := Run(context.Background(), Env{
		Args:   []string{"-baseUrl", srv.URL, "-users", "4", "-ramp", "200ms", "-duration", "1500ms", "-pause", "50ms", "-out", dir},
		Stdout: &out, Stderr: &errOut, EmbeddedFeeder: []byte(feederCSV),
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
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Fatal(err)
	}
}

func TestInterruptWritesReport(t *testing.T) {
	srv := servedByServer(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, Env{
			Args:   []string{"-baseUrl", srv.URL, "-users", "10", "-ramp", "1s", "-duration", "1h", "-pause", "20ms", "-interval", "100ms"},
			Stdout: &out, Stderr: &errOut, EmbeddedFeeder: []byte(feederCSV), DefaultOut: parent,
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
}
