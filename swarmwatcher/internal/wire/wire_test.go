package wire

import (
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/probe"
	"github.com/goblog/goblog/swarmwatcher/internal/watch"
)

// The history, kept as compact records, reads on the wire as the results
// themselves would: the same api.Check for each.
func TestTaskHistoryOnTheWire(t *testing.T) {
	at := time.Date(2026, 11, 30, 13, 0, 0, 987654321, time.FixedZone("CET", 3600))
	results := []probe.Result{
		{At: at, Outcome: probe.Pass, Code: 200, Latency: 1234567 * time.Nanosecond, BodyBytes: 15},
		{At: at.Add(time.Second), Outcome: probe.Warn, Code: 429, Latency: 3 * time.Millisecond, Err: "HTTP 429"},
		{At: at.Add(2 * time.Second), Outcome: probe.Fail, Latency: 2 * time.Second, Err: "timeout after 2s"},
	}
	task := watch.Task{Last: results[2]}
	for _, r := range results {
		task.History = append(task.History, probe.Compact(r))
	}
	got := Task(&task).History
	if len(got) != len(results) {
		t.Fatalf("%d checks, want %d", len(got), len(results))
	}
	for i, r := range results {
		want := api.Check{At: api.FormatTime(r.At), Outcome: string(r.Outcome), Code: r.Code, LatencyMs: api.Milliseconds(r.Latency), Error: r.Err}
		if got[i] != want {
			t.Errorf("check %d = %+v, want %+v", i, got[i], want)
		}
	}
}
