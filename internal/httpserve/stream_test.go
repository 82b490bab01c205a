package httpserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs srv on a loopback port until the test ends; it returns the base
// URL and a function that shuts the server down and returns Serve's result.
func serve(t *testing.T, srv *http.Server, grace time.Duration) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, srv, ln, grace, nil) }()
	var result error
	stopped := false
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-served:
			case <-time.After(30 * time.Second):
				result = errors.New("Serve did not return")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop
}

// ticks writes n events, one per gap, then returns.
func ticks(n int, gap time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range n {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(gap):
			}
		}
	}
}

// TestStreamOutlivesWriteTimeoutOrdinaryRouteDoesNot serves the same slow
// handler on a stream path and on an ordinary one, with a WriteTimeout shorter
// than the handler's run and a WriteWait shorter than its gaps: the stream
// delivers every event, the ordinary route is cut.
func TestStreamOutlivesWriteTimeoutOrdinaryRouteDoesNot(t *testing.T) {
	mux := http.NewServeMux()
	h := ticks(5, 150*time.Millisecond)
	mux.Handle("/events", h)
	mux.Handle("/slow", h)
	srv := New("", mux, WithWriteTimeout(200*time.Millisecond), Streaming(StreamConfig{WriteWait: 50 * time.Millisecond, Idle: 10 * time.Second}, "/events"))
	base, _ := serve(t, srv, time.Second)

	read := func(path string) (int, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.Count(string(b), "data: "), err
	}
	if n, err := read("/events"); n != 5 || err != nil {
		t.Fatalf("stream: %d events, %v; want 5, nil", n, err)
	}
	if n, err := read("/slow"); n == 5 && err == nil {
		t.Fatalf("ordinary route: %d events, no error; WriteTimeout must cut it", n)
	}
}

// TestIdleStreamEnds: a stream handler that writes once and then waits for its
// context is ended by the idle limit, with ErrStreamIdle as the cause.
func TestIdleStreamEnds(t *testing.T) {
	cause := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, ": hello\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})
	base, _ := serve(t, New("", h, Streaming(StreamConfig{Idle: 100 * time.Millisecond}, "/s")), time.Second)
	resp, err := http.Get(base + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case err := <-cause:
		if !errors.Is(err, ErrStreamIdle) {
			t.Fatalf("cause = %v, want ErrStreamIdle", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle stream was never ended")
	}
}

// TestStalledReaderIsDropped: a client that stops reading blocks the
// handler's writes; WriteWait fails them and the handler returns.
func TestStalledReaderIsDropped(t *testing.T) {
	returned := make(chan error, 1)
	chunk := []byte(strings.Repeat("x", 64<<10))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := w.Write(chunk); err != nil {
				returned <- err
				return
			}
		}
	})
	base, _ := serve(t, New("", h, Streaming(StreamConfig{WriteWait: 100 * time.Millisecond, Idle: time.Minute}, "/s")), time.Second)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatal(err)
	}
	// ... and read nothing more.
	select {
	case err := <-returned:
		if err == nil {
			t.Fatal("want a write error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled reader held the stream forever")
	}
}

// TestShutdownEndsStreams: an open stream does not hold the shutdown for its
// grace: its context ends at once and Serve returns nil.
func TestShutdownEndsStreams(t *testing.T) {
	cause := make(chan error, 1)
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, ": open\n\n")
		http.NewResponseController(w).Flush()
		close(entered)
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	})
	base, stop := serve(t, New("", h, Streaming(StreamConfig{}, "/s")), time.Minute)
	resp, err := http.Get(base + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want a clean shutdown", err)
	}
	if err := <-cause; !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("cause = %v, want ErrShuttingDown", err)
	}
}

// TestStreamServesFlusherAndUnwrap: handlers that assert http.Flusher or
// use http.ResponseController both reach the connection.
func TestStreamServesFlusherAndUnwrap(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "no flusher", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "data: a\n\n")
		f.Flush()
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
			_, _ = io.WriteString(w, "data: no-deadline\n\n")
		}
	})
	base, _ := serve(t, New("", h, Streaming(StreamConfig{}, "/s")), time.Second)
	resp, err := http.Get(base + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "data: a\n\n" {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
}

// TestShutdownEndsCloseNotifierStreams: a handler that waits on
// http.CloseNotifier, as hystrix-go's stream does, also ends at shutdown.
func TestShutdownEndsCloseNotifierStreams(t *testing.T) {
	ended := make(chan struct{})
	entered := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notify := w.(http.CloseNotifier).CloseNotify() //nolint:staticcheck // the old interface is the point
		_, _ = io.WriteString(w, ": open\n\n")
		http.NewResponseController(w).Flush()
		close(entered)
		<-notify
		close(ended)
	})
	base, stop := serve(t, New("", h, Streaming(StreamConfig{}, "/s")), time.Minute)
	resp, err := http.Get(base + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-entered
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want a clean shutdown", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Serve returned but the CloseNotifier handler still runs")
	}
}
