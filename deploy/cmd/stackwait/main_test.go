package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// stuckEngine has one service whose only task keeps failing.
type stuckEngine struct{}

func (stuckEngine) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	one := uint64(1)
	s := swarm.Service{ID: "t1"}
	s.Spec.Name = "goblog_turbine"
	s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Image: "goblog/turbine:1"}
	s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &one}
	return []swarm.Service{s}, nil
}

func (stuckEngine) TaskList(context.Context, swarm.TaskListOptions) ([]swarm.Task, error) {
	t := swarm.Task{ServiceID: "t1", Slot: 1, DesiredState: swarm.TaskStateRunning}
	t.Spec.ContainerSpec = &swarm.ContainerSpec{Image: "goblog/turbine:1"}
	t.Status.State, t.Status.Err = swarm.TaskStateFailed, "task: non-zero exit (1)"
	return []swarm.Task{t}, nil
}

func TestWaitGivesUpNamingTheServiceAndItsError(t *testing.T) {
	var out bytes.Buffer
	cfg := Config{Stack: "goblog", Timeout: 20 * time.Millisecond, Interval: time.Millisecond, CallTimeout: time.Second}
	if code := wait(context.Background(), stuckEngine{}, cfg, &out); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"waiting: turbine=0/1", "service goblog_turbine did not converge", "non-zero exit (1)", "FAILED: stack goblog did not converge"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFlags(t *testing.T) {
	var errb bytes.Buffer
	if code := run([]string{"-h"}, &errb); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	t.Setenv("TIMEOUT", "soon")
	errb.Reset()
	if code := run(nil, &errb); code != 2 || !strings.Contains(errb.String(), "TIMEOUT") {
		t.Fatalf("TIMEOUT=soon: exit %d, %q", code, errb.String())
	}
}
