// Package wire maps the watcher's domain values onto the wire shapes of
// package api: the one place where times are formatted and durations become
// milliseconds. The server and the webhook forwarder use it.
package wire

import (
	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

// Filter narrows the services mapped: each field, when not empty, keeps
// only the services whose Name, Logical or Tenant equals it.
type Filter struct {
	Name, Logical, Tenant string
}

// Keeps reports whether f keeps s.
func (f Filter) Keeps(s *watch.Service) bool {
	return (f.Name == "" || s.Name == f.Name) &&
		(f.Logical == "" || s.Logical == f.Logical) &&
		(f.Tenant == "" || s.Tenant == f.Tenant)
}

// Services maps the services of the view that f keeps.
func Services(view []watch.Service, f Filter) []api.Service {
	out := make([]api.Service, 0, len(view))
	for i := range view {
		if !f.Keeps(&view[i]) {
			continue
		}
		out = append(out, Service(&view[i]))
	}
	return out
}

// Service maps one service and its tasks.
func Service(s *watch.Service) api.Service {
	out := api.Service{
		ID: s.ID, Name: s.Name,
		Replicas:     api.Replicas{Desired: s.Desired, Running: s.Running},
		Tasks:        make([]api.Task, len(s.Tasks)),
		Mode:         s.Mode,
		EndpointMode: s.EndpointMode,
		ProbePort:    s.ProbePort,
		ProbePath:    s.ProbePath,
		ProbeError:   s.ProbeError,
		Logical:      s.Logical,
		Tenant:       s.Tenant,
		TenantError:  s.TenantError,
	}
	for i := range s.Tasks {
		out.Tasks[i] = Task(&s.Tasks[i])
	}
	return out
}

// Task maps one task.
func Task(t *watch.Task) api.Task {
	out := api.Task{
		ID: t.ID, Slot: t.Slot, Node: t.Node, State: t.State, DesiredState: t.DesiredState,
		Address: t.Address, Port: t.Port, Health: t.Health,
		ConsecutiveFailures: t.ConsecutiveFailures,
		NodeID:              t.NodeID, NodeStatus: t.NodeStatus, NodeAvailability: t.NodeAvailability, NodeAddress: t.NodeAddress, NodeRole: t.NodeRole,
		Network: t.Network, AddressError: t.AddressError,
		Tenant: t.Tenant,
	}
	if !t.Last.At.IsZero() {
		out.LastCheck = api.FormatTime(t.Last.At)
		out.LatencyMs = api.Milliseconds(t.Last.Latency)
		out.LastError = t.Last.Err
	}
	if len(t.History) > 0 {
		out.History = make([]api.Check, len(t.History))
		for i, r := range t.History {
			out.History[i] = check(r.Result())
		}
	}
	return out
}

func check(r probe.Result) api.Check {
	return api.Check{At: api.FormatTime(r.At), Outcome: string(r.Outcome), Code: r.Code, LatencyMs: api.Milliseconds(r.Latency), Error: r.Err}
}

// Change maps one change.
func Change(c *watch.Change) api.Change {
	out := api.Change{Type: c.Type, Service: c.Service, At: api.FormatTime(c.At)}
	if c.Task != nil {
		t := Task(c.Task)
		out.Task = &t
	}
	return out
}

// Status maps the view's status.
func Status(s watch.Status) api.Status {
	return api.Status{Stale: s.Stale, Error: s.Err, Since: api.FormatTime(s.Since)}
}
