package nettest

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestSilentListenerAcceptsAndNeverAnswers(t *testing.T) {
	addr, accepted := SilentListener(t)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := bufio.NewReader(c).ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %v, want the deadline to pass with no answer", err)
	}
	for deadline := time.Now().Add(5 * time.Second); accepted() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d connections, want 1", accepted())
		}
	}
}
