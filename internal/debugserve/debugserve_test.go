package debugserve

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/conf"
)

func TestHandlerServesProfilesAndVars(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
		"/debug/pprof/cmdline":           "",
		"/debug/vars":                    `"memstats"`,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}

func TestOffByDefault(t *testing.T) {
	var addr string
	s := conf.New("x", "")
	s.LookupEnv = func(string) (string, bool) { return "", false }
	AddFlag(s, &addr)
	if _, err := s.Parse(nil); err != nil || addr != "" {
		t.Fatalf("default = %q, %v; want off", addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), "", nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run with no address must return at once")
	}
}

func TestFlagRejectsAnAddressWithoutPort(t *testing.T) {
	var addr string
	s := conf.New("x", "")
	s.LookupEnv = func(k string) (string, bool) {
		return map[string]string{"DEBUG_LISTEN": "6060"}[k], k == "DEBUG_LISTEN"
	}
	AddFlag(s, &addr)
	if _, err := s.Parse(nil); err == nil || !strings.Contains(err.Error(), "DEBUG_LISTEN") {
		t.Fatalf("Parse = %v, want an error naming DEBUG_LISTEN", err)
	}
}

func TestRunServesUntilCancelledAndWarnsOffLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, addr, slog.New(slog.NewTextHandler(&logs, nil))) }()
	var resp *http.Response
	for range 100 {
		if resp, err = http.Get("http://" + addr + "/debug/vars"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "never publish") {
		t.Errorf("a loopback address was warned about:\n%s", logs.String())
	}
	logs.Reset()
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if err := Run(cancelled, "0.0.0.0:0", slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "never publish") {
		t.Errorf("an address on every interface must be warned about:\n%s", logs.String())
	}
	for addr, want := range map[string]bool{"127.0.0.1:6060": true, "localhost:6060": true, "[::1]:6060": true, ":6060": false, "0.0.0.0:6060": false, "10.0.1.7:6060": false} {
		if Loopback(addr) != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, !want, want)
		}
	}
}
