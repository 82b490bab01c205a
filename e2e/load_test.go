//go:build e2e

package e2e

// Day 2 under load (issue 12): a short run of the tutorial's workload through
// the edge while accountservice is scaled 4 -> 2 -> 4 and rolled with
// `docker service update --force`. Every request must succeed: the edge drains
// a leaving task and retries on another one, and a busy task is never killed
// for it. Figures are logged; the assertion is 0 KO.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSurvivesScaleAndRoll(t *testing.T) {
	bin := buildGatling(t)
	KeepReplicas(t, "accountservice", 4)
	replacedBefore := replacedTasks(t)

	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// 300 users, 1 s pauses: about 300 requests a second for 60 s.
	cmd := exec.CommandContext(ctx, bin, "-baseUrl", EdgeURL, "-users", "300", "-ramp", "5s", "-duration", "60s",
		"-pause", "1s", "-quiet", "-out", out)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	svc := Service("accountservice")
	step := func(what string, args ...string) {
		start := time.Now()
		Docker(t, args...)
		WaitFor(t, 3*time.Minute, what, func() (bool, string) { return Converged(svc) })
		t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(8 * time.Second) // every user running
	step("scale 4 -> 2", "service", "scale", "--detach", svc+"=2")
	step("scale 2 -> 4", "service", "scale", "--detach", svc+"=4")
	step("roll with --force", "service", "update", "--detach", "--force", svc)

	if err := <-done; err != nil {
		t.Fatalf("gatling: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("gatling summary:\n%s", stdout.String())
	b, err := os.ReadFile(filepath.Join(out, "stats.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Requests  struct{ Total, OK, KO int64 }
		ReqPerSec float64
		LatencyMs struct{ P50, P99, Max float64 }
		Errors    map[string]int64
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("stats.json: %v", err)
	}
	t.Logf("%d requests, %d KO, %.0f req/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %v",
		s.Requests.Total, s.Requests.KO, s.ReqPerSec, s.LatencyMs.P50, s.LatencyMs.P99, s.LatencyMs.Max, s.Errors)
	if s.Requests.Total < 3000 {
		t.Fatalf("only %d requests: the load did not run", s.Requests.Total)
	}
	if s.Requests.KO != 0 {
		t.Errorf("%d of %d requests failed while accountservice was scaled and rolled: %v", s.Requests.KO, s.Requests.Total, s.Errors)
	}
	if n := replacedTasks(t) - replacedBefore; n != 0 {
		t.Errorf("swarm replaced %d task(s) of the stack for failing health checks during the run", n)
	}
}

// replacedTasks counts the stack's tasks that ended because their container
// became unhealthy (swarm replaced them), as `docker service ps` reports.
func replacedTasks(t *testing.T) int {
	t.Helper()
	n := 0
	for _, name := range []string{"edge", "accountservice", "quotes-service"} {
		out := Docker(t, "service", "ps", "--no-trunc", "--format", "{{.Error}}", Service(name))
		n += strings.Count(out, "unhealthy")
	}
	return n
}
