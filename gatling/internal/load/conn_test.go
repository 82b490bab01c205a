package load

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/gatling/internal/feeder"
	"github.com/goblog/goblog/gatling/internal/stats"
)

// rawServer accepts connections and runs serve on each; it counts them and
// the requests read.
type rawServer struct {
	addr     string
	conns    atomic.Int64
	requests atomic.Int64
}

func newRawServer(t *testing.T, serve func(s *rawServer, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				serve(s, c, bufio.NewReader(c))
			}()
		}
	}()
	return s
}

// readRequest reads one request's head; false when the client went away.
func (s *rawServer) readRequest(br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	req.Body.Close()
	s.requests.Add(1)
	return true
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{\"servedBy\":\"10.0.1.1\"}\n"

func TestIdleConnectionClosedByTheServerIsNotAKO(t *testing.T) {
	// The server answers one request per connection, keep-alive, and then
	// closes the connection while the user pauses: the next request finds it
	// closed before any byte of an answer and is sent again on a new one.
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if !s.readRequest(br) {
			return
		}
		c.Write([]byte(okAnswer))
		time.Sleep(5 * time.Millisecond)
	})
	cfg := testConfig("http://" + srv.addr)
	cfg.Users = 2
	s, _, err := run(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests.Total < 10 || s.Requests.KO != 0 {
		t.Fatalf("requests %+v errors %v: want ≥ 10, none KO", s.Requests, s.Errors)
	}
	if got := srv.requests.Load(); got != s.Requests.Total {
		t.Fatalf("server read %d requests for %d results: want one each (the retried ones never reached it)", got, s.Requests.Total)
	}
	if c := srv.conns.Load(); c != s.Requests.Total {
		t.Fatalf("%d connections for %d requests, want one each", c, s.Requests.Total)
	}
}

func TestAnswerCutShortIsAKOAndNotRetried(t *testing.T) {
	// Each connection gets one whole answer, then half of one before it
	// closes: the second request reached the server, came back cut, and is
	// not sent again, although it went out on a reused connection.
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		if !s.readRequest(br) {
			return
		}
		c.Write([]byte(okAnswer))
		if !s.readRequest(br) {
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"serv"))
	})
	cfg := testConfig("http://" + srv.addr)
	cfg.Users = 1
	cfg.Duration = 200 * time.Millisecond
	s, _, err := run(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests.Total < 4 || s.Requests.KO != s.Requests.Total/2 || s.Errors["connection closed early"] != s.Requests.KO {
		t.Fatalf("requests %+v errors %v: want every second one KO, closed early", s.Requests, s.Errors)
	}
	if got := srv.requests.Load(); got != s.Requests.Total {
		t.Fatalf("server read %d requests for %d results: a cut answer must not be retried", got, s.Requests.Total)
	}
}

func TestRequestOnTheWire(t *testing.T) {
	var got atomic.Value
	srv := newRawServer(t, func(s *rawServer, c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			s.requests.Add(1)
			got.Store(req.Method + " " + req.RequestURI + " " + req.Proto + " host=" + req.Host + " accept=" + req.Header.Get("Accept") + " close=" + map[bool]string{true: "yes", false: "no"}[req.Close])
			c.Write([]byte(okAnswer))
		}
	})
	cfg := testConfig("http://" + srv.addr + "/base/")
	cfg.Users = 1
	cfg.Duration = 50 * time.Millisecond
	run(t, context.Background(), cfg, "a b/c")
	want := "GET /base/accounts/a%20b%2Fc HTTP/1.1 host=" + srv.addr + " accept=application/json close=no"
	if g, _ := got.Load().(string); g != want {
		t.Fatalf("request %q, want %q", g, want)
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"servedBy":"10.0.1.7"}`))
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig(srv.URL)
	cfg.Users = 1
	cfg.Duration = 100 * time.Millisecond
	rec, r := newTestRunner(t, cfg)
	r.target.tls.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	if err := r.Run(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	s := rec.Summary(time.Now())
	if s.Requests.Total == 0 || s.Requests.KO != 0 || s.ServedBy["10.0.1.7"] != s.Requests.Total {
		t.Fatalf("requests %+v errors %v servedBy %v", s.Requests, s.Errors, s.ServedBy)
	}
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("test server %s is not https", srv.URL)
	}
}

func newTestRunner(t *testing.T, cfg Config) (*stats.Recorder, *Runner) {
	t.Helper()
	f, err := feeder.NewCircular([]string{"10000"})
	if err != nil {
		t.Fatal(err)
	}
	rec := stats.NewRecorder(time.Now())
	r, err := NewRunner(cfg, f, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec, r
}
