package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// serve runs h on 127.0.0.1 for the test and returns its port.
func serve(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// healthOnly answers 200 on /health and 404 elsewhere.
func healthOnly(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/health" {
		http.NotFound(w, r)
	}
}

// recordWaits replaces sleep for the test and returns the waits asked for.
func recordWaits(t *testing.T) *[]time.Duration {
	var waits []time.Duration
	sleep = func(d time.Duration) { waits = append(waits, d) }
	t.Cleanup(func() { sleep = time.Sleep })
	return &waits
}

func TestRun(t *testing.T) {
	port := serve(t, healthOnly)
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

func TestRunLingersOnlyAfterAPass(t *testing.T) {
	port := serve(t, healthOnly)
	w := recordWaits(t)

	for i := 0; i < 50; i++ {
		if got := run([]string{"-port", port, "-jitter", "3s", "-timeout", "2s"}); got != 0 {
			t.Fatalf("passing check: run = %d, want 0", got)
		}
	}
	if len(*w) != 50 {
		t.Fatalf("50 passing checks waited %d times", len(*w))
	}
	var longest time.Duration
	for _, d := range *w {
		if d < 0 || d > 2*time.Second {
			t.Errorf("waited %s: want 0 … 2s (the -timeout, below the 3s jitter)", d)
		}
		longest = max(longest, d)
	}
	// 50 draws below 2 s of a uniform [0, 3 s): all below 1 s has odds 3^-50.
	if longest < time.Second {
		t.Errorf("the longest of 50 waits is %s: the jitter does not spread", longest)
	}

	*w = nil
	if got := run([]string{"-port", port, "-path", "/nope", "-jitter", "3s"}); got != 1 {
		t.Errorf("failing check: run = %d, want 1", got)
	}
	if len(*w) != 0 {
		t.Errorf("a failing check waited %v before exiting: it must exit at once", *w)
	}
	if got := run([]string{"-port", port, "-jitter", "-1s"}); got != 2 {
		t.Errorf("-jitter -1s: run = %d, want 2", got)
	}
}

func TestLingerFor(t *testing.T) {
	top := func(n int64) int64 { return n - 1 }
	for _, tt := range []struct {
		jitter, left, want time.Duration
	}{
		{0, time.Second, 0},
		{time.Second, 0, 0},
		{time.Second, -time.Millisecond, 0},
		{time.Second, 5 * time.Second, time.Second - 1},
		{3 * time.Second, time.Second, time.Second},
	} {
		if got := lingerFor(tt.jitter, tt.left, top); got != tt.want {
			t.Errorf("lingerFor(%s, %s) = %s, want %s", tt.jitter, tt.left, got, tt.want)
		}
	}
	var asked int64
	lingerFor(3*time.Second, time.Hour, func(n int64) int64 { asked = n; return 0 })
	if asked != int64(3*time.Second) {
		t.Errorf("drew from [0, %d), want [0, %d)", asked, int64(3*time.Second))
	}
}

// The wait is cut to what the check left of -timeout, so a slow pass never
// overruns the engine's timeout.
func TestRunLingersNoLongerThanTheTimeoutLeaves(t *testing.T) {
	const answerAfter = time.Second
	port := serve(t, func(http.ResponseWriter, *http.Request) { time.Sleep(answerAfter) })
	w := recordWaits(t)

	if got := run([]string{"-port", port, "-jitter", "1h", "-timeout", "3s"}); got != 0 {
		t.Fatalf("run = %d, want 0", got)
	}
	if len(*w) != 1 || (*w)[0] > 3*time.Second-answerAfter {
		t.Errorf("waited %v after a check that took over %s of a 3s timeout: want at most %s", *w, answerAfter, 3*time.Second-answerAfter)
	}
}
