//go:build e2e

package e2e

// The gatling load test (issues 6 and 14) end to end: a short real run of
// the tool through the edge against two accountservice replicas, with
// -assert ko=0 so the tool itself fails on any KO (exit 1). The per-replica
// counts (servedBy) must add up to the total, name only the service's task
// IPs; OK and KO latencies come apart (koLatencyMs all null when nothing
// failed), the ranges add up, and the report must be written. Latency
// figures are logged, never asserted.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGatlingThroughTheEdge(t *testing.T) {
	bin := buildGatling(t)

	took := KeepReplicas(t, "accountservice", 2)
	tasks := RunningTasks(t, "accountservice")
	taskIPs := map[string]bool{}
	for _, task := range tasks {
		taskIPs[task.IP] = true
	}
	t.Logf("accountservice scaled to 2 in %s: %v", took.Round(time.Millisecond), taskIPs)

	// Both replicas answer through the edge before the run starts.
	seen := map[string]bool{}
	c := NewClient()
	WaitFor(t, time.Minute, "both replicas answering through the edge", func() (bool, string) {
		var a struct{ ServedBy string }
		if code, body, err := CallErr(c, "GET", EdgeURL+"/accounts/10000"); err == nil && code == 200 && json.Unmarshal(body, &a) == nil {
			seen[a.ServedBy] = true
		}
		return len(seen) >= 2, fmt.Sprintf("seen %v", seen)
	})

	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-base-url", EdgeURL, "-users", "20", "-ramp", "2s", "-duration", "8s",
		"-pause", "100ms", "-max-requests-per-conn", "10", "-out", out, "-assert", "ko=0", "-assert", "requests>=200")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// Exit 1 with the report written: an assertion failed, the summary says which.
		t.Fatalf("gatling: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("gatling summary:\n%s", stdout.String())
	for _, want := range []string{"assertion ko=0: passed", "assertion requests>=200: passed", "t < 800 ms", "failed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "users 20 active") {
		t.Errorf("no progress line with all users active on stderr:\n%s", stderr.String())
	}

	b, err := os.ReadFile(filepath.Join(out, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Requests    struct{ Total, OK, KO int64 }
		ReqPerSec   float64
		LatencyMs   struct{ P50, P99, Max *float64 }
		KOLatencyMs map[string]*float64
		Ranges      []struct {
			Name  string
			Count int64
		}
		Assertions []struct {
			Expression string
			Passed     bool
		}
		ServedBy map[string]int64
		Errors   map[string]int64
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("stats.json: %v", err)
	}
	if s.LatencyMs.P50 == nil || s.LatencyMs.P99 == nil || s.LatencyMs.Max == nil {
		t.Fatalf("latencyMs has nulls after %d OK responses: %s", s.Requests.OK, b)
	}
	if len(s.KOLatencyMs) != 7 {
		t.Errorf("koLatencyMs %v: want its seven fields", s.KOLatencyMs)
	}
	for k, v := range s.KOLatencyMs {
		if v != nil {
			t.Errorf("koLatencyMs.%s = %v without a KO response: want null", k, *v)
		}
	}
	var ranged int64
	for _, r := range s.Ranges {
		ranged += r.Count
	}
	if len(s.Ranges) != 4 || ranged != s.Requests.Total || s.Ranges[3].Name != "failed" || s.Ranges[3].Count != s.Requests.KO {
		t.Errorf("ranges %+v do not add up to the %d requests", s.Ranges, s.Requests.Total)
	}
	if len(s.Assertions) != 2 || !s.Assertions[0].Passed || !s.Assertions[1].Passed {
		t.Errorf("assertions in stats.json: %+v", s.Assertions)
	}
	if s.Requests.Total < 200 {
		t.Fatalf("only %d requests in a run of 20 users for 8 s with 100 ms pauses", s.Requests.Total)
	}
	if s.Requests.KO != 0 {
		t.Errorf("%d KO of %d: %v", s.Requests.KO, s.Requests.Total, s.Errors)
	}
	var sum int64
	for ip, n := range s.ServedBy {
		sum += n
		if !taskIPs[ip] {
			t.Errorf("servedBy %q (%d answers) is not a running accountservice task (%v)", ip, n, taskIPs)
		}
	}
	if sum != s.Requests.Total {
		t.Errorf("per-replica counts %v add up to %d, want the total %d", s.ServedBy, sum, s.Requests.Total)
	}
	if len(s.ServedBy) != 2 {
		t.Errorf("servedBy %v: want both replicas to have answered", s.ServedBy)
	}
	t.Logf("%d requests, %.1f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, ranges %+v, per replica %v",
		s.Requests.Total, s.ReqPerSec, *s.LatencyMs.P50, *s.LatencyMs.P99, *s.LatencyMs.Max, s.Ranges, s.ServedBy)

	page, err := os.ReadFile(filepath.Join(out, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"chart-percentiles", "chart-throughput", "chart-distribution", "chart-replicas", "chart-ranges"} {
		if !strings.Contains(string(page), `id="`+id+`"`) {
			t.Errorf("index.html has no chart %s", id)
		}
	}
}

// buildGatling builds the load-test command into the test's temporary folder.
func buildGatling(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gatling")
	build := exec.Command("go", "build", "-o", bin, "./gatling")
	build.Dir = RepoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./gatling: %v\n%s", err, out)
	}
	return bin
}
