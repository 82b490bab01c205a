// Package watch is the swarmwatcher's core: it keeps the last good swarm
// snapshot and the probe state of every task, builds the view from them and
// turns each new view into changes, which it publishes on a fan-out hub for
// subscribers (the server's event stream, webhooks).
//
// The core works on domain values (time.Time, time.Duration, api.Health);
// the server maps them onto the wire shapes of package api.
package watch

import (
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// Service is one service of the view: the swarm's facts and its tasks with
// their health. The embedded swarm.Service's own Tasks is always nil.
type Service struct {
	swarm.Service
	Tasks []Task
	// Version changes whenever the watcher rebuilds the service (a fact
	// or a probe result of it changed); a service value with the same ID
	// and Version is the same, so encoders may cache by them.
	Version uint64
}

// Task is one running task of the view.
type Task struct {
	swarm.Task
	// Port is the probed port (the service's ProbePort).
	Port   int
	Health api.Health
	// Last is the latest probe result; Last.At is zero before the first.
	Last                probe.Result
	ConsecutiveFailures int
	History             []probe.Record
}

// Change is one change of the view. Task is nil for service changes.
type Change struct {
	Type    api.EventType
	Service string
	Task    *Task
	At      time.Time
}

// Status says whether the view is current.
type Status struct {
	Stale bool
	Err   string
	Since time.Time // when this status began
}

// Message is what a subscriber receives: exactly one of Change, Status and
// Services is set. Services, the whole view, follows every update.
type Message struct {
	Change   *Change
	Status   *Status
	Services []Service
	// Updated are the indices in Services of the services this update
	// rebuilt (the others are the same values as in the view before);
	// services gone are told by service-removed changes.
	Updated []int
	// Published is when the watcher handed the message to its hub (the
	// monotonic clock: the server measures the stage to each client's
	// flush from it).
	Published time.Time
}

// State is the view, its status and the sequence number of the last message
// published for them: a subscription started from a State skips messages up
// to Seq.
type State struct {
	Services []Service
	Status   Status
	Seq      uint64
}
