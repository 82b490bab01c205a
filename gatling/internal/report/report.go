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
// embedded summary) plus the run's settings and the generator's cost.
type Stats struct {
	stats.Summary
	Run       Run       `json:"run"`
	Generator Generator `json:"generator"`
}

// WriteDir creates dir (and its parents) and writes stats.json and
// index.html into it.
func WriteDir(dir string, s Stats) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
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

// Summary prints the final summary table.
func Summary(w io.Writer, s Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	r := s.Requests
	status := "completed"
	if s.Run.Interrupted {
		status = "interrupted"
	}
	fmt.Fprintf(w, "\n==== %s: %d users (%d started), ramp %gs, hold %gs, pause %gs, %s, %gs ====\n",
		s.Run.BaseURL, s.Run.Users, s.Run.UsersStarted, s.Run.RampS, s.Run.HoldS, s.Run.PauseS, status, s.DurationS)
	fmt.Fprintln(tw, "requests\tOK\tKO\treq/s\tmin\tmean\tp50\tp75\tp95\tp99\tmax\t")
	l := s.LatencyMs
	fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Total, r.OK, r.KO, s.ReqPerSec,
		msText(l.Min), msText(l.Mean), msText(l.P50), msText(l.P75), msText(l.P95), msText(l.P99), msText(l.Max))
	if err := tw.Flush(); err != nil {
		return err
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
		keys := make([]string, 0, len(s.Errors))
		for k := range s.Errors {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return s.Errors[keys[i]] > s.Errors[keys[j]] })
		for _, k := range keys {
			fmt.Fprintf(w, "  %8d  %s\n", s.Errors[k], k)
		}
	}
	g := s.Generator
	_, err := fmt.Fprintf(w, "\ngenerator: %.2f CPU-s, %.1f %% of one core, max RSS %.1f MiB, GOMAXPROCS %d\n",
		g.CPUSeconds, g.CPUPercent, g.MaxRSSMiB, g.GOMAXPROCS)
	return err
}

// msText prints a latency in ms with a precision that suits its size.
func msText(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 100:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}
