package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/gatling/internal/report"
	"github.com/goblog/goblog/gatling/internal/stats"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseDockerStats(t *testing.T) {
	u, err := ParseDockerStats(open(t, "dockerstats.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := u["goblog_accountservice.1.t1"], u["goblog_accountservice.2.t2"]
	if a.Samples != 2 || a.CPUPercent != 15 || a.MemMiB != 7.25 {
		t.Errorf("t1 %+v, want 2 samples, CPU mean 15, mem peak 7.25", a)
	}
	if b.Samples != 2 || b.CPUPercent != 15 || b.MemMiB != 6 {
		t.Errorf("t2 %+v", b)
	}
	if _, ok := u["goblog_accountservice.3.t3"]; ok {
		t.Error("a container with -- figures was counted")
	}
	if _, err := ParseDockerStats(strings.NewReader("{broken\n")); err == nil {
		t.Error("broken JSON line accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]float64{"0B": 0, "512KiB": 512 << 10, "5.5MiB": 5.5 * (1 << 20), "1GiB": 1 << 30, "7.2MB": 7.2e6, "3kB": 3000} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error("parseSize accepted garbage")
	}
}

func TestParseWrk(t *testing.T) {
	w, err := ParseWrk(open(t, "wrk.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := Wrk{Connections: 10, P50Ms: 0.308, P99Ms: 9.99, ReqPerSec: 23208.97, Requests: 46586}
	if w != want {
		t.Fatalf("wrk %+v, want %+v", w, want)
	}
	if _, err := ParseWrk(strings.NewReader("unable to connect to 127.0.0.1:6767 Connection refused\n")); err == nil {
		t.Error("a failed wrk run parsed")
	}
}

func TestParseEventsAndImages(t *testing.T) {
	hs, err := ParseEvents(open(t, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].Seconds != 2.25 || hs[0].Service != "goblog_accountservice" || hs[0].Container != "goblog_accountservice.1.t1" {
		t.Fatalf("start→healthy %+v; want one container, 2.25 s (the second healthy event and unstarted containers ignored)", hs)
	}
	// A stream stopped in the middle of its last line.
	b, err := os.ReadFile(filepath.Join("testdata", "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cut, err := ParseEvents(strings.NewReader(string(b) + `{"Type":"container","Action":"sta`))
	if err != nil || len(cut) != 1 {
		t.Fatalf("cut stream: %v %+v", err, cut)
	}
	ims, err := ParseImages(open(t, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ims) != 3 || ims[1].Tag != "goblog/accountservice:latest" || ims[2].Bytes != 7340032 || ims[2].Tag != "goblog/hello:latest" {
		t.Fatalf("images %+v", ims)
	}
}

// writeStats writes a gatling report for a run at rate req/s over a hold of
// 3 intervals (2 % of them taking p99), answered by the replicas in equal parts.
func writeStats(t *testing.T, dir string, users int, rate float64, p50, p99 float64, replicas ...string) {
	t.Helper()
	start := time.Unix(1795347000, 0).UTC()
	rec := stats.NewRecorder(start)
	n := int(rate) * 3
	for i := range n {
		lat := time.Duration(p50*1000) * time.Microsecond
		if i%50 == 49 { // 2 % of the requests, so p99 is the slow value
			lat = time.Duration(p99*1000) * time.Microsecond
		}
		res := stats.Result{Latency: lat, OK: true}
		if len(replicas) > 0 {
			res.ServedBy = replicas[i%len(replicas)]
		}
		rec.Record(res)
		if (i+1)%int(rate) == 0 {
			rec.Tick(start.Add(time.Duration((i+1)/int(rate))*time.Second), int64(users))
		}
	}
	s := report.Stats{Summary: rec.Summary(start.Add(3 * time.Second)), Run: report.Run{Users: users, RampS: 0, HoldS: 3, PauseS: 1}}
	if err := report.WriteDir(dir, s); err != nil {
		t.Fatal(err)
	}
}

func TestBuildAndMarkdown(t *testing.T) {
	dir := t.TempDir()
	writeStats(t, filepath.Join(dir, DirP1Hello), 50, 2000, 1, 2)
	writeStats(t, filepath.Join(dir, DirP1Account), 50, 1900, 1, 2, "10.0.1.7")
	writeStats(t, filepath.Join(dir, DirP2), 1000, 1000, 1, 4, "10.0.1.7")
	writeStats(t, filepath.Join(dir, DirP3), 1000, 1000, 1, 4, "10.0.1.7", "10.0.1.8", "10.0.1.9", "10.0.1.10")
	writeStats(t, filepath.Join(dir, DirP5Direct), 1000, 1000, 1, 2, "10.0.1.7")
	writeStats(t, filepath.Join(dir, DirP5Edge), 1000, 1000, 1, 3, "10.0.1.7")
	writeStats(t, filepath.Join(dir, DirP9Gatling), 50, 500, 1, 2)
	for src, dst := range map[string]string{"dockerstats.jsonl": FileP3Docker, "containers.json": FileP3Containers, "wrk.txt": FileP9Wrk, "events.jsonl": FileP10Events, "images.json": FileP10Images} {
		b, err := os.ReadFile(filepath.Join("testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FileMeta), []byte("date=2026-11-22T12:00:00Z\nmode=dnsrr\nscale_up_s=7.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := Build(dir)
	rows := map[string]Row{}
	for _, r := range res.Rows {
		rows[r.ID] = r
	}
	check := func(id, value, met string) {
		t.Helper()
		r := rows[id]
		if !strings.Contains(r.Value, value) || r.Met != met {
			t.Errorf("%s = %+v, want value containing %q, met %q", id, r, value, met)
		}
	}
	check("P1", "0.95", "yes")
	check("P2", "1000 req/s, KO 0, p50/p95/p99 1.00/1.00/4.00 ms", "yes")
	check("P3", "1000 req/s", "yes")
	check("P4", "req/s 250 / 250 / 250 / 250", "yes")
	check("P5", "1.50", "no")
	check("P9", fmt.Sprintf("%.2f", 1/0.308), "—")
	check("P10", "start → healthy 2.2 … 2.2 s", "—")
	if !strings.Contains(rows["P10"].Value, "scale 1 → 4 until all 4 healthy: 7.5 s") || !strings.Contains(rows["P10"].Detail, "hello 7.3 MB") {
		t.Errorf("P10 %+v", rows["P10"])
	}
	// P2 had no docker stats: its replica is listed without figures, and the gap is reported.
	var p3 []Replica
	for _, r := range res.Replicas {
		if r.Phase == "P3" {
			p3 = append(p3, r)
		}
	}
	if len(p3) != 4 || p3[0].Container == "" && p3[1].Container == "" {
		t.Fatalf("P3 replicas %+v", p3)
	}
	for _, r := range p3 {
		if r.ServedBy == "10.0.1.7" && (r.MemMiB != 7.25 || r.CPUPercent != 15 || r.Container != "goblog_accountservice.1.t1") {
			t.Errorf("replica 10.0.1.7 %+v: want joined with its container's stats", r)
		}
	}
	if len(res.Problems) == 0 || !strings.Contains(strings.Join(res.Problems, "\n"), "P2 replicas") {
		t.Errorf("problems %v: want the missing P2 docker stats named", res.Problems)
	}
	if len(res.Stack) != 2 || res.Stack[0].Phase != "P3" || res.Stack[0].Name != "goblog_accountservice.1.t1" {
		t.Errorf("stack usage %+v: want P3's two sampled containers", res.Stack)
	}
	var b bytes.Buffer
	if err := Markdown(&b, res); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"# goblog benchmark 2026-11-22T12:00:00Z", "- mode: dnsrr", "| P1 |", "| P10 |", "## accountservice replicas", "goblog_accountservice.1.t1", "## images (P10)", "## stack containers during the holds", "## not measured"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestBuildEmptyDir(t *testing.T) {
	res := Build(t.TempDir())
	if len(res.Rows) != 7 {
		t.Fatalf("%d rows, want P1, P2, P3, P4, P5, P9, P10 even without data", len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.ID != "P10" && r.Met != "—" {
			t.Errorf("row %+v claims a result without data", r)
		}
	}
	if len(res.Problems) == 0 {
		t.Error("no problems reported for an empty run")
	}
}
