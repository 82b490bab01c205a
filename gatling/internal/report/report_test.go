package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/gatling/internal/assertion"
	"github.com/goblog/goblog/gatling/internal/hoststat"
	"github.com/goblog/goblog/gatling/internal/stats"
)

func sample() Stats {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	r := stats.NewRecorder(start)
	for sec := 0; sec < 5; sec++ {
		for i := 1; i <= 100; i++ {
			ip := []string{"10.0.1.7", "10.0.1.8", "<b>evil</b>"}[i%3]
			r.Record(stats.Result{Latency: time.Duration(i*(sec+1)) * 10 * time.Microsecond, OK: true, ServedBy: ip})
		}
		r.Record(stats.Result{Latency: 5 * time.Millisecond, Error: "status 502"})
		r.Tick(start.Add(time.Duration(sec+1)*time.Second), int64(10*(sec+1)))
	}
	r.Record(stats.Result{Latency: 900 * time.Millisecond, OK: true, ServedBy: "10.0.1.7"})
	r.Record(stats.Result{Latency: 1300 * time.Millisecond, OK: true, ServedBy: "10.0.1.7"})
	return Stats{
		Summary:    r.Summary(start.Add(5 * time.Second)),
		Assertions: []assertion.Result{{Expression: "ko=0", Passed: false, Detail: "ko 5 of 507 requests"}, {Expression: "p99<5ms", Passed: true, Detail: "p99 <3> ms"}},
		Run:        Run{BaseURL: "http://localhost:6767", Path: "/accounts/{id}", Users: 50, RampS: 1, HoldS: 4, PauseS: 1, TimeoutS: 10, KeepAlive: true, Feeder: "accounts.csv", FeederIDs: 100, UsersStarted: 50},
		Generator:  Generator{CPUSeconds: 0.5, CPUPercent: 10, MaxRSSMiB: 20, GOMAXPROCS: 2},
		Host:       &hoststat.Usage{CPUs: 2, BusyPercent: 61.5, StealPercent: 0.25, ContextSwitchesPerS: 40123},
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "run1")
	s := sample()
	if err := WriteDir(dir, s); err != nil {
		t.Fatal(err)
	}

	// stats.json: the contract's shape, with the figures of the run.
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var contract struct {
		Requests  struct{ Total, OK, KO int64 } `json:"requests"`
		ReqPerSec float64                       `json:"reqPerSec"`
		LatencyMs struct {
			Min, Mean, P50, P75, P95, P99, Max *float64
		} `json:"latencyMs"`
		KOLatencyMs struct {
			Min, Max *float64
		} `json:"koLatencyMs"`
		Ranges     []stats.Range      `json:"ranges"`
		Assertions []assertion.Result `json:"assertions"`
		ServedBy   map[string]int64   `json:"servedBy"`
		StartedAt  string             `json:"startedAt"`
		DurationS  float64            `json:"durationS"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&contract); err != nil {
		t.Fatalf("stats.json: %v\n%s", err, b)
	}
	if contract.Requests.Total != 507 || contract.Requests.OK != 502 || contract.Requests.KO != 5 {
		t.Errorf("requests %+v", contract.Requests)
	}
	if k := contract.KOLatencyMs; k.Min == nil || k.Max == nil || *k.Min < 5 || *k.Max > 5.01 {
		t.Errorf("koLatencyMs %s", b)
	}
	if *contract.LatencyMs.Max < 1300 || *contract.LatencyMs.Min != 0.01 {
		t.Errorf("latencyMs min/max %v/%v: want the OK answers 0.01 … 1300 ms", *contract.LatencyMs.Min, *contract.LatencyMs.Max)
	}
	wantRanges := "[{t < 800 ms 500 98.62} {800 ms <= t < 1200 ms 1 0.2} {t >= 1200 ms 1 0.2} {failed 5 0.99}]"
	if got := fmt.Sprint(contract.Ranges); got != wantRanges {
		t.Errorf("ranges %s, want %s", got, wantRanges)
	}
	if len(contract.Assertions) != 2 || contract.Assertions[0].Passed || !contract.Assertions[1].Passed {
		t.Errorf("assertions %+v", contract.Assertions)
	}
	if contract.ReqPerSec != 101.4 || contract.DurationS != 5 {
		t.Errorf("reqPerSec %v durationS %v", contract.ReqPerSec, contract.DurationS)
	}
	l := contract.LatencyMs
	for name, v := range map[string]*float64{"min": l.Min, "mean": l.Mean, "p50": l.P50, "p75": l.P75, "p95": l.P95, "p99": l.P99, "max": l.Max} {
		if v == nil {
			t.Errorf("latencyMs.%s missing", name)
		}
	}
	if *l.Min > *l.P50 || *l.P50 > *l.P75 || *l.P75 > *l.P95 || *l.P95 > *l.P99 || *l.P99 > *l.Max {
		t.Errorf("latencies out of order: %s", b)
	}
	if _, err := time.Parse(time.RFC3339, contract.StartedAt); err != nil {
		t.Errorf("startedAt: %v", err)
	}
	var sum int64
	for _, v := range contract.ServedBy {
		sum += v
	}
	if sum != contract.Requests.OK {
		t.Errorf("servedBy adds up to %d, want %d", sum, contract.Requests.OK)
	}
	var extra struct {
		Timeline []stats.Point `json:"timeline"`
		Run      Run           `json:"run"`
	}
	if err := json.Unmarshal(b, &extra); err != nil || len(extra.Timeline) != 5 || extra.Run.Users != 50 {
		t.Errorf("timeline/run: %v %+v", err, extra)
	}

	// index.html: the five charts, each a well-formed SVG with data in it.
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(html, -1)
	if len(svgs) != 5 {
		t.Fatalf("page has %d charts, want 5", len(svgs))
	}
	want := map[string]string{ChartPercentiles: "<polyline", ChartThroughput: "<polyline", ChartDistribution: `class="bar"`, ChartReplicas: `class="share"`, ChartRanges: `class="range"`}
	for _, svg := range svgs {
		if err := wellFormed(svg); err != nil {
			t.Errorf("chart not well-formed XML: %v\n%.300s", err, svg)
		}
		id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(svg)[1]
		mark, ok := want[id]
		if !ok {
			t.Errorf("unexpected chart %q", id)
			continue
		}
		delete(want, id)
		if !strings.Contains(svg, mark) {
			t.Errorf("chart %s has no %s", id, mark)
		}
	}
	if len(want) != 0 {
		t.Errorf("charts missing: %v", want)
	}
	if n := strings.Count(chartByID(t, svgs, ChartPercentiles), "<polyline"); n != 4 {
		t.Errorf("percentile chart has %d lines, want p50, p95, p99, max", n)
	}
	if strings.Contains(html, "<b>evil</b>") || !strings.Contains(html, "&lt;b&gt;evil&lt;/b&gt;") {
		t.Error("a servedBy value was not escaped")
	}
	for _, ref := range []string{"src=\"http", "href=\"http", "<script src", "@import", "url("} {
		if strings.Contains(html, ref) {
			t.Errorf("page refers to an external asset: %q", ref)
		}
	}
	if !strings.Contains(html, "status 502") {
		t.Error("page does not list the KO reasons")
	}
	for _, want := range []string{"t &lt; 800 ms", "800 ms &lt;= t &lt; 1200 ms", "t &gt;= 1200 ms", "98.62 %", `id="ranges"`, `id="assertions"`, "p99&lt;5ms", "p99 &lt;3&gt; ms", `class="l ko">failed`} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, "p99 <3> ms") {
		t.Error("an assertion's detail was not escaped")
	}
}

func chartByID(t *testing.T, svgs []string, id string) string {
	t.Helper()
	for _, s := range svgs {
		if strings.HasPrefix(s, `<svg id="`+id+`"`) {
			return s
		}
	}
	t.Fatalf("no chart %s", id)
	return ""
}

func wellFormed(s string) error {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func TestWriteDirEmptyRun(t *testing.T) {
	// A run interrupted before any answer still gets a report.
	start := time.Unix(0, 0).UTC()
	s := Stats{Summary: stats.NewRecorder(start).Summary(start), Run: Run{Interrupted: true}}
	dir := t.TempDir()
	if err := WriteDir(dir, s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "stats.json"))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["servedBy"] == nil {
		t.Error("servedBy should be an empty object, not null")
	}
	if a, ok := m["assertions"].([]any); !ok || len(a) != 0 {
		t.Errorf("assertions %v, want an empty list", m["assertions"])
	}
	for _, k := range []string{"latencyMs", "koLatencyMs"} {
		l, _ := m[k].(map[string]any)
		if len(l) != 7 || l["p99"] != nil {
			t.Errorf("%s %v: want seven nulls", k, m[k])
		}
	}
}

// TestRefusedRun: every request refused. The summary and the page show no
// OK latency at all, the refusals' times only as KO, and every request as
// failed.
func TestRefusedRun(t *testing.T) {
	start := time.Unix(0, 0).UTC()
	r := stats.NewRecorder(start)
	for i := range 75 {
		r.Record(stats.Result{Latency: 850 * time.Microsecond, Error: "connection refused"})
		if i%25 == 24 {
			r.Tick(start.Add(time.Duration(i/25+1)*time.Second), 1)
		}
	}
	s := Stats{Summary: r.Summary(start.Add(3 * time.Second)), Run: Run{BaseURL: "http://127.0.0.1:1", Users: 1}}
	var b bytes.Buffer
	if err := Summary(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	okRow := regexp.MustCompile(`(?m)^\s*OK\s+0(\s+-){7}\s*$`)
	koRow := regexp.MustCompile(`(?m)^\s*KO\s+75(\s+0\.85ms){7}\s*$`)
	if !okRow.MatchString(out) || !koRow.MatchString(out) {
		t.Errorf("summary does not show OK latencies as - and KO as 0.85ms:\n%s", out)
	}
	if !regexp.MustCompile(`failed\s+75\s+100\.00 %`).MatchString(out) || !regexp.MustCompile(`t < 800 ms\s+0\s+0\.00 %`).MatchString(out) {
		t.Errorf("summary ranges wrong:\n%s", out)
	}
	dir := t.TempDir()
	if err := WriteDir(dir, s); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	html := string(page)
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(html, -1)
	for _, svg := range svgs {
		if err := wellFormed(svg); err != nil {
			t.Errorf("chart not well-formed: %v", err)
		}
		if strings.Contains(svg, "NaN") {
			t.Errorf("chart draws NaN: %.200s", svg)
		}
	}
	if pc := chartByID(t, svgs, ChartPercentiles); strings.Contains(pc, "<polyline") {
		t.Error("the percentile chart draws lines without any OK response")
	}
	if !strings.Contains(html, "<td>-</td>") {
		t.Error("page shows no - for the OK latencies")
	}
}

func TestWriteDirUnwritable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(filepath.Join(f, "sub"), sample()); err == nil {
		t.Fatal("no error writing under a file")
	}
}

func TestSummaryTable(t *testing.T) {
	var b bytes.Buffer
	if err := Summary(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"requests", "p99", "507", "502", "101.4", "t >= 1200 ms", "assertion ko=0: failed (ko 5 of 507 requests)", "10.0.1.7", "%", "status 502", "generator:",
		"host: 2 CPUs 61.5 % busy, steal 0.2 %, 40123 context switches/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestHostLine(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDir(dir, sample()); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `id="host">host: 2 CPUs 61.5 % busy, steal 0.2 %, 40123 context switches/s`; !strings.Contains(string(html), want) {
		t.Errorf("page lacks %q", want)
	}

	// Where the host's counters could not be read, neither says anything of it.
	s := sample()
	s.Host = nil
	var b bytes.Buffer
	if err := Summary(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "\nhost: ") {
		t.Errorf("summary has a host line without figures:\n%s", b.String())
	}
	dir = t.TempDir()
	if err := WriteDir(dir, s); err != nil {
		t.Fatal(err)
	}
	if html, err = os.ReadFile(filepath.Join(dir, "index.html")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), `id="host"`) {
		t.Error("page has a host line without figures")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stats.json")); err != nil || strings.Contains(string(b), `"host"`) {
		t.Errorf("stats.json without figures has a host object (or: %v):\n%s", err, b)
	}
}
