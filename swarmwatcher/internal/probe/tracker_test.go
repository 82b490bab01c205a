package probe

import (
	"strings"
	"testing"
	"time"
)

func TestTrackerThresholds(t *testing.T) {
	// Each letter is one result: p pass, w warn (429), f fail.
	tests := []struct {
		name      string
		rise      int
		fall      int
		results   string
		want      string // health after each result: S starting, P passing, W warning, C critical
		wantFails int
	}{
		{"first pass passes at rise 1", 1, 2, "p", "P", 0},
		{"one failure is not enough at fall 2", 1, 2, "pf", "PP", 1},
		{"two failures flip to critical", 1, 2, "pff", "PPC", 2},
		{"a pass resets the failure count", 1, 2, "pfpf", "PPPP", 1},
		{"429s flip to warning", 1, 2, "pww", "PPW", 2},
		{"the latest kind decides warning vs critical", 1, 2, "pwfw", "PPCW", 3},
		{"starting stays until a verdict", 2, 3, "pf", "SS", 1},
		{"rise 2 needs two passes", 2, 2, "ffpp", "SCCP", 0},
		{"flapping never settles with rise 2 fall 2", 2, 2, "pppfpfpf", "SPPPPPPP", 1},
		{"flapping at rise 1 fall 1 follows every result", 1, 1, "pfpf", "PCPC", 1},
	}
	letters := map[byte]Outcome{'p': Pass, 'w': Warn, 'f': Fail}
	states := map[Health]byte{Starting: 'S', Passing: 'P', Warning: 'W', Critical: 'C'}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(Thresholds{Rise: tt.rise, Fall: tt.fall, History: 3})
			if tr.Health() != Starting {
				t.Fatalf("new tracker is %s", tr.Health())
			}
			var got strings.Builder
			for i := range len(tt.results) {
				got.WriteByte(states[tr.Record(Result{Outcome: letters[tt.results[i]]})])
			}
			if got.String() != tt.want {
				t.Errorf("states %s, want %s", got.String(), tt.want)
			}
			if tr.ConsecutiveFailures() != tt.wantFails {
				t.Errorf("consecutive failures %d, want %d", tr.ConsecutiveFailures(), tt.wantFails)
			}
		})
	}
}

func TestTrackerHistoryKeepsTheLatestInOrder(t *testing.T) {
	tr := NewTracker(Thresholds{Rise: 1, Fall: 1, History: 3})
	if _, ok := tr.Last(); ok || len(tr.History()) != 0 {
		t.Fatal("new tracker has results")
	}
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		tr.Record(Result{At: t0.Add(time.Duration(i) * time.Second), Outcome: Pass, Code: 200 + i})
	}
	h := tr.History()
	if len(h) != 3 || h[0].Result().Code != 202 || h[1].Result().Code != 203 || h[2].Result().Code != 204 {
		t.Fatalf("history = %+v, want the last three oldest first", h)
	}
	h[0] = Compact(Result{Code: 999})
	if tr.History()[0].Result().Code == 999 {
		t.Error("History hands out its own storage")
	}
	if last, ok := tr.Last(); !ok || last.Code != 204 || !tr.LastChecked().Equal(t0.Add(4*time.Second)) {
		t.Errorf("last = %+v", last)
	}
}

func TestThresholdsValidate(t *testing.T) {
	for _, th := range []Thresholds{{Rise: 0, Fall: 1, History: 1}, {Rise: 1, Fall: 0, History: 1}, {Rise: 1, Fall: 1}} {
		if th.Validate() == nil {
			t.Errorf("%+v accepted", th)
		}
	}
	if err := (Thresholds{Rise: 1, Fall: 2, History: 20}).Validate(); err != nil {
		t.Error(err)
	}
}
