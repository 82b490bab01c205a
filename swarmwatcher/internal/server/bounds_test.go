package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/goblog/goblog/internal/nettest"
)

// openStream connects from local (nil: any) and reads the stream's opening
// events; it returns the connection, left idle, and its reader.
func openStream(t testing.TB, addr string, local net.Addr, path string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: watcher\r\n\r\n", path)
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	if !strings.Contains(status, " 200 ") {
		return c, r, strings.TrimSpace(status)
	}
	for { // through the headers and the snapshot to the status event
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read opening events: %v", err)
		}
		if strings.HasPrefix(line, "event: status") {
			if _, err := r.ReadString('\n'); err != nil { // its data
				t.Fatal(err)
			}
			break
		}
	}
	_ = c.SetDeadline(time.Time{})
	return c, r, "200"
}

// readUntil reads events until one named name, within a deadline.
func readUntil(c net.Conn, r *bufio.Reader, name string) error {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) == "event: "+name {
			return nil
		}
	}
}

// 3000 idle event-stream clients (30 from each of 100 loopback addresses,
// within the per-IP bound) are all served, get each change from one encoding,
// and leave /health answering. The /health latency is printed, not asserted.
func TestThreeThousandIdleEventClients(t *testing.T) {
	const clients, perIP = 3000, 30
	if lim := nettest.RaiseFileLimit(t, 2*clients+200); lim < 2*clients+100 {
		t.Fatalf("RLIMIT_NOFILE is %d: %d streams need about %d descriptors (client and server side)", lim, clients, 2*clients+100)
	}
	d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1))}
	w := newWatcher(t, d)
	ctx := context.Background()
	_ = w.Refresh(ctx)
	s := New(Config{MaxClients: clients, MaxClientsPerIP: perIP, Keepalive: time.Hour}, w)
	// Cleanups run last first: the streams close (openStream), then the
	// encoder stops, then the server.
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = s.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := srv.Listener.Addr().String()

	var ms0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, clients)
	readers := make([]*bufio.Reader, 0, clients)
	start := time.Now()
	for i := range clients {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/perIP/250), byte(1+(i/perIP)%250))}
		c, r, status := openStream(t, addr, local, "/api/events")
		if status != "200" {
			t.Fatalf("client %d from %s: %s", i, local.IP, status)
		}
		conns, readers = append(conns, c), append(readers, r)
	}
	opened := time.Since(start)
	if got := testutil.ToFloat64(s.m.clients); got != clients {
		t.Fatalf("clients gauge = %v, want %d", got, clients)
	}
	// One more is refused at once, with Retry-After, and counted.
	rejected := testutil.ToFloat64(s.m.rejected.WithLabelValues("cap"))
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("client %d: %s, Retry-After %q; want 503 with Retry-After", clients+1, resp.Status, resp.Header.Get("Retry-After"))
	}
	if got := testutil.ToFloat64(s.m.rejected.WithLabelValues("cap")) - rejected; got != 1 {
		t.Fatalf("rejected{cap} += %v, want 1", got)
	}

	// /health still answers; its latency is the figure.
	var lat []time.Duration
	for range 50 {
		t0 := time.Now()
		resp, err := http.Get(srv.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		lat = append(lat, time.Since(t0))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/health: %s", resp.Status)
		}
	}
	slices.Sort(lat)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)

	// A change reaches every client from one encoding.
	encoded := testutil.ToFloat64(s.m.encoded)
	d.set(snapshot(task("t1", "10.0.1.7", 1), task("t2", "10.0.1.8", 2)), nil)
	_ = w.Refresh(ctx) // one task-added and the view: two messages
	for i := range conns {
		if err := readUntil(conns[i], readers[i], "task-added"); err != nil {
			t.Fatalf("client %d: no task-added: %v", i, err)
		}
	}
	if got := testutil.ToFloat64(s.m.encoded) - encoded; got != 2 {
		t.Errorf("encoded += %v for one update and %d clients, want 2 (once per message)", got, clients)
	}
	t.Logf("%d idle event-stream clients: opened in %v; /health p50 %v max %v over %d calls; heap +%.1f MiB, goroutines +%d",
		clients, opened.Round(time.Millisecond), lat[len(lat)/2], lat[len(lat)-1], len(lat),
		float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/(1<<20), runtime.NumGoroutine()-g0)
}

func TestEventClientsPerIPBound(t *testing.T) {
	d := &fakeDisc{snap: snapshot(task("t1", "10.0.1.7", 1))}
	w := newWatcher(t, d)
	_ = w.Refresh(context.Background())
	s := New(Config{MaxClients: 100, MaxClientsPerIP: 2}, w)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close) // after the streams' own cleanups
	addr := srv.Listener.Addr().String()
	a := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	before := testutil.ToFloat64(s.m.rejected.WithLabelValues("per-ip"))
	for i, want := range []string{"200", "200", "503"} {
		if _, _, got := openStream(t, addr, a, "/api/events"); !strings.Contains(got, want) {
			t.Fatalf("stream %d from one IP: %s, want %s", i+1, got, want)
		}
	}
	if _, _, got := openStream(t, addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, "/api/events"); got != "200" {
		t.Fatalf("another IP: %s, want 200", got)
	}
	if got := testutil.ToFloat64(s.m.rejected.WithLabelValues("per-ip")) - before; got != 1 {
		t.Errorf("rejected{per-ip} += %v, want 1", got)
	}
}
