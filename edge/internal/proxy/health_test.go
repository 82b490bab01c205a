package proxy

import (
	"net"
	"net/http"
	"testing"
)

// TestOwnHealthDoesNotDependOnAccountservice: the edge's /-/health is its container's
// HEALTHCHECK (liveness), so it must stay 200 when nothing behind it answers (issue 16: a
// health check that fails because a dependency is away makes swarm kill a live process),
// while a proxied request says 502.
func TestOwnHealthDoesNotDependOnAccountservice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there: every task refuses
	edge := newEdge(t, port, "127.0.0.1")
	for path, want := range map[string]int{HealthPath: http.StatusOK, "/accounts/10000": http.StatusBadGateway} {
		resp, err := http.Get(edge.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s with accountservice away: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
