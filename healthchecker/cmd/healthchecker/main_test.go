package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A service's own environment must not reach the checker's flags.
	t.Setenv("PATH", "/usr/local/bin:/usr/bin")
	t.Setenv("PORT", "1")
	t.Setenv("TIMEOUT", "soon")
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"-port", port}, 0},
		{[]string{"-port", port, "-path", "/nope"}, 1},
		{[]string{"-port", "0"}, 2},
		{[]string{"-port", port, "-path", "health"}, 2},
		{[]string{"-port", port, "-timeout", "0s"}, 2},
	} {
		if got := run(tt.args); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
	t.Setenv("HEALTHCHECKER_PORT", port)
	if got := run(nil); got != 0 {
		t.Errorf("HEALTHCHECKER_PORT=%s: run = %d, want 0", port, got)
	}
	t.Setenv("HEALTHCHECKER_PORT", strconv.Itoa(70000))
	if got := run(nil); got != 2 {
		t.Errorf("HEALTHCHECKER_PORT=70000: run = %d, want 2", got)
	}
}
