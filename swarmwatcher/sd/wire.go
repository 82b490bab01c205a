package sd

// Health values of a task, as the swarmwatcher reports them.
const (
	HealthStarting = "starting"
	HealthPassing  = "passing"
	HealthWarning  = "warning"
	HealthCritical = "critical"
	HealthDraining = "draining"
	HealthUnknown  = "unknown" // the watcher's Docker data is stale
)

// Event types of the swarmwatcher's /api/events stream (and of its webhooks).
const (
	EventTaskAdded      = "task-added"
	EventTaskRemoved    = "task-removed"
	EventHealthChanged  = "health-changed"
	EventServiceCreated = "service-created"
	EventServiceRemoved = "service-removed"
)

// Service is one element of GET /api/services.
type Service struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Replicas Replicas `json:"replicas"`
	Tasks    []Task   `json:"tasks"`
}

// Replicas is the desired and running count of a service.
type Replicas struct {
	Desired int `json:"desired"`
	Running int `json:"running"`
}

// Task is one task of a service as the watcher sees it. Address is the
// task's IP on the stack network (no port); Port is the probed port.
// Times are kept as the RFC 3339 strings the watcher sends, so that a field
// this package does not use can never make an event unreadable.
type Task struct {
	ID                  string  `json:"id"`
	Slot                int     `json:"slot"`
	Node                string  `json:"node"`
	State               string  `json:"state"`
	DesiredState        string  `json:"desiredState"`
	Address             string  `json:"address"`
	Port                int     `json:"port"`
	Health              string  `json:"health"`
	LastCheck           string  `json:"lastCheck"` // RFC 3339, empty before the first probe
	LatencyMs           float64 `json:"latencyMs"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
}

// Change is the data of one change event on /api/events, and the body of a
// webhook POST. Task is nil for service events.
type Change struct {
	Type    string `json:"type"`
	Service string `json:"service"`
	Task    *Task  `json:"task,omitempty"`
	At      string `json:"at"` // RFC 3339
}

// Status is the data of a "status" event: whether the watcher's Docker data
// is stale, and why.
type Status struct {
	Stale bool   `json:"stale"`
	Error string `json:"error,omitempty"`
	Since string `json:"since"` // RFC 3339
}
