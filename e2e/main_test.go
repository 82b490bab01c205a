//go:build e2e

// Package e2e drives the real stack on the real Docker engine in swarm mode.
//
// TestMain deploys the stack once with ./copyall.sh, with testability on (tests
// flip health) and the broker published (tests log in from the host), runs every
// test, then leaves the engine as it found it: a stack it deployed is removed
// with ./copyall.sh --down (one that was already there stays), and the swarm is
// left only if TestMain created it (GOBLOG_E2E_KEEP=1 keeps both, for debugging).
// Each test leaves the stack as it found it (one replica per service, all
// healthy), so tests can run in any order. Tests that change swarm state take
// no lock themselves: run the package under `flock /tmp/goblog-engine.lock`
// when others share the engine.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Stack is the stack name copyall.sh deploys.
const Stack = "goblog"

// Published endpoints on this node (dnsrr mode binds them on the node; vip mode
// publishes them on the routing mesh, reached on the same addresses).
var (
	EdgeURL    = envOr("GOBLOG_EDGE_URL", "http://127.0.0.1:6767")
	WatcherURL = envOr("GOBLOG_WATCHER_URL", "http://127.0.0.1:6969")
	TurbineURL = envOr("GOBLOG_TURBINE_URL", "http://127.0.0.1:8282")
)

// RepoRoot is the repository's top folder.
var RepoRoot = func() string {
	wd, _ := os.Getwd()
	return filepath.Dir(wd)
}()

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if out, err := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}}").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the Docker engine is not reachable: %v\n%s", err, out)
		return 1
	} else if strings.TrimSpace(string(out)) != "active" {
		createdSwarm = true
	}
	// A stack that was deployed before the run stays deployed (rolled to this
	// build, and back to its own settings afterwards); one the run deployed is
	// removed.
	stackExisted := exec.Command("docker", "network", "inspect", Stack+"_net").Run() == nil
	if os.Getenv("GOBLOG_E2E_KEEP") != "1" {
		if stackExisted {
			defer restoreSettings(deployedSettings())
		} else {
			defer teardown()
		}
	}

	start := time.Now()
	if err := copyall(15*time.Minute, testSettings); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: ./copyall.sh failed: %v\n", err)
		return 1
	}
	DeployDuration = time.Since(start)
	fmt.Fprintf(os.Stderr, "e2e: ./copyall.sh took %s from start to every service healthy\n", DeployDuration.Round(time.Millisecond))
	return m.Run()
}

var createdSwarm bool

// testSettings is how the tests need the stack: testability on (they flip health), the broker
// published (they log in from this machine), health checks every 5 s (they start tasks often;
// the default, 30 s, makes a new task wait 30 s for its first check: docker-stack.yml).
var testSettings = []string{"GOBLOG_TESTABILITY=true", "GOBLOG_BROKER_PUBLISH=true", "GOBLOG_HEALTH_INTERVAL=" + testHealthInterval}

const testHealthInterval = "5s"

// copyall runs ./copyall.sh with settings added to the environment.
func copyall(timeout time.Duration, settings []string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(RepoRoot, "copyall.sh"), args...)
	cmd.Dir = RepoRoot
	cmd.Env = append(os.Environ(), settings...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// deployedSettings reads from the engine how the running stack was deployed, as the
// GOBLOG_* settings of ./copyall.sh.
func deployedSettings() []string {
	testability := "false"
	if out, err := exec.Command("docker", "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}", Service("accountservice")).Output(); err == nil &&
		strings.Contains(string(out), `"TESTABILITY=true"`) {
		testability = "true"
	}
	publish := "false"
	if out, err := exec.Command("docker", "service", "inspect", "--format", "{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}} {{end}}", Service("rabbitmq")).Output(); err == nil &&
		strings.Contains(" "+string(out), " 5672 ") {
		publish = "true"
	}
	interval := "30s"
	if out, err := exec.Command("docker", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Healthcheck.Interval}}", Service("accountservice")).Output(); err == nil {
		if d, err := time.ParseDuration(strings.TrimSpace(string(out))); err == nil && d > 0 {
			interval = d.String()
		}
	}
	return []string{"GOBLOG_TESTABILITY=" + testability, "GOBLOG_BROKER_PUBLISH=" + publish, "GOBLOG_HEALTH_INTERVAL=" + interval}
}

// restoreSettings redeploys a stack that was there before the run with its own settings, when
// the run's differ (a user's stack does not stay open because the tests ran).
func restoreSettings(settings []string) {
	if strings.Join(settings, " ") == strings.Join(testSettings, " ") {
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: redeploying the stack as it was before the run (%s)\n", strings.Join(settings, " "))
	if err := copyall(15*time.Minute, settings); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: ./copyall.sh (restoring %s): %v\n", strings.Join(settings, " "), err)
	}
}

// DeployDuration is how long ./copyall.sh took in TestMain.
var DeployDuration time.Duration

func teardown() {
	// ./copyall.sh --down removes the stack and keeps the broker's credentials; it leaves
	// the swarm only when copyall.sh created it, which is so when this run did.
	args := []string{"--down", "--keep-swarm"}
	if createdSwarm {
		args = []string{"--down"}
	}
	fmt.Fprintln(os.Stderr, "e2e: ./copyall.sh", strings.Join(args, " "))
	if err := copyall(5*time.Minute, nil, args...); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: ./copyall.sh %s: %v\n", strings.Join(args, " "), err)
	}
}

// Docker runs the docker CLI and fails the test on error.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := DockerErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// DockerErr runs the docker CLI with a two-minute deadline.
func DockerErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// WaitFor polls cond every 250ms until it holds or timeout passes; the test
// fails with cond's last status then.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	status := ""
	for {
		var ok bool
		ok, status = cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not reached within %s; last: %s", what, timeout, status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Service is the full swarm name of a stack service ("accountservice" →
// "goblog_accountservice").
func Service(name string) string { return Stack + "_" + name }

// Converged reports whether svc has as many running (healthy) tasks as desired
// and no update in progress, and a status line.
func Converged(svc string) (bool, string) {
	out, err := DockerErr("service", "ls", "--filter", "name="+svc, "--format", "{{.Name}} {{.Replicas}}")
	if err != nil {
		return false, out
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != svc {
			continue
		}
		running, desired, _ := strings.Cut(f[1], "/")
		update, _ := DockerErr("service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", svc)
		ok := running == desired && update != "updating" && update != "rollback_started"
		return ok, svc + " " + f[1] + " " + update
	}
	return false, svc + " not listed"
}

// Scale sets svc's replicas and waits until they all run healthy; it returns
// how long that took.
func Scale(t testing.TB, name string, n int) time.Duration {
	t.Helper()
	svc := Service(name)
	start := time.Now()
	Docker(t, "service", "scale", "--detach", svc+"="+strconv.Itoa(n))
	WaitFor(t, 3*time.Minute, "scale "+svc+" to "+strconv.Itoa(n), func() (bool, string) { return Converged(svc) })
	if n > 0 {
		WaitFor(t, time.Minute, svc+" tasks in DNS", func() (bool, string) {
			tasks := RunningTasks(t, name)
			return len(tasks) == n, fmt.Sprintf("%d running tasks", len(tasks))
		})
	}
	return time.Since(start)
}

// KeepReplicas scales name to n now and back to 1 when the test ends.
func KeepReplicas(t *testing.T, name string, n int) time.Duration {
	t.Helper()
	t.Cleanup(func() { Scale(t, name, 1) })
	return Scale(t, name, n)
}

// Task is one running task of a service as the engine reports it.
type Task struct {
	ID          string
	Slot        int
	State       string
	ContainerID string
	IP          string // on the stack network
	Node        string
}

// RunningTasks lists name's tasks whose desired and actual state is running.
func RunningTasks(t testing.TB, name string) []Task {
	t.Helper()
	ids := strings.Fields(Docker(t, "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", Service(name)))
	if len(ids) == 0 {
		return nil
	}
	out := Docker(t, append([]string{"inspect", "--type", "task", "--format", "{{json .}}"}, ids...)...)
	var tasks []Task
	for _, line := range strings.Split(out, "\n") {
		var raw struct {
			ID     string
			Slot   int
			NodeID string
			Status struct {
				State           string
				ContainerStatus struct{ ContainerID string }
			}
			NetworksAttachments []struct {
				Network   struct{ Spec struct{ Name string } }
				Addresses []string
			}
		}
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("task JSON: %v: %s", err, line)
		}
		if raw.Status.State != "running" {
			continue
		}
		task := Task{ID: raw.ID, Slot: raw.Slot, State: raw.Status.State, ContainerID: raw.Status.ContainerStatus.ContainerID, Node: raw.NodeID}
		for _, na := range raw.NetworksAttachments {
			if na.Network.Spec.Name == Stack+"_net" && len(na.Addresses) > 0 {
				task.IP, _, _ = strings.Cut(na.Addresses[0], "/")
			}
		}
		tasks = append(tasks, task)
	}
	return tasks
}

// NewClient returns an HTTP client that opens a new connection per request
// (as a stranger's successive curls do) with a deadline.
func NewClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// Call sends a request and decodes a JSON answer into v (when not nil); it
// returns the status code.
func Call(t testing.TB, c *http.Client, method, url string, v any) int {
	t.Helper()
	code, body, err := CallErr(c, method, url)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %v: %q", method, url, code, err, body)
		}
	}
	return code
}

// CallErr is Call without failing the test.
func CallErr(c *http.Client, method, url string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
