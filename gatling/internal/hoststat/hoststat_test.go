package hoststat

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// A /proc/stat as a 2-CPU guest prints it (counters after the eighth are
// guest and guest_nice, which user already includes).
const procStat = `cpu  61801 0 27457 199959 2416 0 5732 148 0 0
cpu0 30900 0 13700 100000 1200 0 2900 70 0 0
cpu1 30901 0 13757 99959 1216 0 2832 78 0 0
intr 1234567 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 98765432
btime 1764534000
processes 40000
procs_running 3
procs_blocked 0
softirq 555 1 2 3 4 5 6 7 8 9 10
`

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(procStat))
	if err != nil {
		t.Fatal(err)
	}
	want := Sample{User: 61801, System: 27457, Idle: 199959, IOWait: 2416, SoftIRQ: 5732, Steal: 148, Ctxt: 98765432, CPUs: 2}
	if s != want {
		t.Fatalf("Parse = %+v, want %+v", s, want)
	}
}

func TestParseLongIntrLine(t *testing.T) {
	// 100 KiB of interrupt counters: more than bufio.Scanner's default line.
	long := "intr" + strings.Repeat(" 0", 50<<10)
	s, err := Parse(strings.NewReader(strings.Replace(procStat, "intr 1234567 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0", long, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Ctxt != 98765432 {
		t.Fatalf("ctxt = %d after a long intr line", s.Ctxt)
	}
}

func TestParseRejects(t *testing.T) {
	for name, in := range map[string]string{
		"empty":              "",
		"no cpu line":        "cpu0 1 2 3 4 5 6 7 8\nctxt 5\n",
		"no ctxt line":       "cpu  1 2 3 4 5 6 7 8\n",
		"short cpu line":     "cpu  1 2 3 4\nctxt 5\n",
		"cpu not a number":   "cpu  1 2 x 4 5 6 7 8\nctxt 5\n",
		"negative counter":   "cpu  1 2 -3 4 5 6 7 8\nctxt 5\n",
		"ctxt not a number":  "cpu  1 2 3 4 5 6 7 8\nctxt five\n",
		"ctxt with 2 values": "cpu  1 2 3 4 5 6 7 8\nctxt 5 6\n",
		"line beyond bound":  "cpu  1 2 3 4 5 6 7 8\nintr" + strings.Repeat(" 0", maxLine/2+1) + "\nctxt 5\n",
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := Parse(strings.NewReader(in)); err == nil {
				t.Fatalf("Parse accepted it: %+v", s)
			}
		})
	}
}

func TestBetween(t *testing.T) {
	a := Sample{User: 1000, System: 500, Idle: 8000, IOWait: 100, SoftIRQ: 50, Steal: 10, Ctxt: 1_000_000, CPUs: 2}
	// 2 CPUs for 10 s at 100 ticks/s: 2000 ticks; 1200 busy, 700 idle, 100 stolen.
	b := a
	b.User += 700
	b.System += 400
	b.SoftIRQ += 100
	b.Idle += 650
	b.IOWait += 50
	b.Steal += 100
	b.Ctxt += 400_000
	u, err := Between(a, b, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{CPUs: 2, BusyPercent: 60, StealPercent: 5, ContextSwitchesPerS: 40_000}
	if !near(u.BusyPercent, want.BusyPercent) || !near(u.StealPercent, want.StealPercent) ||
		!near(u.ContextSwitchesPerS, want.ContextSwitchesPerS) || u.CPUs != want.CPUs {
		t.Fatalf("Between = %+v, want %+v", u, want)
	}
}

func TestBetweenIOWaitStepsBack(t *testing.T) {
	a := Sample{User: 100, Idle: 1000, IOWait: 50, Ctxt: 10}
	b := Sample{User: 200, Idle: 1110, IOWait: 40, Ctxt: 20} // iowait -10, idle +110: 200 ticks, 100 idle
	u, err := Between(a, b, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !near(u.BusyPercent, 50) {
		t.Fatalf("busy %.2f %%, want 50", u.BusyPercent)
	}
}

func TestBetweenRejects(t *testing.T) {
	a := Sample{User: 100, Idle: 1000, Steal: 5, Ctxt: 10}
	later := Sample{User: 200, Idle: 1100, Steal: 5, Ctxt: 20}
	for name, c := range map[string]struct {
		a, b Sample
		wall time.Duration
		back bool
	}{
		"zero wall":           {a, later, 0, false},
		"no time passed":      {a, a, time.Second, false},
		"total went back":     {later, a, time.Second, true},
		"ctxt went back":      {a, Sample{User: 200, Idle: 1100, Steal: 5, Ctxt: 9}, time.Second, true},
		"steal went back":     {a, Sample{User: 200, Idle: 1100, Steal: 4, Ctxt: 20}, time.Second, true},
		"negative wall clock": {a, later, -time.Second, false},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := Between(c.a, c.b, c.wall)
			if err == nil {
				t.Fatalf("Between accepted it: %+v", u)
			}
			if got := errors.Is(err, ErrBackwards); got != c.back {
				t.Fatalf("errors.Is(%v, ErrBackwards) = %v, want %v", err, got, c.back)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
