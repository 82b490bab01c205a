package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goblog/goblog/gatling/internal/report"
	"github.com/goblog/goblog/gatling/internal/stats"
)

// Files that bench.sh writes into a run directory.
const (
	FileMeta         = "meta.txt"             // key=value lines
	DirP1Hello       = "p1-hello"             // gatling report, hello task by IP
	DirP1Account     = "p1-account"           // gatling report, accountservice task by IP
	DirP2            = "p2"                   // tutorial workload via the edge, 1 replica
	DirP3            = "p3"                   // same, 4 replicas
	FileP2Docker     = "p2-dockerstats.jsonl" // docker stats samples during P2's hold
	FileP3Docker     = "p3-dockerstats.jsonl"
	FileP2Containers = "p2-containers.json" // docker inspect of the accountservice containers
	FileP3Containers = "p3-containers.json"
	DirP5Direct      = "p5-direct" // from a container on the stack network to a task IP
	DirP5Edge        = "p5-edge"   // same container, through the edge by name
	DirP9Gatling     = "p9-gatling"
	FileP9Wrk        = "p9-wrk.txt"
	FileP10Images    = "p10-images.json"
	FileP10Events    = "p10-events.jsonl"
)

// Row is one figure of the table.
type Row struct {
	ID, Figure, Value, Goal, Met, Detail string
}

// Replica is one accountservice task's part of a load run.
type Replica struct {
	Phase      string
	ServedBy   string
	Container  string
	Count      int64
	Share      float64
	ReqPerSec  float64
	CPUPercent float64
	MemMiB     float64
	Samples    int
}

// Results is the whole benchmark.
type Results struct {
	Meta     map[string]string
	Rows     []Row
	Replicas []Replica
	// Stack is every stack container's use during the P2 and P3 holds.
	Stack    []PhaseUsage
	Images   []Image
	Healthy  []StartToHealthy
	Problems []string // what could not be read
}

// PhaseUsage is one container's resource use during a phase's hold.
type PhaseUsage struct {
	Phase string
	Usage
}

// Build reads a run directory. Missing or broken parts become rows that
// say so (and Problems), never a failure of the whole table.
func Build(dir string) Results {
	res := Results{Meta: readMeta(filepath.Join(dir, FileMeta))}
	problem := func(what string, err error) string {
		msg := fmt.Sprintf("%s: %v", what, err)
		if errors.Is(err, fs.ErrNotExist) {
			msg = what + ": not measured (no data)"
		}
		res.Problems = append(res.Problems, msg)
		return msg
	}
	load := func(sub string) (report.Stats, error) {
		return LoadStats(filepath.Join(dir, sub, "stats.json"))
	}

	// P1
	if h, err := load(DirP1Hello); err != nil {
		res.Rows = append(res.Rows, Row{ID: "P1", Figure: "accountservice / hello-world throughput", Goal: "≥ 0.90", Met: "—", Detail: problem("P1 hello", err)})
	} else if a, err := load(DirP1Account); err != nil {
		res.Rows = append(res.Rows, Row{ID: "P1", Figure: "accountservice / hello-world throughput", Goal: "≥ 0.90", Met: "—", Detail: problem("P1 accountservice", err)})
	} else {
		ha, aa := holdRate(h), holdRate(a)
		ratio := safeDiv(aa, ha)
		res.Rows = append(res.Rows, Row{ID: "P1", Figure: "accountservice / hello-world throughput", Value: fmt.Sprintf("%.2f", ratio), Goal: "≥ 0.90", Met: yesNo(ratio >= 0.90),
			Detail: fmt.Sprintf("%.0f vs %.0f req/s, %d users closed loop each, to the task IP from a container on the stack network; p50 %.2f vs %.2f ms; KO %d / %d; generator %.0f %% / %.0f %% of a core",
				aa, ha, a.Run.Users, orNaN(a.LatencyMs.P50), orNaN(h.LatencyMs.P50), a.Requests.KO, h.Requests.KO, a.Generator.CPUPercent, h.Generator.CPUPercent)})
	}

	// P2, P3 (+ P4: per replica)
	for _, ph := range []struct{ id, dir, dstats, containers, label string }{
		{"P2", DirP2, FileP2Docker, FileP2Containers, "1 replica"},
		{"P3", DirP3, FileP3Docker, FileP3Containers, "4 replicas"},
	} {
		s, err := load(ph.dir)
		fig := "tutorial workload through the edge, " + ph.label
		if err != nil {
			res.Rows = append(res.Rows, Row{ID: ph.id, Figure: fig, Met: "—", Detail: problem(ph.id, err)})
			continue
		}
		rate := holdRate(s)
		ok := rate >= 990 && s.Requests.KO == 0 && orNaN(s.LatencyMs.P99) < 5
		res.Rows = append(res.Rows, Row{ID: ph.id, Figure: fig,
			Value: fmt.Sprintf("%.0f req/s, KO %d, p50/p95/p99 %.2f/%.2f/%.2f ms", rate, s.Requests.KO, orNaN(s.LatencyMs.P50), orNaN(s.LatencyMs.P95), orNaN(s.LatencyMs.P99)),
			Goal:  "≥ 990 req/s, 0 KO, p99 < 5 ms", Met: yesNo(ok),
			Detail: fmt.Sprintf("%d users, ramp %gs, hold %gs, pause %gs; %d requests; max %.1f ms; generator %.0f %% of a core%s",
				s.Run.Users, s.Run.RampS, s.Run.HoldS, s.Run.PauseS, s.Requests.Total, orNaN(s.LatencyMs.Max), s.Generator.CPUPercent, errorsText(s))})
		reps, usage, err := replicas(ph.id, s, rate, filepath.Join(dir, ph.dstats), filepath.Join(dir, ph.containers))
		if err != nil {
			problem(ph.id+" replicas", err)
		}
		res.Replicas = append(res.Replicas, reps...)
		for _, u := range usage {
			res.Stack = append(res.Stack, PhaseUsage{Phase: ph.id, Usage: u})
		}
	}
	var p3reps []Replica
	for _, r := range res.Replicas {
		if r.Phase == "P3" {
			p3reps = append(p3reps, r)
		}
	}
	if len(p3reps) > 0 {
		var shares, mems []string
		ok := len(p3reps) == 4
		maxMem := 0.0
		for _, r := range p3reps {
			shares = append(shares, fmt.Sprintf("%.0f", r.ReqPerSec))
			mems = append(mems, fmt.Sprintf("%.1f", r.MemMiB))
			ok = ok && r.ReqPerSec >= 225 && r.ReqPerSec <= 275
			maxMem = max(maxMem, r.MemMiB)
		}
		for _, r := range res.Replicas {
			maxMem = max(maxMem, r.MemMiB)
		}
		res.Rows = append(res.Rows, Row{ID: "P4", Figure: "per replica at 4 replicas: req/s share; memory",
			Value: fmt.Sprintf("req/s %s; MiB %s", strings.Join(shares, " / "), strings.Join(mems, " / ")),
			Goal:  "250 ± 10 % req/s each; ≤ 9 MiB", Met: yesNo(ok && maxMem <= 9),
			Detail: fmt.Sprintf("peak memory of any replica in P2/P3: %.1f MiB; CPU and memory per replica in the table below", maxMem)})
	} else {
		res.Rows = append(res.Rows, Row{ID: "P4", Figure: "per replica at 4 replicas", Met: "—", Detail: "not measured (no P3 data)"})
	}

	// P5
	if d, err := load(DirP5Direct); err != nil {
		res.Rows = append(res.Rows, Row{ID: "P5", Figure: "p99 through the edge / straight to the task", Goal: "≤ 1.2", Met: "—", Detail: problem("P5 direct", err)})
	} else if e, err := load(DirP5Edge); err != nil {
		res.Rows = append(res.Rows, Row{ID: "P5", Figure: "p99 through the edge / straight to the task", Goal: "≤ 1.2", Met: "—", Detail: problem("P5 edge", err)})
	} else {
		ratio := safeDiv(orNaN(e.LatencyMs.P99), orNaN(d.LatencyMs.P99))
		res.Rows = append(res.Rows, Row{ID: "P5", Figure: "p99 through the edge / straight to the task", Value: fmt.Sprintf("%.2f", ratio), Goal: "≤ 1.2", Met: yesNo(ratio <= 1.2),
			Detail: fmt.Sprintf("p99 %.2f vs %.2f ms, p50 %.2f vs %.2f ms, %.0f vs %.0f req/s, KO %d / %d; from a container on the stack network, %d users, pause %gs",
				orNaN(e.LatencyMs.P99), orNaN(d.LatencyMs.P99), orNaN(e.LatencyMs.P50), orNaN(d.LatencyMs.P50), holdRate(e), holdRate(d), e.Requests.KO, d.Requests.KO, d.Run.Users, d.Run.PauseS)})
	}

	// P9
	g, gerr := load(DirP9Gatling)
	w, werr := readWrk(filepath.Join(dir, FileP9Wrk))
	switch {
	case gerr != nil:
		res.Rows = append(res.Rows, Row{ID: "P9", Figure: "gatling p50 / wrk p50", Met: "—", Detail: problem("P9 gatling", gerr)})
	case werr != nil:
		res.Rows = append(res.Rows, Row{ID: "P9", Figure: "gatling p50 / wrk p50", Met: "—", Detail: problem("P9 wrk", werr)})
	default:
		ratio := safeDiv(orNaN(g.LatencyMs.P50), w.P50Ms)
		res.Rows = append(res.Rows, Row{ID: "P9", Figure: "gatling p50 / wrk p50, same connections", Value: fmt.Sprintf("%.2f", ratio), Goal: "≈ 1 (report)", Met: "—",
			Detail: fmt.Sprintf("%d connections closed loop through the edge: gatling p50 %.2f ms p99 %.2f ms %.0f req/s; wrk p50 %.2f ms p99 %.2f ms %.0f req/s%s",
				w.Connections, orNaN(g.LatencyMs.P50), orNaN(g.LatencyMs.P99), holdRate(g), w.P50Ms, w.P99Ms, w.ReqPerSec, prefix("; wrk: ", w.Errors))})
	}

	// P10
	if f, err := os.Open(filepath.Join(dir, FileP10Images)); err != nil {
		problem("P10 images", err)
	} else {
		res.Images, err = ParseImages(f)
		f.Close()
		if err != nil {
			problem("P10 images", err)
		}
	}
	if f, err := os.Open(filepath.Join(dir, FileP10Events)); err != nil {
		problem("P10 start to healthy", err)
	} else {
		res.Healthy, err = ParseEvents(f)
		f.Close()
		if err != nil {
			problem("P10 start to healthy", err)
		}
	}
	var sizes []string
	for _, im := range res.Images {
		sizes = append(sizes, fmt.Sprintf("%s %.1f MB", strings.TrimSuffix(strings.TrimPrefix(im.Tag, "goblog/"), ":latest"), float64(im.Bytes)/1e6))
	}
	var hs []float64
	for _, h := range res.Healthy {
		hs = append(hs, h.Seconds)
	}
	sort.Float64s(hs)
	healthy := "no container start observed"
	if len(hs) > 0 {
		healthy = fmt.Sprintf("start → healthy %.1f … %.1f s (median %.1f s, %d containers)", hs[0], hs[len(hs)-1], hs[len(hs)/2], len(hs))
	}
	if v := res.Meta["scale_up_s"]; v != "" {
		healthy += "; scale 1 → 4 until all 4 healthy: " + v + " s"
	}
	res.Rows = append(res.Rows, Row{ID: "P10", Figure: "image sizes; task start → healthy", Value: healthy, Goal: "report", Met: "—", Detail: strings.Join(sizes, ", ")})
	return res
}

// holdRate is the mean req/s over the intervals when every user was
// running (the hold after the ramp); the overall rate when there was none.
func holdRate(s report.Stats) float64 {
	var sum float64
	var n int
	for _, p := range s.Timeline {
		if int(p.Users) == s.Run.Users && s.Run.Users > 0 {
			sum += p.ReqPerSec
			n++
		}
	}
	if n == 0 {
		return s.ReqPerSec
	}
	return sum / float64(n)
}

// replicas joins a phase's servedBy counts with the accountservice
// containers' stats; it also returns every sampled container's use, by name.
func replicas(phase string, s report.Stats, rate float64, dstatsPath, containersPath string) ([]Replica, []Usage, error) {
	var errs []error
	usage := map[string]Usage{}
	if f, err := os.Open(dstatsPath); err != nil {
		errs = append(errs, err)
	} else {
		usage, err = ParseDockerStats(f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	byIP := map[string]Container{}
	if f, err := os.Open(containersPath); err != nil {
		errs = append(errs, err)
	} else {
		cs, err := ParseContainers(f)
		f.Close()
		if err != nil {
			errs = append(errs, err)
		}
		for _, c := range cs {
			for _, ip := range c.IPs {
				byIP[ip] = c
			}
		}
	}
	var out []Replica
	for _, sh := range stats.Shares(s.ServedBy) {
		r := Replica{Phase: phase, ServedBy: sh.ServedBy, Count: sh.Count, Share: sh.Share, ReqPerSec: round2(rate * sh.Share / 100)}
		if c, ok := byIP[sh.ServedBy]; ok {
			r.Container = c.Name
			if u, ok := usage[c.Name]; ok {
				r.CPUPercent, r.MemMiB, r.Samples = u.CPUPercent, u.MemMiB, u.Samples
			}
		}
		out = append(out, r)
	}
	all := make([]Usage, 0, len(usage))
	for _, u := range usage {
		all = append(all, u)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return out, all, errors.Join(errs...)
}

func readWrk(path string) (Wrk, error) {
	f, err := os.Open(path)
	if err != nil {
		return Wrk{}, err
	}
	defer f.Close()
	return ParseWrk(f)
}

func readMeta(path string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func errorsText(s report.Stats) string {
	if len(s.Errors) == 0 {
		return ""
	}
	var parts []string
	for k, v := range s.Errors {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	return "; KO: " + strings.Join(parts, ", ")
}

func prefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Markdown writes the results as the benchmark's results file.
func Markdown(w io.Writer, r Results) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# goblog benchmark %s\n\n", r.Meta["date"])
	keys := make([]string, 0, len(r.Meta))
	for k := range r.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(bw, "- %s: %s\n", k, r.Meta[k])
	}
	fmt.Fprintln(bw, "\n| # | figure | measured | goal | met | details |\n|---|---|---|---|---|---|")
	for _, row := range r.Rows {
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s | %s |\n", row.ID, cell(row.Figure), cell(row.Value), cell(row.Goal), row.Met, cell(row.Detail))
	}
	if len(r.Replicas) > 0 {
		fmt.Fprintln(bw, "\n## accountservice replicas (P2, P3/P4)\n\n| phase | servedBy | container | responses | share | req/s (hold) | CPU % of a core (mean) | memory MiB (peak) | stats samples |\n|---|---|---|---|---|---|---|---|---|")
		for _, x := range r.Replicas {
			fmt.Fprintf(bw, "| %s | %s | %s | %d | %.1f %% | %.0f | %.1f | %.1f | %d |\n", x.Phase, cell(x.ServedBy), cell(x.Container), x.Count, x.Share, x.ReqPerSec, x.CPUPercent, x.MemMiB, x.Samples)
		}
	}
	if len(r.Stack) > 0 {
		fmt.Fprintln(bw, "\n## stack containers during the holds (docker stats)\n\n| phase | container | CPU % of a core (mean) | memory MiB (peak) | samples |\n|---|---|---|---|---|")
		for _, u := range r.Stack {
			fmt.Fprintf(bw, "| %s | %s | %.1f | %.1f | %d |\n", u.Phase, cell(u.Name), u.CPUPercent, u.MemMiB, u.Samples)
		}
	}
	if len(r.Images) > 0 {
		fmt.Fprintln(bw, "\n## images (P10)\n\n| image | size |\n|---|---|")
		for _, im := range r.Images {
			fmt.Fprintf(bw, "| %s | %.1f MB |\n", cell(im.Tag), float64(im.Bytes)/1e6)
		}
	}
	if len(r.Healthy) > 0 {
		fmt.Fprintln(bw, "\n## container start → healthy (P10)\n\n| service | container | seconds |\n|---|---|---|")
		for _, h := range r.Healthy {
			fmt.Fprintf(bw, "| %s | %s | %.2f |\n", cell(h.Service), cell(h.Container), h.Seconds)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(bw, "\n## not measured or unreadable")
		for _, p := range r.Problems {
			fmt.Fprintf(bw, "- %s\n", p)
		}
	}
	return bw.Flush()
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

// orNaN is a latency figure of a stats.json, NaN when it was not measured
// (no OK response), so that no goal compares as met and the table shows NaN.
func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
