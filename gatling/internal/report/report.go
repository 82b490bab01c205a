// Package report writes a load test's results: the summary table on a
// terminal, and a report directory holding stats.json and index.html with
// its charts drawn as inline SVG (the page needs nothing from the network).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/goblog/goblog/gatling/internal/assertion"
	"github.com/goblog/goblog/gatling/internal/hoststat"
	"github.com/goblog/goblog/gatling/internal/stats"
)

// Run describes how the load was made.
type Run struct {
	BaseURL            string  `json:"baseUrl"`
	Path               string  `json:"path"`
	Users              int     `json:"users"`
	RampS              float64 `json:"rampS"`
	HoldS              float64 `json:"holdS"`
	PauseS             float64 `json:"pauseS"`
	TimeoutS           float64 `json:"timeoutS"`
	KeepAlive          bool    `json:"keepAlive"`
	MaxRequestsPerConn int     `json:"maxRequestsPerConn"`
	Feeder             string  `json:"feeder"`
	FeederIDs          int     `json:"feederIds"`
	UsersStarted       int64   `json:"usersStarted"`
	Interrupted        bool    `json:"interrupted"`
}

// Generator is what the load generator itself used.
type Generator struct {
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUPercent is CPU time over wall time, in percent of one core.
	CPUPercent float64 `json:"cpuPercent"`
	MaxRSSMiB  float64 `json:"maxRssMiB"`
	GOMAXPROCS int     `json:"gomaxprocs"`
}

// Stats is the content of stats.json: the contract's fields (from the
// embedded summary) plus the run's settings, the generator's cost and the
// outcome of the -assert expressions (an empty list when none was given).
type Stats struct {
	stats.Summary
	Run       Run       `json:"run"`
	Generator Generator `json:"generator"`
	// Host is how busy the machine was over the run; absent where the
	// host's counters could not be read.
	Host       *hoststat.Usage    `json:"host,omitempty"`
	Assertions []assertion.Result `json:"assertions"`
}

// WriteDir creates dir (and its parents) and writes stats.json and
// index.html into it.
func WriteDir(dir string, s Stats) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	if s.Assertions == nil {
		s.Assertions = []assertion.Result{}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode stats: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "stats.json"), append(b, '\n')); err != nil {
		return err
	}
	var page strings.Builder
	if err := HTML(&page, s); err != nil {
		return fmt.Errorf("render page: %w", err)
	}
	return writeFile(filepath.Join(dir, "index.html"), []byte(page.String()))
}

// writeFile writes through a temporary file so a reader never sees half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// Summary prints the final summary: requests, OK latencies apart from KO
// ones, the response-time ranges, replicas, KO reasons, the generator's cost
// and the assertions.
func Summary(w io.Writer, s Stats) error {
	r := s.Requests
	status := "completed"
	if s.Run.Interrupted {
		status = "interrupted"
	}
	fmt.Fprintf(w, "\n==== %s: %d users (%d started), ramp %gs, hold %gs, pause %gs, %s, %gs ====\n",
		s.Run.BaseURL, s.Run.Users, s.Run.UsersStarted, s.Run.RampS, s.Run.HoldS, s.Run.PauseS, status, s.DurationS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "requests\tOK\tKO\treq/s\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t\n", r.Total, r.OK, r.KO, s.ReqPerSec)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency\tresponses\tmin\tmean\tp50\tp75\tp95\tp99\tmax\t")
	for _, row := range []struct {
		name string
		n    int64
		l    stats.Latency
	}{{"OK", r.OK, s.LatencyMs}, {"KO", r.KO, s.KOLatencyMs}} {
		l := row.l
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.name, row.n,
			msText(l.Min), msText(l.Mean), msText(l.P50), msText(l.P75), msText(l.P95), msText(l.P99), msText(l.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Ranges) > 0 {
		fmt.Fprintln(w, "\nresponse time ranges:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, rg := range s.Ranges {
			fmt.Fprintf(tw, "  %s\t%8d\t%6.2f %%\n", rg.Name, rg.Count, rg.Percentage)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	shares := stats.Shares(s.ServedBy)
	if len(shares) > 0 {
		fmt.Fprintln(w, "\nresponses per servedBy:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, sh := range shares {
			fmt.Fprintf(tw, "%s\t%d\t%.1f %%\t\n", sh.ServedBy, sh.Count, sh.Share)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if s.ServedByMissing > 0 {
		fmt.Fprintf(w, "OK answers without servedBy: %d\n", s.ServedByMissing)
	}
	if len(s.Errors) > 0 {
		fmt.Fprintln(w, "\nKO by reason:")
		for _, e := range errorRows(s.Errors) {
			fmt.Fprintf(w, "  %8d  %s\n", e.Count, e.Reason)
		}
	}
	g := s.Generator
	fmt.Fprintf(w, "\ngenerator: %.2f CPU-s, %.1f %% of one core, max RSS %.1f MiB, GOMAXPROCS %d\n",
		g.CPUSeconds, g.CPUPercent, g.MaxRSSMiB, g.GOMAXPROCS)
	if h := s.Host; h != nil {
		fmt.Fprintf(w, "host: %d CPUs %.1f %% busy, steal %.1f %%, %.0f context switches/s (over the run, the generator included)\n",
			h.CPUs, h.BusyPercent, h.StealPercent, h.ContextSwitchesPerS)
	}
	if len(s.Assertions) > 0 {
		fmt.Fprintln(w)
	}
	for _, a := range s.Assertions {
		if _, err := fmt.Fprintln(w, a.String()); err != nil {
			return err
		}
	}
	return nil
}

type errorRow struct {
	Reason string
	Count  int64
}

// errorRows lists the KO reasons, most frequent first (then by name, so the
// order is stable).
func errorRows(m map[string]int64) []errorRow {
	rows := make([]errorRow, 0, len(m))
	for k, v := range m {
		rows = append(rows, errorRow{k, v})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Count != rows[j].Count {
			return rows[i].Count > rows[j].Count
		}
		return rows[i].Reason < rows[j].Reason
	})
	return rows
}

// msText prints a latency in ms with a precision that suits its size, "-"
// when it was not measured.
func msText(p *float64) string {
	if p == nil {
		return "-"
	}
	v := *p
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}
