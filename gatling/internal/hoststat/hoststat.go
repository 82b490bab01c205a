// Package hoststat reads the host's CPU counters from /proc/stat, so that a
// load run's latencies come with how busy the machine was while they were
// taken. On a small shared machine the same build's p99 moves by a factor of
// ten from one hour to the next; a figure without the host's busy share, its
// steal and its context switches cannot be told apart from a regression.
package hoststat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Path is where Linux keeps the counters.
const Path = "/proc/stat"

// maxLine bounds one line of the file: the intr line lists every interrupt
// and runs to a few KiB on a large machine.
const maxLine = 1 << 20

// Sample is one reading of the aggregate "cpu" line (in USER_HZ ticks, summed
// over the CPUs) and the "ctxt" counter.
type Sample struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
	// Ctxt counts the context switches since boot, over all CPUs.
	Ctxt uint64
	// CPUs is the number of per-CPU lines ("cpu0", "cpu1", ...).
	CPUs int
}

func (s Sample) total() uint64 {
	return s.User + s.Nice + s.System + s.Idle + s.IOWait + s.IRQ + s.SoftIRQ + s.Steal
}

// Read reads Path.
func Read() (Sample, error) {
	f, err := os.Open(Path)
	if err != nil {
		return Sample{}, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a /proc/stat. The aggregate cpu line needs its first eight
// counters (every kernel since 2.6.11 prints them); the ctxt line is required.
func Parse(r io.Reader) (Sample, error) {
	var s Sample
	var sawCPU, sawCtxt bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch name := fields[0]; {
		case name == "cpu":
			if len(fields) < 9 {
				return Sample{}, fmt.Errorf("parse %s: cpu line has %d counters, want at least 8", Path, len(fields)-1)
			}
			dst := []*uint64{&s.User, &s.Nice, &s.System, &s.Idle, &s.IOWait, &s.IRQ, &s.SoftIRQ, &s.Steal}
			for i, d := range dst {
				v, err := strconv.ParseUint(fields[i+1], 10, 64)
				if err != nil {
					return Sample{}, fmt.Errorf("parse %s: cpu counter %d: %w", Path, i+1, err)
				}
				*d = v
			}
			sawCPU = true
		case strings.HasPrefix(name, "cpu"):
			if _, err := strconv.Atoi(name[len("cpu"):]); err == nil {
				s.CPUs++
			}
		case name == "ctxt":
			if len(fields) != 2 {
				return Sample{}, fmt.Errorf("parse %s: ctxt line has %d fields, want 2", Path, len(fields))
			}
			v, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return Sample{}, fmt.Errorf("parse %s: ctxt: %w", Path, err)
			}
			s.Ctxt, sawCtxt = v, true
		}
	}
	if err := sc.Err(); err != nil {
		return Sample{}, fmt.Errorf("read %s: %w", Path, err)
	}
	if !sawCPU || !sawCtxt {
		return Sample{}, fmt.Errorf("parse %s: no aggregate cpu line or no ctxt line", Path)
	}
	return s, nil
}

// Usage is what the host did between two samples. It is the "host" object of
// the load tool's stats.json.
type Usage struct {
	CPUs int `json:"cpus"`
	// BusyPercent is the share of all CPUs' time spent neither idle, nor
	// waiting for I/O, nor stolen by the hypervisor.
	BusyPercent float64 `json:"busyPercent"`
	// StealPercent is the share the hypervisor gave to others (0 where the
	// hypervisor does not report it).
	StealPercent float64 `json:"stealPercent"`
	// ContextSwitchesPerS is over all CPUs, per second of wall time.
	ContextSwitchesPerS float64 `json:"contextSwitchesPerS"`
}

// ErrBackwards means a counter went down between the samples: they do not
// come from one boot of one host.
var ErrBackwards = errors.New("counters went backwards")

// Between is the host's use from a to b, wall apart.
func Between(a, b Sample, wall time.Duration) (Usage, error) {
	if wall <= 0 {
		return Usage{}, fmt.Errorf("host usage: wall time %v is not positive", wall)
	}
	ta, tb := a.total(), b.total()
	if tb < ta || b.Steal < a.Steal || b.Ctxt < a.Ctxt {
		return Usage{}, fmt.Errorf("host usage: %w", ErrBackwards)
	}
	total := float64(tb - ta)
	if total == 0 {
		return Usage{}, fmt.Errorf("host usage: no CPU time passed between the samples")
	}
	// iowait can step back on a tickless kernel (proc(5)), so idle time is a
	// signed difference and the busy share is kept within [0, 100].
	idle := float64(int64(b.Idle+b.IOWait) - int64(a.Idle+a.IOWait))
	steal := float64(b.Steal - a.Steal)
	busy := min(max(total-idle-steal, 0), total)
	return Usage{
		CPUs:                b.CPUs,
		BusyPercent:         100 * busy / total,
		StealPercent:        100 * steal / total,
		ContextSwitchesPerS: float64(b.Ctxt-a.Ctxt) / wall.Seconds(),
	}, nil
}
