package lbclient

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBodiesOfEveryFramingAndConnectionReuse(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	big := strings.Repeat("x", 100<<10)
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			_, _ = io.WriteString(w, "part1-")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}
	})
	c := &http.Client{Transport: New(quiet(staticLookup("127.0.0.1")))}
	want := map[string]string{"/chunked": "part1-part2", "/big": big, "/empty": "", "/plain": "hello"}
	// 8 lanes to one address: 3 rounds reuse every lane's connection.
	for round := 0; round < 3*8; round++ {
		for path, w := range want {
			if got := get(t, c, "http://svc:"+port+path); got != w {
				t.Fatalf("%s: %d bytes, want %d", path, len(got), len(w))
			}
		}
	}
	resp, err := c.Head("http://svc:" + port + "/plain")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Post("http://svc:"+port+"/echo", "text/plain", strings.NewReader("posted body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "posted body" {
		t.Fatalf("echo: %q", b)
	}
	if n := bs[0].conns.Load(); n > 8 {
		t.Fatalf("%d connections for 8 lanes: answers read whole must leave their connection reusable", n)
	}
}

// closingTask answers one request per connection with a keep-alive answer,
// then closes the connection silently: the next request sent on it finds it
// gone, as when a task's server drops idle connections while it stops.
func closingTask(t *testing.T, ip, port string) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Skipf("cannot bind %s:%s: %v", ip, port, err)
	}
	t.Cleanup(func() { ln.Close() })
	var served atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				served.Add(1)
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+fmtInt(len(ip))+"\r\n\r\n"+ip)
				time.Sleep(20 * time.Millisecond) // the answer is read before the close
			}()
		}
	}()
	return &served
}

func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestStaleKeptConnectionIsRetriedOnAnotherTask(t *testing.T) {
	port, good := startBackends(t, "127.0.0.2")
	served := closingTask(t, "127.0.0.1", port)
	tr := New(quiet(staticLookup("127.0.0.1", "127.0.0.2")))
	c := &http.Client{Transport: tr}
	for i := 0; i < 10; i++ {
		got := get(t, c, "http://svc:"+port+"/")
		if got != "127.0.0.1" && got != "127.0.0.2" {
			t.Fatalf("request %d: answer %q", i, got)
		}
		time.Sleep(30 * time.Millisecond) // the closing task has closed by now
	}
	// Every other request goes first to the closing task's kept (gone)
	// connection, and is retried on the other task.
	if r := tr.Stats().Retries; r == 0 {
		t.Fatal("no request met a gone kept connection: the test proves nothing")
	}
	if n := served.Load() + good[0].requests.Load(); n != 10 {
		t.Fatalf("%d answers for 10 requests", n)
	}
}

func TestCancelUnblocksAWaitingRequest(t *testing.T) {
	port, bs := startBackends(t, "127.0.0.1")
	release := make(chan struct{})
	defer close(release)
	bs[0].srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release })
	c := &http.Client{Transport: New(quiet(staticLookup("127.0.0.1")))}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc:"+port+"/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	cancel()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("want a cancellation error, got %v", err)
	}
}
