// Package nettest holds the network fixtures goblog's tests share: peers that
// misbehave the way an outbound call must survive. It is imported by _test.go
// files only.
package nettest

import (
	"net"
	"sync"
	"testing"
)

// SilentListener listens on 127.0.0.1, accepts every connection and never
// answers, and returns its address ("127.0.0.1:port"). It proves that a call
// has a deadline (STYLE habit 4): without one, the call hangs on it. The
// listener and every accepted connection are closed when the test ends.
// Accepted reports how many connections it has accepted so far.
func SilentListener(t testing.TB) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}
