package converge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// fakeEngine answers from the current state; step moves to the next one (the last one stays).
type fakeEngine struct {
	mu     sync.Mutex
	states []state
	calls  int
}

type state struct {
	services []swarm.Service
	tasks    []swarm.Task
	err      error
}

func (f *fakeEngine) now() state {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.calls, len(f.states)-1)
	return f.states[i]
}

func (f *fakeEngine) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	s := f.now()
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	return s.services, s.err
}

func (f *fakeEngine) TaskList(_ context.Context, o swarm.TaskListOptions) ([]swarm.Task, error) {
	s := f.now()
	var out []swarm.Task
	for _, t := range s.tasks {
		if o.Filters.ExactMatch("service", t.ServiceID) || o.Filters.ExactMatch("service", "goblog_"+t.ServiceID) {
			out = append(out, t)
		}
	}
	return out, nil
}

var _ Engine = (*fakeEngine)(nil)

func svc(id, image string, replicas uint64, update swarm.UpdateState) swarm.Service {
	s := swarm.Service{ID: id}
	s.Spec.Name = "goblog_" + id
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Image: image}
	s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &replicas}
	if update != "" {
		s.UpdateStatus = &swarm.UpdateStatus{State: update}
	}
	return s
}

func task(service, image string, st swarm.TaskState) swarm.Task {
	t := swarm.Task{ServiceID: service, DesiredState: swarm.TaskStateRunning}
	t.Spec.ContainerSpec = &swarm.ContainerSpec{Image: image}
	t.Status.State = st
	return t
}

func TestCheck(t *testing.T) {
	const img = "goblog/edge:abc"
	for _, tc := range []struct {
		name  string
		svc   swarm.Service
		tasks []swarm.Task
		want  string
		done  bool
	}{
		{"converged", svc("edge", img+"@sha256:1", 1, ""), []swarm.Task{task("edge", img+"@sha256:1", swarm.TaskStateRunning)}, "edge=1/1", true},
		{"starting (not yet healthy)", svc("edge", img, 1, ""), []swarm.Task{task("edge", img, swarm.TaskStateStarting)}, "edge=0/1", false},
		{"one of two", svc("edge", img, 2, ""), []swarm.Task{task("edge", img, swarm.TaskStateRunning)}, "edge=1/2", false},
		{"older image", svc("edge", img, 1, ""), []swarm.Task{task("edge", "goblog/edge:old", swarm.TaskStateRunning)}, "edge=1/1(1 on an older image)", false},
		{"updating", svc("edge", img, 1, swarm.UpdateStateUpdating), []swarm.Task{task("edge", img, swarm.TaskStateRunning)}, "edge=1/1(updating)", false},
		{"rollback started", svc("edge", img, 1, swarm.UpdateStateRollbackStarted), []swarm.Task{task("edge", img, swarm.TaskStateRunning)}, "edge=1/1(rollback_started)", false},
		{"update completed", svc("edge", img, 1, swarm.UpdateStateCompleted), []swarm.Task{task("edge", img, swarm.TaskStateRunning)}, "edge=1/1(completed)", true},
		{"scaled to 0", svc("edge", img, 0, ""), nil, "edge=0/0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Check(context.Background(), &fakeEngine{states: []state{{services: []swarm.Service{tc.svc}, tasks: tc.tasks}}}, "goblog")
			if err != nil {
				t.Fatal(err)
			}
			if got := Line(st); got != tc.want || st[0].Done != tc.done || Converged(st) != tc.done {
				t.Fatalf("got %q done=%v, want %q done=%v", got, st[0].Done, tc.want, tc.done)
			}
		})
	}
	if Converged(nil) {
		t.Fatal("an empty stack counts as converged")
	}
}

func TestWaitReportsChangesUntilConverged(t *testing.T) {
	img := "goblog/edge:abc"
	waiting := state{services: []swarm.Service{svc("edge", img, 1, "")}, tasks: []swarm.Task{task("edge", img, swarm.TaskStateStarting)}}
	eng := &fakeEngine{states: []state{
		{},                                 // no service yet
		{err: errors.New("engine hiccup")}, // an error is reported, not fatal
		waiting, waiting, waiting,          // said once
		{services: waiting.services, tasks: []swarm.Task{task("edge", img, swarm.TaskStateRunning)}},
	}}
	var lines []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := Wait(ctx, eng, "goblog", time.Millisecond, time.Second, func(s string) { lines = append(lines, s) })
	if err != nil || !Converged(st) {
		t.Fatalf("Wait: %v %v", st, err)
	}
	want := []string{"waiting: no service of stack goblog yet", "engine: list services: engine hiccup", "waiting: edge=0/1", "converged: edge=1/1"}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reported\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestWaitGivesUpWithThePendingServices(t *testing.T) {
	eng := &fakeEngine{states: []state{{
		services: []swarm.Service{svc("edge", "e:1", 1, ""), svc("turbine", "t:1", 1, "")},
		tasks:    []swarm.Task{task("edge", "e:1", swarm.TaskStateRunning), task("turbine", "t:1", swarm.TaskStateFailed)},
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			eng.mu.Lock()
			n := eng.calls
			eng.mu.Unlock()
			if n >= 3 {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	st, err := Wait(ctx, eng, "goblog", time.Millisecond, time.Second, func(string) {})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v, want the context's error", err)
	}
	if p := Pending(st); len(p) != 1 || p[0] != "turbine" {
		t.Fatalf("pending %v, want [turbine]", p)
	}
	lines, err := RecentTasks(context.Background(), eng, "goblog_turbine", 5)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "failed") {
		t.Fatalf("RecentTasks: %v %v", lines, err)
	}
}
