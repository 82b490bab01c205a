//go:build lab

package labtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

const (
	stack   = "goblog"
	netName = stack + "_net"
	// Published ports of the stack, and where the lab forwards them (see lab/lib.sh).
	edgePort    = 6767
	watcherPort = 6969
)

var (
	repoRoot string
	nodes    int            // nodes in the lab
	engine   *client.Client // the manager's engine (node 1)
)

// enginePort and meshPort follow the contract: node i's engine at 23750+i, a
// routing-mesh port P through node i at 20000+P+100*(i-1).
func enginePort(i int) int  { return 23750 + i }
func meshPort(i, p int) int { return 20000 + p + 100*(i-1) }
func meshURL(i, p int, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", meshPort(i, p), path)
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtest:", err)
		return 1
	}
	repoRoot = root
	nodes = 1
	if s := os.Getenv("LAB_NODES"); s != "" {
		if nodes, err = strconv.Atoi(s); err != nil || nodes < 1 {
			fmt.Fprintf(os.Stderr, "labtest: LAB_NODES=%q is not a node count\n", s)
			return 1
		}
	}
	reuse := os.Getenv("LAB_REUSE") == "1"
	t0 := time.Now()
	if !reuse {
		if err := script(nil, "lab/up", "-nodes", strconv.Itoa(nodes)); err != nil {
			fmt.Fprintln(os.Stderr, "labtest: lab/up:", err)
			return 1
		}
		if os.Getenv("LAB_KEEP") != "1" {
			defer func() {
				if err := script(nil, "lab/down"); err != nil {
					fmt.Fprintln(os.Stderr, "labtest: lab/down:", err)
				}
			}()
		}
	} else if b, err := os.ReadFile(filepath.Join(repoRoot, "lab/run/nodes")); err == nil {
		nodes, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	tUp := time.Since(t0)

	engine, err = client.NewClientWithOpts(
		client.WithHost(fmt.Sprintf("tcp://127.0.0.1:%d", enginePort(1))),
		client.WithAPIVersionNegotiation(),
		client.WithTimeout(2*time.Minute)) // a manager in an emulated guest under load can take a minute to answer
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtest: docker client:", err)
		return 1
	}
	defer engine.Close()

	t1 := time.Now()
	if os.Getenv("LAB_SKIP_DEPLOY") != "1" {
		// Testability on: the tests flip a replica unhealthy through the edge (a default deploy
		// has no /testability route, issue 13).
		env := []string{fmt.Sprintf("DOCKER_HOST=tcp://127.0.0.1:%d", enginePort(1)), "GOBLOG_TESTABILITY=true"}
		if err := script(env, "./copyall.sh"); err != nil {
			fmt.Fprintln(os.Stderr, "labtest: ./copyall.sh into the lab:", err)
			serialTails()
			return 1
		}
	}
	tDeploy := time.Since(t1)

	t2 := time.Now()
	code := m.Run()
	if code != 0 {
		serialTails()
	}
	fmt.Fprintf(os.Stderr, "labtest: %d node(s): lab/up %.0f s, deploy %.0f s, tests %.0f s\n",
		nodes, tUp.Seconds(), tDeploy.Seconds(), time.Since(t2).Seconds())
	return code
}

// script runs a repository script with extra environment, its output on stderr.
func script(env []string, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(repoRoot, name), args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// serialTails prints the last lines of every node's serial console and lab/status.
func serialTails() {
	_ = script(nil, "lab/status")
	for i := 1; i <= nodes; i++ {
		b, err := os.ReadFile(filepath.Join(repoRoot, "lab/run", fmt.Sprintf("node%d.serial", i)))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		fmt.Fprintf(os.Stderr, "--- node%d serial log, last lines ---\n%s\n---\n", i, strings.Join(lines, "\n"))
	}
}

// httpClient opens a new connection per request, so every request goes through
// the VIP's balancing again.
var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

type account struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ServedBy string `json:"servedBy"`
	Quote    struct {
		Quote     string `json:"quote"`
		IPAddress string `json:"ipAddress"`
		Language  string `json:"language"`
	} `json:"quote"`
}

// quoteIP returns the IP in a quote's ipAddress ("<host>/<ip>:8080").
func (a account) quoteIP() string {
	s := a.Quote.IPAddress
	if i := strings.LastIndex(s, "/"); i >= 0 {
		s = s[i+1:]
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// getJSON GETs url and decodes a 200 JSON answer into v.
func getJSON(ctx context.Context, url string, v any) error {
	return doJSON(ctx, http.MethodGet, url, v)
}

func doJSON(ctx context.Context, method, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %.200s", method, url, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: decode %.200q: %w", method, url, body, err)
	}
	return nil
}

// eventually calls f every interval until it returns nil or timeout passes,
// logging the latest error now and then; it returns the last error.
func eventually(t *testing.T, what string, timeout, interval time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	lastLog := start
	for {
		err := f()
		if err == nil {
			t.Logf("%s: after %.1f s", what, time.Since(start).Seconds())
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("%s: still waiting (%.0f s): %v", what, time.Since(start).Seconds(), err)
		}
		time.Sleep(interval)
	}
}

// runningTasks returns the service's tasks that swarm wants running and that
// run (a task with a health check only gets there once healthy).
func runningTasks(ctx context.Context, service string) ([]swarm.Task, error) {
	tasks, err := engine.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service), filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", service, err)
	}
	var out []swarm.Task
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateRunning {
			out = append(out, t)
		}
	}
	return out, nil
}

// taskIP is the task's address on the stack network, or "".
func taskIP(t swarm.Task) string {
	for _, na := range t.NetworksAttachments {
		if na.Network.Spec.Name != netName {
			continue
		}
		for _, a := range na.Addresses {
			if ip, _, err := net.ParseCIDR(a); err == nil {
				return ip.String()
			}
		}
	}
	return ""
}

// taskIPs maps the IP on the stack network of each running task to the task.
func taskIPs(ctx context.Context, service string) (map[string]swarm.Task, error) {
	tasks, err := runningTasks(ctx, service)
	if err != nil {
		return nil, err
	}
	m := make(map[string]swarm.Task, len(tasks))
	for _, t := range tasks {
		if ip := taskIP(t); ip != "" {
			m[ip] = t
		}
	}
	return m, nil
}

// updateService applies change to the service's spec (retrying on a version race).
func updateService(ctx context.Context, service string, change func(*swarm.ServiceSpec)) error {
	var err error
	for range 5 {
		var s swarm.Service
		s, _, err = engine.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect %s: %w", service, err)
		}
		change(&s.Spec)
		if _, err = engine.ServiceUpdate(ctx, s.ID, s.Version, s.Spec, swarm.ServiceUpdateOptions{}); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("update %s: %w", service, err)
}

func scale(ctx context.Context, service string, n uint64) error {
	return updateService(ctx, service, func(s *swarm.ServiceSpec) {
		if s.Mode.Replicated != nil {
			s.Mode.Replicated.Replicas = &n
		}
	})
}

// healthCycle is the longest one health check of the service's tasks can take,
// counted from the end of the check before: the interval plus the timeout the
// service was deployed with (docker-stack.yml's x-healthcheck, which
// ./copyall.sh lengthens in the lab to 30 s and 30 s). retries is how many
// failing checks in a row make a task unhealthy. Where the spec leaves a value
// out, the image's HEALTHCHECK sets it; Docker's defaults stand in for those.
func healthCycle(ctx context.Context, service string) (cycle time.Duration, retries int, err error) {
	s, _, err := engine.ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
	if err != nil {
		return 0, 0, fmt.Errorf("inspect %s: %w", service, err)
	}
	interval, timeout, retries := 30*time.Second, 30*time.Second, 3
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil && cs.Healthcheck != nil {
		h := cs.Healthcheck
		if h.Interval > 0 {
			interval = h.Interval
		}
		if h.Timeout > 0 {
			timeout = h.Timeout
		}
		if h.Retries > 0 {
			retries = h.Retries
		}
	}
	return interval + timeout, retries, nil
}

// waitRunning waits until the service has exactly n running tasks.
func waitRunning(t *testing.T, ctx context.Context, service string, n int, timeout time.Duration) (map[string]swarm.Task, error) {
	t.Helper()
	var ips map[string]swarm.Task
	err := eventually(t, fmt.Sprintf("%s has %d running task(s)", service, n), timeout, 2*time.Second, func() error {
		var err error
		if ips, err = taskIPs(ctx, service); err != nil {
			return err
		}
		if len(ips) != n {
			return fmt.Errorf("%d running: %v", len(ips), keys(ips))
		}
		return nil
	})
	return ips, err
}

// walk sends n requests through the mesh port of node i (one connection each)
// and counts answers per servedBy and per quote IP.
func walk(ctx context.Context, i, n int) (servedBy, quoteIPs map[string]int, err error) {
	servedBy, quoteIPs = map[string]int{}, map[string]int{}
	for k := range n {
		var a account
		id := 10000 + k%100
		if err := getJSON(ctx, meshURL(i, edgePort, fmt.Sprintf("/accounts/%d", id)), &a); err != nil {
			return servedBy, quoteIPs, err
		}
		if a.ID != strconv.Itoa(id) || a.Name != fmt.Sprintf("Person_%d", id-10000) {
			return servedBy, quoteIPs, fmt.Errorf("account %d answered as %+v", id, a)
		}
		servedBy[a.ServedBy]++
		quoteIPs[a.quoteIP()]++
	}
	return servedBy, quoteIPs, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameKeys reports whether the two maps have exactly the same keys.
func sameKeys[A, B any](a map[string]A, b map[string]B) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// watcherService is the part of the swarmwatcher's /api/services the tests read.
type watcherService struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Replicas struct {
		Desired int `json:"desired"`
		Running int `json:"running"`
	} `json:"replicas"`
	Tasks []struct {
		ID      string `json:"id"`
		Node    string `json:"node"`
		State   string `json:"state"`
		Address string `json:"address"`
		Health  string `json:"health"`
	} `json:"tasks"`
}

// stackDefines reports whether docker-stack.yml defines the service.
func stackDefines(service string) bool {
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-stack.yml"))
	return err == nil && strings.Contains(string(b), "\n  "+service+":")
}
