package watch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	dswarm "github.com/docker/docker/api/types/swarm"

	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// fakesEnv, when set ("services,tasksPer,dir"), makes the test binary the
// benchmarks' fakes process (TestMain): the fake engine and the fake probe
// targets live apart from the watcher, so that the benchmark process's
// resident set and CPU time are the watcher's own.
const fakesEnv = "SWARMWATCHER_BENCH_FAKES"

func TestMain(m *testing.M) {
	if spec := os.Getenv(fakesEnv); spec != "" {
		if err := runFakes(spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench fakes:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakes is the benchmark's side of the fakes process.
type fakes struct {
	engine  string // the fake Engine API's base URL
	targets string // the probe targets' unix socket
	ctl     *http.Client
}

// startFakes runs the fakes process for services × tasksPer tasks and
// stops it when the benchmark ends.
func startFakes(b *testing.B, services, tasksPer int) *fakes {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d,%s", fakesEnv, services, tasksPer, dir))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close() // the fakes process ends at its stdin's end
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("fakes process: %v", err)
	}
	return &fakes{
		engine:  strings.TrimSpace(line),
		targets: filepath.Join(dir, "targets.sock"),
		ctl:     &http.Client{Timeout: 10 * time.Second},
	}
}

// Dial is the probes' dialler: every task address reaches the fake
// targets' socket (a unix socket: 10,000 probes a second leave no
// TIME_WAIT behind).
func (f *fakes) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", f.targets)
}

// fakeStats are the fakes' counters.
type fakeStats struct {
	EngineCalls int64         // Engine API calls (pings aside)
	Probes      int64         // probes answered
	MaxGap      time.Duration // longest wait between two probes of one task
	ProbedSince int           // tasks probed at or after the asked time
	CPU         time.Duration // the fakes process's CPU time so far
}

// stats reads the fakes' counters (reset: zero them afterwards); since
// (wall clock) asks for ProbedSince.
func (f *fakes) stats(b *testing.B, reset bool, since time.Time) fakeStats {
	b.Helper()
	url := fmt.Sprintf("%s/_bench/stats?since=%d", f.engine, since.UnixNano())
	if reset {
		url += "&reset=1"
	}
	resp, err := f.ctl.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var st fakeStats
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&st); err != nil {
		b.Fatal(err)
	}
	return st
}

// runFakes is the fakes process: the fake Engine API (and its counters)
// on a loopback port it writes to out, the probe targets on a unix socket
// in dir, until in ends.
func runFakes(spec string, in io.Reader, out io.Writer) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%s=%q: want services,tasksPer,dir", fakesEnv, spec)
	}
	services, err1 := strconv.Atoi(parts[0])
	tasksPer, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%s=%q: want services,tasksPer,dir", fakesEnv, spec)
	}
	bodies, err := engineBodies(services, tasksPer, 8080)
	if err != nil {
		return err
	}
	targets := &probeTargets{last: map[string]int64{}}
	var calls atomic.Int64
	engineLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	targetLn, err := net.Listen("unix", filepath.Join(parts[2], "targets.sock"))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_bench/stats", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		st := targets.stats(since, r.URL.Query().Get("reset") != "")
		st.EngineCalls = calls.Load()
		if r.URL.Query().Get("reset") != "" {
			calls.Store(0)
		}
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
			st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		path := apiPath.ReplaceAllString(r.URL.Path, "")
		if path == "/_ping" {
			return
		}
		calls.Add(1)
		body, ok := bodies[path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"not found"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	engine := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	probes := &http.Server{Handler: targets, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = engine.Serve(engineLn) }()
	go func() { _ = probes.Serve(targetLn) }()
	if _, err := fmt.Fprintf(out, "http://%s\n", engineLn.Addr()); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, in) // until the benchmark ends
	_ = engine.Close()
	_ = probes.Close()
	return nil
}

var apiPath = regexp.MustCompile(`^/v[0-9.]+`)

// engineBodies are the Engine API's answers for services × tasksPer
// running tasks, marshalled from the Engine API's own types.
func engineBodies(services, tasksPer, probePort int) (map[string][]byte, error) {
	netID := "benchnet0000000000000000"
	nets := []network.Summary{
		{Name: "ingress", ID: "ingress00000000000000000", Driver: "overlay", Ingress: true},
		{Name: "goblog_net", ID: netID, Driver: "overlay"},
	}
	nodes := []dswarm.Node{{ID: "node1", Description: dswarm.NodeDescription{Hostname: "swarm-1"}}}
	var svcs []dswarm.Service
	var tasks []dswarm.Task
	n := 0
	for s := range services {
		replicas := uint64(tasksPer)
		svc := dswarm.Service{ID: fmt.Sprintf("svc%03d", s)}
		svc.Spec.Name = fmt.Sprintf("bench_service%03d", s)
		svc.Spec.Labels = map[string]string{swarm.LabelPort: strconv.Itoa(probePort)}
		svc.Spec.Mode.Replicated = &dswarm.ReplicatedService{Replicas: &replicas}
		svc.ServiceStatus = &dswarm.ServiceStatus{DesiredTasks: replicas, RunningTasks: replicas}
		svcs = append(svcs, svc)
		for i := range tasksPer {
			n++
			// Every task gets its own address: 10.1.x.y.
			ip := fmt.Sprintf("10.1.%d.%d", n/250, n%250+1)
			tasks = append(tasks, dswarm.Task{
				ID: fmt.Sprintf("task%05d", n), ServiceID: svc.ID, Slot: i + 1, NodeID: "node1",
				DesiredState: dswarm.TaskStateRunning,
				Status:       dswarm.TaskStatus{State: dswarm.TaskStateRunning, Timestamp: time.Now()},
				NetworksAttachments: []dswarm.NetworkAttachment{
					{Network: dswarm.Network{ID: "ingress00000000000000000"}, Addresses: []string{"10.0.0.9/24"}},
					{Network: dswarm.Network{ID: netID}, Addresses: []string{ip + "/16"}},
				},
			})
		}
	}
	bodies := map[string][]byte{}
	for path, v := range map[string]any{"/services": svcs, "/tasks": tasks, "/nodes": nodes, "/networks": nets} {
		j, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		bodies[path] = j
	}
	return bodies, nil
}

// probeTargets answers /health for every task address (the Host header)
// and notes when each was probed.
type probeTargets struct {
	probes atomic.Int64
	mu     sync.Mutex
	last   map[string]int64 // unix nanoseconds, by task address
	maxGap time.Duration
}

func (p *probeTargets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.probes.Add(1)
	now := time.Now().UnixNano()
	p.mu.Lock()
	if prev, ok := p.last[r.Host]; ok {
		p.maxGap = max(p.maxGap, time.Duration(now-prev))
	}
	p.last[r.Host] = now
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"UP"}`))
}

// stats counts the probes, the longest gap and the tasks probed at or
// after since (unix nanoseconds); reset zeroes the first two.
func (p *probeTargets) stats(since int64, reset bool) fakeStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := fakeStats{Probes: p.probes.Load(), MaxGap: p.maxGap}
	for _, at := range p.last {
		if at >= since {
			st.ProbedSince++
		}
	}
	if reset {
		p.probes.Store(0)
		p.maxGap = 0
	}
	return st
}
