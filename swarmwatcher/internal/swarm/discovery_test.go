package swarm

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/goblog/goblog/internal/nettest"
)

func newDiscovery(t *testing.T, e *fakeEngine, cfg Config) *Discovery {
	t.Helper()
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	d, err := New(cfg, e.client())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func findService(t *testing.T, s Snapshot, name string) Service {
	t.Helper()
	for _, svc := range s.Services {
		if svc.Name == name {
			return svc
		}
	}
	t.Fatalf("service %s not in snapshot", name)
	return Service{}
}

func TestRefreshFromFixtures(t *testing.T) {
	e := newFakeEngine(t)
	d := newDiscovery(t, e, Config{Hostname: "c0ffee123456"})
	snap, err := d.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if got := strings.Join(snap.Networks, ","); got != "goblog_net" {
		t.Errorf("networks = %q, want goblog_net (the watcher's own, never ingress)", got)
	}
	var names []string
	for _, s := range snap.Services {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "backend_worker,goblog_accountservice,goblog_edge,goblog_quotes-service"; got != want {
		t.Errorf("services = %s, want %s (sorted by name)", got, want)
	}

	acc := findService(t, snap, "goblog_accountservice")
	if acc.Desired != 3 || acc.Running != 2 {
		t.Errorf("accountservice replicas desired/running = %d/%d, want 3/2 (draining tasks not counted)", acc.Desired, acc.Running)
	}
	if acc.ProbePort != 6767 || acc.ProbePath != "/health" || acc.EndpointMode != "dnsrr" {
		t.Errorf("accountservice probe %d %q mode %q", acc.ProbePort, acc.ProbePath, acc.EndpointMode)
	}
	type want struct {
		id, addr, node, desired string
		slot                    int
		draining                bool
	}
	wants := []want{
		{"acc1task000000000000000000", "10.0.1.7", "swarm-1", "running", 1, false},
		{"acc2task000000000000000000", "10.0.1.8", "swarm-1", "running", 2, false},
		{"acc3oldtask00000000000000", "10.0.1.10", "swarm-1", "shutdown", 3, true},
		{"acc4scaleddown00000000000", "10.0.1.14", "swarm-1", "remove", 4, true},
	}
	if len(acc.Tasks) != len(wants) {
		t.Fatalf("accountservice tasks = %+v, want %d (starting and exited tasks left out)", acc.Tasks, len(wants))
	}
	for i, w := range wants {
		got := acc.Tasks[i]
		if got.ID != w.id || got.Address != w.addr || got.Node != w.node || got.DesiredState != w.desired ||
			got.Slot != w.slot || got.Draining() != w.draining || got.State != "running" || got.Network != "goblog_net" {
			t.Errorf("task %d = %+v, want %+v", i, got, w)
		}
		if got.ContainerID == "" || got.Since.IsZero() {
			t.Errorf("task %d lacks container id or timestamp: %+v", i, got)
		}
	}

	q := findService(t, snap, "goblog_quotes-service")
	if q.ProbePort != 8080 || q.ProbePath != "/health" || q.EndpointMode != "vip" {
		t.Errorf("quotes probe %d %q mode %q (path label without slash gets one)", q.ProbePort, q.ProbePath, q.EndpointMode)
	}
	if len(q.Tasks) != 1 || q.Tasks[0].Address != "10.0.1.12" {
		t.Errorf("quotes task = %+v, want the goblog_net address 10.0.1.12 though backend_net is listed first", q.Tasks)
	}

	edge := findService(t, snap, "goblog_edge")
	if edge.ProbePort != 6767 || edge.ProbePath != "/-/health" {
		t.Errorf("edge probe from container labels = %d %q", edge.ProbePort, edge.ProbePath)
	}
	if len(edge.Tasks) != 1 || edge.Tasks[0].Address != "10.0.1.13" {
		t.Errorf("edge task = %+v, want 10.0.1.13 (never the ingress address)", edge.Tasks)
	}

	w := findService(t, snap, "backend_worker")
	if w.ProbePort != 0 || !strings.Contains(w.ProbeError, "not a port number") {
		t.Errorf("worker probe port %d error %q, want a clear label error", w.ProbePort, w.ProbeError)
	}
	if w.Mode != "global" || w.Desired != 2 || w.Running != 2 {
		t.Errorf("worker mode %s desired/running %d/%d", w.Mode, w.Desired, w.Running)
	}
	if len(w.Tasks) != 2 {
		t.Fatalf("worker tasks = %+v", w.Tasks)
	}
	for _, task := range w.Tasks {
		if task.Address != "" || task.AddressError == "" {
			t.Errorf("worker task %s: address %q reason %q, want no address and a reason", task.ID, task.Address, task.AddressError)
		}
	}
	reasons := w.Tasks[0].AddressError + " | " + w.Tasks[1].AddressError
	if !strings.Contains(reasons, "only backend_net") || !strings.Contains(reasons, "without a usable address") {
		t.Errorf("reasons = %s", reasons)
	}
	for _, task := range w.Tasks {
		if task.NodeID == "nGONE0000000000000000000" && task.Node != task.NodeID {
			t.Errorf("task on unknown node shows node %q, want the node ID", task.Node)
		}
	}

	// Read-only and constant: one call each, plus the one-time own-container inspect.
	for _, p := range []string{"/services", "/tasks", "/nodes", "/networks", "/containers/c0ffee123456/json"} {
		if n := e.count(p); n != 1 {
			t.Errorf("%s called %d times, want 1", p, n)
		}
	}
	if q := e.query("/services"); q.Get("status") != "true" {
		t.Errorf("services query %v lacks status=true", q)
	}
	if f := e.query("/tasks").Get("filters"); !strings.Contains(f, `"desired-state":{"remove":true,"running":true,"shutdown":true}`) {
		t.Errorf("tasks filters = %s, want desired-state running, shutdown and remove", f)
	}
	before := e.totalCalls()
	if _, err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.totalCalls() - before; n != CallsPerRefresh {
		t.Errorf("second refresh made %d calls, want %d", n, CallsPerRefresh)
	}
}

func TestNetworkChoice(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		networks  string // fixture override for /networks
		wantNets  string
		wantQuote string // address of the quotes-service task
		wantWork  string // address of the worker task on backend_net
	}{
		{name: "own container", cfg: Config{Hostname: "c0ffee123456"}, wantNets: "goblog_net", wantQuote: "10.0.1.12"},
		{name: "configured by name", cfg: Config{Networks: []string{"backend_net"}}, wantNets: "backend_net", wantQuote: "10.0.2.5", wantWork: "10.0.2.6"},
		{name: "configured by id", cfg: Config{Networks: []string{"b4ckendnet000000000000000"}}, wantNets: "backend_net", wantQuote: "10.0.2.5", wantWork: "10.0.2.6"},
		{name: "configured two, first preferred", cfg: Config{Networks: []string{"goblog_net", "backend_net"}}, wantNets: "goblog_net,backend_net", wantQuote: "10.0.1.12", wantWork: "10.0.2.6"},
		{name: "configured but missing", cfg: Config{Networks: []string{"nope"}}, wantNets: "nope"},
		{name: "not in a container: stack network", cfg: Config{Hostname: "laptop"}, wantNets: "goblog_net", wantQuote: "10.0.1.12"},
		{name: "no hostname: stack network", cfg: Config{}, wantNets: "goblog_net", wantQuote: "10.0.1.12"},
		{name: "no stack network: first overlay but ingress", cfg: Config{}, networks: `[{"Name":"ingress","Id":"kkzr7r722ss4ingress0000000","Driver":"overlay","Ingress":true},{"Name":"backend_net","Id":"b4ckendnet000000000000000","Driver":"overlay"}]`, wantNets: "backend_net", wantQuote: "10.0.2.5", wantWork: "10.0.2.6"},
		{name: "only ingress", cfg: Config{}, networks: `[{"Name":"ingress","Id":"kkzr7r722ss4ingress0000000","Driver":"overlay","Ingress":true}]`, wantNets: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			if tt.networks != "" {
				e.set("/networks", []byte(tt.networks))
			}
			snap, err := newDiscovery(t, e, tt.cfg).Refresh(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(snap.Networks, ","); got != tt.wantNets {
				t.Errorf("networks = %q, want %q", got, tt.wantNets)
			}
			q := findService(t, snap, "goblog_quotes-service").Tasks[0]
			if q.Address != tt.wantQuote {
				t.Errorf("quotes address = %q (%s), want %q", q.Address, q.AddressError, tt.wantQuote)
			}
			if tt.wantQuote == "" && q.AddressError == "" {
				t.Error("task without address has no reason")
			}
			var w Task
			for _, task := range findService(t, snap, "backend_worker").Tasks {
				if task.ID == "wrk1task000000000000000000" {
					w = task
				}
			}
			if w.Address != tt.wantWork {
				t.Errorf("worker address = %q (%s), want %q", w.Address, w.AddressError, tt.wantWork)
			}
			for _, s := range snap.Services {
				for _, task := range s.Tasks {
					if strings.HasPrefix(task.Address, "10.0.0.") {
						t.Errorf("task %s got ingress address %s", task.ID, task.Address)
					}
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{CallTimeout: time.Second, Networks: []string{"ingress"}}).Validate(); err == nil {
		t.Error("ingress accepted as the watched network")
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("zero call timeout accepted")
	}
	if err := (Config{CallTimeout: time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestRefreshAPIErrors(t *testing.T) {
	for _, path := range []string{"/services", "/tasks", "/nodes", "/networks"} {
		t.Run(path, func(t *testing.T) {
			e := newFakeEngine(t)
			e.fail(path, http.StatusInternalServerError)
			_, err := newDiscovery(t, e, Config{}).Refresh(context.Background())
			if err == nil {
				t.Fatal("refresh succeeded against a failing engine")
			}
			if !strings.Contains(err.Error(), "list "+strings.TrimPrefix(path, "/")) || !strings.Contains(err.Error(), "forced failure") {
				t.Errorf("error %q does not say which call failed and why", err)
			}
		})
	}
	t.Run("malformed JSON", func(t *testing.T) {
		e := newFakeEngine(t)
		e.set("/tasks", []byte(`[{"ID": "x", "Status": {"State": 42}}`))
		if _, err := newDiscovery(t, e, Config{}).Refresh(context.Background()); err == nil {
			t.Fatal("malformed answer accepted")
		}
	})
	t.Run("own container inspect fails: retried later, fallback meanwhile", func(t *testing.T) {
		e := newFakeEngine(t)
		e.fail("/containers/c0ffee123456/json", http.StatusInternalServerError)
		d := newDiscovery(t, e, Config{Hostname: "c0ffee123456"})
		snap, err := d.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(snap.Networks, ",") != "goblog_net" {
			t.Errorf("fallback networks = %v", snap.Networks)
		}
		e.fail("/containers/c0ffee123456/json", 0)
		if _, err := d.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := e.count("/containers/c0ffee123456/json"); n != 2 {
			t.Errorf("inspect called %d times, want a retry after the transient failure", n)
		}
	})
}

func TestRefreshDeadline(t *testing.T) {
	t.Run("fake engine hangs on tasks", func(t *testing.T) {
		e := newFakeEngine(t)
		e.hangOn("/tasks")
		_, err := newDiscovery(t, e, Config{CallTimeout: 50 * time.Millisecond}).Refresh(context.Background())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline error", err)
		}
	})
	t.Run("listener accepts and never answers", func(t *testing.T) {
		d, err := New(Config{CallTimeout: 50 * time.Millisecond}, clientFor(t, "tcp://"+silentAddr(t)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Refresh(context.Background())
		if err == nil || !strings.Contains(err.Error(), "list services") {
			t.Fatalf("err = %v, want list services to fail by its deadline", err)
		}
	})
}

// TestRefreshRealEngineCapture replays answers captured from this project's
// engine (Docker 20.10, API 1.41) with the goblog stack deployed in dnsrr
// mode, during a stuck rolling update of the edge (one task pending).
func TestRefreshRealEngineCapture(t *testing.T) {
	e := newFakeEngine(t)
	for _, f := range []string{"services", "tasks", "nodes", "networks"} {
		e.setFile("/"+f, "real/"+f+".json")
	}
	e.setFile("/containers/5c3eb4095218/json", "real/container_5c3eb4095218.json")
	snap, err := newDiscovery(t, e, Config{Hostname: "5c3eb4095218"}).Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(snap.Networks, ",") != "goblog_net" {
		t.Errorf("networks %v, want the watcher's own goblog_net", snap.Networks)
	}
	want := map[string]string{ // service -> running task addresses
		"goblog_accountservice": "10.0.2.8",
		"goblog_edge":           "10.0.2.4", // the pending replacement is not listed
		"goblog_quotes-service": "10.0.2.6",
		"goblog_swarmwatcher":   "10.0.2.7",
	}
	if len(snap.Services) != len(want) {
		t.Fatalf("%d services, want %d", len(snap.Services), len(want))
	}
	for _, s := range snap.Services {
		var addrs []string
		for _, task := range s.Tasks {
			addrs = append(addrs, task.Address)
			if task.Node != "vm" || task.Slot != 1 || task.ContainerID == "" {
				t.Errorf("%s task %+v", s.Name, task)
			}
		}
		if got := strings.Join(addrs, ","); got != want[s.Name] {
			t.Errorf("%s addresses %q, want %q", s.Name, got, want[s.Name])
		}
		if s.EndpointMode != "dnsrr" || s.Desired != 1 || s.Running != 1 {
			t.Errorf("%s mode %s desired/running %d/%d", s.Name, s.EndpointMode, s.Desired, s.Running)
		}
		probed := s.Name != "goblog_swarmwatcher"
		if (s.ProbePort > 0) != probed {
			t.Errorf("%s probe port %d", s.Name, s.ProbePort)
		}
	}
}

func TestTasksOnADownNodeAreGone(t *testing.T) {
	running := func(id, node string) swarm.Task {
		return swarm.Task{ID: id, ServiceID: "s1", NodeID: node, DesiredState: swarm.TaskStateRunning,
			Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}
	}
	lost := running("lost", "n2")
	lost.DesiredState = swarm.TaskStateShutdown // swarm replaced it, but cannot hear from its node
	services := []swarm.Service{{ID: "s1", Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "goblog_accountservice"}}}}
	nodes := []swarm.Node{
		{ID: "n1", Description: swarm.NodeDescription{Hostname: "node1"}, Status: swarm.NodeStatus{State: swarm.NodeStateReady}},
		{ID: "n2", Description: swarm.NodeDescription{Hostname: "node2"}, Status: swarm.NodeStatus{State: swarm.NodeStateDown}},
	}
	snap := build(services, []swarm.Task{running("a", "n1"), lost, running("b", "n1")}, nodes, nil)
	if len(snap.Services) != 1 {
		t.Fatalf("services: %+v", snap.Services)
	}
	var ids []string
	for _, task := range snap.Services[0].Tasks {
		ids = append(ids, task.ID)
	}
	if len(ids) != 2 || ids[0] == "lost" || ids[1] == "lost" {
		t.Fatalf("tasks %v: the task on the down node must be gone", ids)
	}
	if snap.Services[0].Running != 2 {
		t.Fatalf("running %d, want 2", snap.Services[0].Running)
	}
}

// silentAddr is a peer that accepts and never answers.
func silentAddr(t testing.TB) string {
	addr, _ := nettest.SilentListener(t)
	return addr
}

// The first refresh makes its calls one after the other (the Docker client
// negotiates the API version on them, unlocked against concurrent calls);
// once one succeeded, the four go at once and the count stays four.
func TestRefreshCallsGoAtOnceAfterTheFirst(t *testing.T) {
	e := newFakeEngine(t)
	d := newDiscovery(t, e, Config{})
	if _, err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.mostInFlight(); n != 1 {
		t.Errorf("first refresh: %d calls at once, want 1", n)
	}
	before := e.totalCalls()
	e.setGate(CallsPerRefresh)
	if _, err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.mostInFlight(); n != CallsPerRefresh {
		t.Errorf("later refresh: %d calls at once, want all %d", n, CallsPerRefresh)
	}
	if n := e.totalCalls() - before; n != CallsPerRefresh {
		t.Errorf("later refresh made %d calls, want %d", n, CallsPerRefresh)
	}
}
