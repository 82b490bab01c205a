// Package api is the swarmwatcher's wire contract, declared once: the JSON
// of GET /api/services, /api/sd and /api/events, the body of its webhooks,
// the health names and the event names. The server maps its domain types onto
// these; the Go client (swarmwatcher/sd), the end-to-end tests and any other
// Go program import them instead of mirroring them.
//
// Times are RFC 3339 strings with milliseconds (see FormatTime), "" when
// there is none yet, so that a reader never fails on a time it does not use.
package api

import "time"

// Health is a task's health as the watcher reports it.
type Health string

// The health values, as in Consul: a probe verdict (starting, passing,
// warning, critical) or, for tasks the watcher cannot or does not probe,
// draining (swarm wants the task gone but it still runs) and unknown (not
// probed, no address, or the watcher's Docker data is stale).
const (
	HealthStarting Health = "starting"
	HealthPassing  Health = "passing"
	HealthWarning  Health = "warning"
	HealthCritical Health = "critical"
	HealthDraining Health = "draining"
	HealthUnknown  Health = "unknown"
)

// EventType names a change: the SSE event name on /api/events and the
// "type" of a webhook body.
type EventType string

// The change types.
const (
	TaskAdded      EventType = "task-added"
	TaskRemoved    EventType = "task-removed"
	HealthChanged  EventType = "health-changed"
	ServiceCreated EventType = "service-created"
	ServiceRemoved EventType = "service-removed"
)

// EventTypes lists every change type, in the order above.
var EventTypes = []EventType{TaskAdded, TaskRemoved, HealthChanged, ServiceCreated, ServiceRemoved}

// Other SSE event names on /api/events: the first two open every stream.
const (
	EventSnapshot = "snapshot" // data: []Service, the view the changes apply to
	EventStatus   = "status"   // data: Status, on connect and whenever staleness flips
	EventServices = "services" // data: []Service after every update, only with ?views=1
)

// Service is one element of GET /api/services.
type Service struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Replicas Replicas `json:"replicas"`
	Tasks    []Task   `json:"tasks"`

	Mode         string `json:"mode,omitempty"`         // replicated, global, ...
	EndpointMode string `json:"endpointMode,omitempty"` // vip or dnsrr
	// ProbePort is 0 when the service did not opt in to probing.
	ProbePort  int    `json:"probePort,omitempty"`
	ProbePath  string `json:"probePath,omitempty"`
	ProbeError string `json:"probeError,omitempty"`
	// Logical is the service this one is a version of (the goblog.service
	// label, else the name without the stack prefix); Tenant its
	// goblog.tenant label, "" for a plain service. TenantError says why a
	// label was refused.
	Logical     string `json:"logical,omitempty"`
	Tenant      string `json:"tenant,omitempty"`
	TenantError string `json:"tenantError,omitempty"`
}

// Replicas are the desired and running task counts of a service.
type Replicas struct {
	Desired int `json:"desired"`
	Running int `json:"running"`
}

// Task is one running task. Address is its IP on the watched network (no
// port); Port is the probed port.
type Task struct {
	ID                  string  `json:"id"`
	Slot                int     `json:"slot"`
	Node                string  `json:"node"` // the node's hostname
	State               string  `json:"state"`
	DesiredState        string  `json:"desiredState"`
	Address             string  `json:"address"`
	Port                int     `json:"port"`
	Health              Health  `json:"health"`
	LastCheck           string  `json:"lastCheck"` // "" before the first probe
	LatencyMs           float64 `json:"latencyMs"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`

	NodeID           string  `json:"nodeId,omitempty"`
	NodeStatus       string  `json:"nodeStatus,omitempty"`       // ready, down, disconnected, unknown
	NodeAvailability string  `json:"nodeAvailability,omitempty"` // active, pause, drain
	NodeAddress      string  `json:"nodeAddress,omitempty"`
	NodeRole         string  `json:"nodeRole,omitempty"` // manager, worker
	Network          string  `json:"network,omitempty"`
	AddressError     string  `json:"addressError,omitempty"`
	LastError        string  `json:"lastError,omitempty"`
	History          []Check `json:"history,omitempty"`
	// Tenant is the tenant of the task's service, "" for a plain one.
	Tenant string `json:"tenant,omitempty"`
}

// Check is one probe result in a task's history.
type Check struct {
	At        string  `json:"at"`
	Outcome   string  `json:"outcome"` // pass, warn, fail
	Code      int     `json:"code,omitempty"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

// Change is the data of one change event on /api/events and the body of a
// webhook POST. Task is nil for service events.
type Change struct {
	Type    EventType `json:"type"`
	Service string    `json:"service"`
	Task    *Task     `json:"task,omitempty"`
	At      string    `json:"at"`
}

// Status is the data of a "status" event: whether the watcher's Docker data
// is stale, why, and since when.
type Status struct {
	Stale bool   `json:"stale"`
	Error string `json:"error,omitempty"`
	Since string `json:"since"`
}

// TargetGroup is one element of GET /api/sd, Prometheus' HTTP service
// discovery format.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// HealthStatus is the body of GET /health.
type HealthStatus struct {
	Status string `json:"status"` // UP or DOWN
	Error  string `json:"error,omitempty"`
	Since  string `json:"since,omitempty"`
}

// TimeFormat is RFC 3339 with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime formats t in TimeFormat (UTC), or "" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

// Milliseconds converts a duration to the fractional milliseconds of the
// "latencyMs" fields (microsecond precision).
func Milliseconds(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
