package probe

import (
	"errors"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// Health is a task's state as the probes see it: one of the api's health
// values (a Tracker reports the four probe verdicts; the watcher adds
// draining and unknown).
type Health = api.Health

// The health states a Tracker reports.
const (
	Starting = api.HealthStarting // no verdict yet
	Passing  = api.HealthPassing
	Warning  = api.HealthWarning
	Critical = api.HealthCritical
)

// Thresholds say how many results in a row flip the state, as Consul's
// success_before_passing and failures_before_critical.
type Thresholds struct {
	Rise int // passes in a row before passing
	Fall int // non-passes in a row before warning/critical
	// History is how many results a Tracker keeps.
	History int
}

// Validate reports thresholds that cannot work.
func (t Thresholds) Validate() error {
	if t.Rise < 1 || t.Fall < 1 {
		return errors.New("rise and fall must be at least 1")
	}
	if t.History < 1 {
		return errors.New("history must hold at least 1 result")
	}
	return nil
}

// Tracker follows one task's results. It is not safe for concurrent use:
// its owner serialises access.
type Tracker struct {
	th        Thresholds
	health    Health
	passes    int      // passes in a row
	failures  int      // non-passes in a row
	history   []Record // a ring of the latest results
	next      int      // ring position
	hasResult bool
	last      Result
}

// NewTracker returns a Tracker in state starting.
func NewTracker(th Thresholds) *Tracker {
	return &Tracker{th: th, health: Starting, history: make([]Record, 0, th.History)}
}

// Record adds a result and returns the new health.
func (t *Tracker) Record(r Result) Health {
	t.last, t.hasResult = r, true
	rec := Compact(r)
	if len(t.history) < t.th.History {
		t.history = append(t.history, rec)
	} else {
		t.history[t.next] = rec
		t.next = (t.next + 1) % t.th.History
	}
	if r.Outcome == Pass {
		t.passes++
		t.failures = 0
		if t.passes >= t.th.Rise {
			t.health = Passing
		}
		return t.health
	}
	t.failures++
	t.passes = 0
	if t.failures >= t.th.Fall {
		if r.Outcome == Warn {
			t.health = Warning
		} else {
			t.health = Critical
		}
	}
	return t.health
}

// Health returns the current state.
func (t *Tracker) Health() Health { return t.health }

// ConsecutiveFailures counts the non-passing results in a row.
func (t *Tracker) ConsecutiveFailures() int { return t.failures }

// Last returns the latest result, if any.
func (t *Tracker) Last() (Result, bool) { return t.last, t.hasResult }

// History returns a copy of the kept results, oldest first.
func (t *Tracker) History() []Record {
	out := make([]Record, 0, len(t.history))
	if len(t.history) < t.th.History {
		return append(out, t.history...)
	}
	out = append(out, t.history[t.next:]...)
	return append(out, t.history[:t.next]...)
}

// LastChecked returns when the last result was taken (zero if never).
func (t *Tracker) LastChecked() time.Time { return t.last.At }
