// Package converge tells when a deployed swarm stack has converged: every service runs as many
// tasks as it wants, each on the image its spec names, with no update in progress. It is what
// ./copyall.sh waits on after `docker stack deploy` (through cmd/stackwait).
package converge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// Engine is the part of the Docker client converge reads.
type Engine interface {
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
}

// StackLabel is the label `docker stack deploy` puts on a stack's services.
const StackLabel = "com.docker.stack.namespace"

// Status is one service's state.
type Status struct {
	Service          string // without the stack prefix
	Running, Desired int
	Stale            int    // running tasks on another image than the spec's
	Update           string // the update state, when there is one
	Done             bool
}

func (s Status) String() string {
	out := fmt.Sprintf("%s=%d/%d", s.Service, s.Running, s.Desired)
	if s.Stale > 0 {
		out += fmt.Sprintf("(%d on an older image)", s.Stale)
	}
	if s.Update != "" {
		out += "(" + s.Update + ")"
	}
	return out
}

// Line is the statuses on one line.
func Line(st []Status) string {
	parts := make([]string, len(st))
	for i, s := range st {
		parts[i] = s.String()
	}
	return strings.Join(parts, " ")
}

// Check reads the stack's services once. A service has converged when as many tasks run as
// desired (with a HEALTHCHECK, swarm counts a task as running only once it is healthy), every
// one of them runs the image the spec names (so a rolling update swarm has not started yet is
// not taken for done), and no update or rollback is in progress.
func Check(ctx context.Context, eng Engine, stack string) ([]Status, error) {
	svcs, err := eng.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", StackLabel+"="+stack))})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]Status, 0, len(svcs))
	for _, svc := range svcs {
		tasks, err := eng.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
		if err != nil {
			return nil, fmt.Errorf("list tasks of %s: %w", svc.Spec.Name, err)
		}
		out = append(out, status(stack, svc, tasks))
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Service, b.Service) })
	return out, nil
}

func status(stack string, svc swarm.Service, tasks []swarm.Task) Status {
	s := Status{Service: strings.TrimPrefix(svc.Spec.Name, stack+"_"), Desired: -1}
	var image string
	if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil {
		image, _, _ = strings.Cut(cs.Image, "@")
	}
	if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		s.Desired = int(*r.Replicas)
	}
	for _, t := range tasks {
		if t.ServiceID != svc.ID || t.DesiredState != swarm.TaskStateRunning || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		s.Running++
		if t.Spec.ContainerSpec != nil {
			if img, _, _ := strings.Cut(t.Spec.ContainerSpec.Image, "@"); img != image {
				s.Stale++
			}
		}
	}
	if s.Desired < 0 { // global: one per eligible node; what runs is what is wanted
		s.Desired = s.Running
	}
	if svc.UpdateStatus != nil {
		s.Update = string(svc.UpdateStatus.State)
	}
	busy := s.Update == string(swarm.UpdateStateUpdating) || s.Update == string(swarm.UpdateStateRollbackStarted)
	s.Done = s.Running == s.Desired && s.Stale == 0 && !busy
	return s
}

// Converged reports whether every status is done (and there is at least one).
func Converged(st []Status) bool {
	if len(st) == 0 {
		return false
	}
	for _, s := range st {
		if !s.Done {
			return false
		}
	}
	return true
}

// Wait checks every interval until the stack converges or ctx ends. report receives a line
// whenever what it would say changes ("waiting: …", an engine error, "converged: …"). It returns
// the last statuses, and ctx's error when the stack did not converge.
func Wait(ctx context.Context, eng Engine, stack string, interval, callTimeout time.Duration, report func(string)) ([]Status, error) {
	var last []Status
	said := ""
	say := func(s string) {
		if s != said {
			report(s)
			said = s
		}
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		st, err := Check(cctx, eng, stack)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			say("engine: " + err.Error())
		case err == nil && Converged(st):
			say("converged: " + Line(st))
			return st, nil
		case err == nil:
			last = st
			if len(st) == 0 {
				say("waiting: no service of stack " + stack + " yet")
			} else {
				say("waiting: " + Line(st))
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
	}
}

// Pending is the services of st that are not done.
func Pending(st []Status) []string {
	var out []string
	for _, s := range st {
		if !s.Done {
			out = append(out, s.Service)
		}
	}
	return out
}

// RecentTasks describes the latest tasks of a service (newest first, at most n), with their
// errors: what to show when a service did not converge.
func RecentTasks(ctx context.Context, eng Engine, service string, n int) ([]string, error) {
	tasks, err := eng.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", service, err)
	}
	slices.SortFunc(tasks, func(a, b swarm.Task) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	var out []string
	for i, t := range tasks {
		if i == n {
			break
		}
		img := ""
		if t.Spec.ContainerSpec != nil {
			img, _, _ = strings.Cut(t.Spec.ContainerSpec.Image, "@")
		}
		line := fmt.Sprintf("%s.%d %s %s (desired %s)", service, t.Slot, img, t.Status.State, t.DesiredState)
		if t.Status.Err != "" {
			line += ": " + t.Status.Err
		} else if t.Status.Message != "" {
			line += ": " + t.Status.Message
		}
		out = append(out, line)
	}
	return out, nil
}
