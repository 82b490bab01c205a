//go:build e2e

package e2e

// A default deploy is closed (issue 13): ./copyall.sh run the way a user runs it, with
// neither GOBLOG_TESTABILITY nor GOBLOG_BROKER_PUBLISH in its environment, gives a stack
// whose edge refuses /testability/* and whose broker is not published. The file is named
// zz_ so that Go runs it last in the package: every test before it needs testability on.
// It leaves the stack deployed the default way; TestMain tears it down (or restores a
// stack that was there before the run).

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unsetEnv removes keys from this process's environment until the test ends, so that a
// command started meanwhile sees them unset (not empty), as in a user's shell.
func unsetEnv(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := os.LookupEnv(k); ok {
			t.Cleanup(func() { os.Setenv(k, v) })
		}
		if err := os.Unsetenv(k); err != nil {
			t.Fatalf("unset %s: %v", k, err)
		}
	}
}

// publishedPorts lists the ports the engine publishes for name, from its spec and from
// its endpoint (what is bound now), as "spec:5672" and "endpoint:5672".
func publishedPorts(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, p := range inspectService(t, name).Spec.EndpointSpec.Ports {
		if p.PublishedPort != 0 {
			out = append(out, "spec:"+strconv.Itoa(p.PublishedPort))
		}
	}
	for _, f := range strings.Fields(Docker(t, "service", "inspect", "--format", "{{range .Endpoint.Ports}}{{.PublishedPort}} {{end}}", Service(name))) {
		if f != "0" {
			out = append(out, "endpoint:"+f)
		}
	}
	return out
}

// dialRefused reports whether a TCP connection to addr is refused, and what happened.
func dialRefused(addr string) (bool, string) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return false, addr + " accepted a connection"
	}
	return errors.Is(err, syscall.ECONNREFUSED), addr + ": " + err.Error()
}

func TestZZDefaultDeployRefusesTestability(t *testing.T) {
	unsetEnv(t, "GOBLOG_TESTABILITY", "GOBLOG_BROKER_PUBLISH", "GOBLOG_HEALTH_INTERVAL")
	start := time.Now()
	if err := copyall(15*time.Minute, nil); err != nil {
		t.Fatalf("./copyall.sh (default settings): %v", err)
	}
	took := time.Since(start)
	t.Logf("default redeploy (./copyall.sh with GOBLOG_TESTABILITY and GOBLOG_BROKER_PUBLISH unset) took %s", took.Round(time.Millisecond))

	// The engine runs what a default deploy asks for. Checked before any PUT below: with
	// testability still on, that PUT would mark a real replica unhealthy.
	for _, name := range []string{"edge", "accountservice"} {
		svc := Service(name)
		WaitFor(t, 3*time.Minute, svc+" converged", func() (bool, string) { return Converged(svc) })
		spec := inspectService(t, name).Spec.TaskTemplate.ContainerSpec
		if env := spec.Env; !slices.Contains(env, "TESTABILITY=false") || slices.Contains(env, "TESTABILITY=true") {
			t.Fatalf("%s env %v: want TESTABILITY=false after a default deploy", svc, env)
		}
		// The default health-check cadence (issue 12): each check is an exec costing the
		// engine ~70 ms of CPU, so every 30 s, not the tests' 5 s.
		if got := spec.Healthcheck.Interval; got != 30*time.Second {
			t.Fatalf("%s health-check interval %v after a default deploy, want 30s", svc, got)
		}
	}
	if ports := publishedPorts(t, "rabbitmq"); len(ports) != 0 {
		t.Errorf("%s publishes %v after a default deploy, want nothing published", Service("rabbitmq"), ports)
	}
	for _, port := range []string{"5672", "15672"} {
		addr := net.JoinHostPort(brokerHost, port)
		WaitFor(t, 30*time.Second, "the broker's "+port+" refused from this host", func() (bool, string) { return dialRefused(addr) })
	}

	// The edge refuses the kill switch: 404, once the rolled edge answers at all.
	c := NewClient()
	var code int
	var body []byte
	WaitFor(t, 2*time.Minute, "the edge answers PUT /testability/healthy/false", func() (bool, string) {
		var err error
		code, body, err = CallErr(c, http.MethodPut, EdgeURL+"/testability/healthy/false")
		if err != nil {
			return false, err.Error()
		}
		return code != http.StatusBadGateway && code != http.StatusServiceUnavailable, fmt.Sprintf("%d %s", code, body)
	})
	if code != http.StatusNotFound {
		if code == http.StatusOK { // a replica was just marked unhealthy: undo it before failing
			_, _, _ = CallErr(c, http.MethodPut, EdgeURL+"/testability/healthy/true")
		}
		t.Fatalf("PUT %s/testability/healthy/false after a default deploy: %d %s, want 404", EdgeURL, code, body)
	}
	t.Logf("PUT /testability/healthy/false through the edge: %d %s", code, strings.TrimSpace(string(body)))

	// And it still serves.
	WaitFor(t, time.Minute, "GET /accounts/10000 through the edge answers 200", func() (bool, string) {
		code, body, err := CallErr(c, http.MethodGet, EdgeURL+"/accounts/10000")
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
}
