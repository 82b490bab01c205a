// Package watch is the swarmwatcher's core: it keeps the last good swarm
// snapshot, the probe state of every task, and turns each new view into
// changes that subscribers (the event stream, webhooks) receive.
//
// The view served by /api/services, the changes and the status are the wire
// shapes of the contract; a client that applies the changes to a snapshot
// holds the same list /api/services returns.
package watch

import (
	"time"
)

// Health values beyond the probe's own: draining (swarm wants the task gone
// but it still runs) and unknown (not probed, no address, or stale data).
const (
	HealthDraining = "draining"
	HealthUnknown  = "unknown"
)

// Change types, as POSTed to webhooks and sent as SSE event names.
const (
	TaskAdded      = "task-added"
	TaskRemoved    = "task-removed"
	HealthChanged  = "health-changed"
	ServiceCreated = "service-created"
	ServiceRemoved = "service-removed"
)

// TimeFormat is RFC 3339 with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Service is one entry of /api/services.
type Service struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Replicas Replicas `json:"replicas"`
	Tasks    []Task   `json:"tasks"`

	Mode         string `json:"mode,omitempty"`
	EndpointMode string `json:"endpointMode,omitempty"`
	// ProbePort is 0 when the service did not opt in to probing.
	ProbePort  int    `json:"probePort,omitempty"`
	ProbePath  string `json:"probePath,omitempty"`
	ProbeError string `json:"probeError,omitempty"`

	Labels map[string]string `json:"-"`
}

// Replicas are desired vs running tasks.
type Replicas struct {
	Desired int `json:"desired"`
	Running int `json:"running"`
}

// Task is one running task.
type Task struct {
	ID                  string  `json:"id"`
	Slot                int     `json:"slot"`
	Node                string  `json:"node"`
	State               string  `json:"state"`
	DesiredState        string  `json:"desiredState"`
	Address             string  `json:"address"`
	Port                int     `json:"port"`
	Health              string  `json:"health"`
	LastCheck           string  `json:"lastCheck"` // RFC 3339, "" before the first probe
	LatencyMs           float64 `json:"latencyMs"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`

	Network      string  `json:"network,omitempty"`
	AddressError string  `json:"addressError,omitempty"`
	LastError    string  `json:"lastError,omitempty"`
	History      []Check `json:"history,omitempty"`
}

// Check is one probe result in a task's history.
type Check struct {
	At        string  `json:"at"`
	Outcome   string  `json:"outcome"` // pass, warn, fail
	Code      int     `json:"code,omitempty"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

// Change is one change, exactly the JSON webhooks receive.
type Change struct {
	Type    string `json:"type"`
	Service string `json:"service"`
	Task    *Task  `json:"task,omitempty"`
	At      string `json:"at"`
}

// Status says whether the view is current.
type Status struct {
	Stale bool   `json:"stale"`
	Error string `json:"error"`
	Since string `json:"since"` // when this status began, RFC 3339
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
