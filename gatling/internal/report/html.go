package report

import (
	"html/template"
	"io"
	"math"
	"time"

	"github.com/goblog/goblog/gatling/internal/stats"
)

// Chart ids, also what tests look for.
const (
	ChartPercentiles  = "chart-percentiles"
	ChartThroughput   = "chart-throughput"
	ChartDistribution = "chart-distribution"
	ChartReplicas     = "chart-replicas"
	ChartRanges       = "chart-ranges"
)

type pageData struct {
	S            Stats
	Started      string
	Percentiles  template.HTML
	Throughput   template.HTML
	Distribution template.HTML
	Replicas     template.HTML
	Ranges       template.HTML
	Shares       []stats.ServedByShare
	Errors       []errorRow
	Latencies    []latencyRow
	Failed       int // assertions that failed
}

type latencyRow struct {
	Name string
	N    int64
	L    stats.Latency
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{"ms": msText}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>goblog gatling — {{.S.Run.BaseURL}} — {{.Started}}</title>
<style>
body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.ko{color:#c00;font-weight:bold} .muted{color:#666;font-size:13px}
svg.chart{display:block;margin:6px 0;border:1px solid #eee}
</style></head><body>
<h1>Load test of {{.S.Run.BaseURL}}</h1>
<p class="muted">started {{.Started}} · {{.S.DurationS}} s · {{.S.Run.Users}} users ({{.S.Run.UsersStarted}} started) ramped over {{.S.Run.RampS}} s, each looping {{.S.Run.HoldS}} s with a {{.S.Run.PauseS}} s pause ·
keep-alive {{.S.Run.KeepAlive}}{{if .S.Run.MaxRequestsPerConn}}, at most {{.S.Run.MaxRequestsPerConn}} requests per connection{{end}} · request timeout {{.S.Run.TimeoutS}} s ·
feeder {{.S.Run.Feeder}} ({{.S.Run.FeederIDs}} ids){{if .S.Run.Interrupted}} · <b>interrupted</b>{{end}}</p>
<h2>Summary</h2>
<table id="summary"><tr><th>requests</th><th>OK</th><th>KO</th><th>req/s</th></tr>
<tr><td>{{.S.Requests.Total}}</td><td>{{.S.Requests.OK}}</td><td{{if .S.Requests.KO}} class="ko"{{end}}>{{.S.Requests.KO}}</td><td>{{printf "%.1f" .S.ReqPerSec}}</td></tr></table>
<table id="latency"><tr><th class="l">latency</th><th>responses</th><th>min</th><th>mean</th><th>p50</th><th>p75</th><th>p95</th><th>p99</th><th>max</th></tr>
{{range .Latencies}}<tr><td class="l">{{.Name}}</td><td>{{.N}}</td><td>{{ms .L.Min}}</td><td>{{ms .L.Mean}}</td><td>{{ms .L.P50}}</td><td>{{ms .L.P75}}</td><td>{{ms .L.P95}}</td><td>{{ms .L.P99}}</td><td>{{ms .L.Max}}</td></tr>
{{end}}</table>
<p class="muted">OK latencies are over the responses that passed the check (status 200), KO latencies over the others; "-" where there were none.</p>
{{if .S.Assertions}}<h2>Assertions</h2><table id="assertions"><tr><th class="l">assertion</th><th class="l">result</th><th class="l">measured</th></tr>
{{range .S.Assertions}}<tr><td class="l">{{.Expression}}</td><td class="l{{if not .Passed}} ko{{end}}">{{if .Passed}}passed{{else}}failed{{end}}</td><td class="l">{{.Detail}}</td></tr>{{end}}</table>{{end}}
<h2>Response time ranges</h2>
{{.Ranges}}
<table id="ranges"><tr><th class="l">range</th><th>responses</th><th>share</th></tr>
{{range .S.Ranges}}<tr><td class="l">{{.Name}}</td><td>{{.Count}}</td><td>{{printf "%.2f" .Percentage}} %</td></tr>{{end}}</table>
<p class="muted">generator: {{printf "%.2f" .S.Generator.CPUSeconds}} CPU-seconds, {{printf "%.1f" .S.Generator.CPUPercent}} % of one core, max RSS {{printf "%.1f" .S.Generator.MaxRSSMiB}} MiB, GOMAXPROCS {{.S.Generator.GOMAXPROCS}}</p>
{{with .S.Host}}<p class="muted" id="host">host: {{.CPUs}} CPUs {{printf "%.1f" .BusyPercent}} % busy, steal {{printf "%.1f" .StealPercent}} %, {{printf "%.0f" .ContextSwitchesPerS}} context switches/s (over the run, the generator included)</p>{{end}}
{{if .Errors}}<h2>KO by reason</h2><table id="errors"><tr><th class="l">reason</th><th>count</th></tr>
{{range .Errors}}<tr><td class="l">{{.Reason}}</td><td>{{.Count}}</td></tr>{{end}}</table>{{end}}
<h2>Response time percentiles over time (OK responses)</h2>
{{if not .S.Requests.OK}}<p class="ko">No OK response: no latency to chart (the KO latencies are in the summary).</p>{{end}}
{{.Percentiles}}
<h2>Requests per second and active users over time</h2>
{{.Throughput}}
<h2>Response time distribution (OK responses)</h2>
{{.Distribution}}
<h2>Responses per replica (servedBy)</h2>
{{.Replicas}}
{{if .Shares}}<table id="replicas"><tr><th class="l">servedBy</th><th>responses</th><th>share</th></tr>
{{range .Shares}}<tr><td class="l">{{.ServedBy}}</td><td>{{.Count}}</td><td>{{printf "%.1f" .Share}} %</td></tr>{{end}}</table>{{end}}
{{if .S.ServedByMissing}}<p>OK answers that named no replica: {{.S.ServedByMissing}}</p>{{end}}
<p class="muted">All figures are also in <a href="stats.json">stats.json</a>.</p>
</body></html>
`))

// HTML renders the report page.
func HTML(w io.Writer, s Stats) error {
	d := pageData{S: s, Started: s.StartedAt.UTC().Format(time.RFC3339), Shares: stats.Shares(s.ServedBy),
		Latencies: []latencyRow{{"OK", s.Requests.OK, s.LatencyMs}, {"KO", s.Requests.KO, s.KOLatencyMs}}, Errors: errorRows(s.Errors)}
	tl := s.Timeline
	x := make([]float64, len(tl))
	p50, p95, p99, maxs, rps, ko, users := make([]float64, len(tl)), make([]float64, len(tl)), make([]float64, len(tl)), make([]float64, len(tl)), make([]float64, len(tl)), make([]float64, len(tl)), make([]float64, len(tl))
	for i, p := range tl {
		x[i], p50[i], p95[i], p99[i], maxs[i], rps[i], users[i] = p.T, orNaN(p.P50Ms), orNaN(p.P95Ms), orNaN(p.P99Ms), orNaN(p.MaxMs), p.ReqPerSec, float64(p.Users)
		if p.T > 0 && i > 0 {
			ko[i] = float64(p.KO) / (p.T - tl[i-1].T)
		} else if p.T > 0 {
			ko[i] = float64(p.KO) / p.T
		}
	}
	d.Percentiles = lineChart(ChartPercentiles, "Response time percentiles per interval", "seconds since start", "ms", []series{
		{Name: "p50", Color: "#2ca02c", X: x, Y: p50},
		{Name: "p95", Color: "#1f77b4", X: x, Y: p95},
		{Name: "p99", Color: "#ff7f0e", X: x, Y: p99},
		{Name: "max", Color: "#d62728", Dash: true, X: x, Y: maxs},
	})
	d.Throughput = lineChart(ChartThroughput, "Requests per second and active users", "seconds since start", "req/s · users", []series{
		{Name: "req/s", Color: "#1f77b4", X: x, Y: rps},
		{Name: "KO/s", Color: "#d62728", X: x, Y: ko},
		{Name: "active users", Color: "#7f7f7f", Dash: true, X: x, Y: users},
	})
	labels := make([]string, len(s.Distribution))
	counts := make([]float64, len(s.Distribution))
	for i, b := range s.Distribution {
		labels[i] = num(b.FromMs)
		counts[i] = float64(b.Count)
	}
	d.Distribution = barChart(ChartDistribution, "Response time distribution", "ms (bin start; last bin holds the tail above p99.9)", "requests", labels, counts, "#1f77b4")
	names := make([]string, len(d.Shares))
	cs := make([]int64, len(d.Shares))
	sh := make([]float64, len(d.Shares))
	for i, r := range d.Shares {
		names[i], cs[i], sh[i] = r.ServedBy, r.Count, r.Share
	}
	d.Replicas = shareChart(ChartReplicas, "Responses per replica", names, cs, sh)
	d.Ranges = rangesChart(ChartRanges, "Response time ranges", s.Ranges)
	return page.Execute(w, d)
}

// orNaN is a figure of the timeline, NaN (a gap in the line) when the
// interval had no OK response.
func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
