//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// readmeJob returns the Prometheus job block of swarmwatcher/README.md with
// its URL pointed at the watcher under test.
func readmeJob(t *testing.T, watcherURL string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot, "swarmwatcher", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- prometheus-job: begin -->\\s*```yaml\\n(.*?)```\\s*<!-- prometheus-job: end -->").FindSubmatch(b)
	if m == nil {
		t.Fatal("swarmwatcher/README.md has no prometheus-job block")
	}
	job := string(m[1])
	if !strings.Contains(job, "http://swarmwatcher:6969/api/sd") {
		t.Fatalf("the README's job does not read http://swarmwatcher:6969/api/sd:\n%s", job)
	}
	return strings.ReplaceAll(job, "http://swarmwatcher:6969", strings.TrimRight(watcherURL, "/"))
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// passingTargets reads /api/sd and returns the targets whose health label is
// passing, and all targets.
func passingTargets(c *http.Client) (passing, all []string, err error) {
	resp, err := c.Get(WatcherURL + "/api/sd")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var groups []api.TargetGroup
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&groups); err != nil {
		return nil, nil, err
	}
	for _, g := range groups {
		all = append(all, g.Targets...)
		if g.Labels[api.LabelHealth] == string(api.HealthPassing) {
			passing = append(passing, g.Targets...)
		}
	}
	slices.Sort(passing)
	slices.Sort(all)
	return passing, all, nil
}

// promTargets reads Prometheus' active and dropped targets of the job.
func promTargets(c *http.Client, base string) (active, dropped []string, err error) {
	resp, err := c.Get(base + "/api/v1/targets")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Active []struct {
				ScrapePool       string            `json:"scrapePool"`
				DiscoveredLabels map[string]string `json:"discoveredLabels"`
				Labels           map[string]string `json:"labels"`
			} `json:"activeTargets"`
			Dropped []struct {
				DiscoveredLabels map[string]string `json:"discoveredLabels"`
			} `json:"droppedTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, nil, err
	}
	for _, a := range body.Data.Active {
		if a.ScrapePool == "goblog-passing-tasks" {
			active = append(active, a.DiscoveredLabels["__address__"])
		}
	}
	for _, d := range body.Data.Dropped {
		dropped = append(dropped, d.DiscoveredLabels["__address__"])
	}
	slices.Sort(active)
	slices.Sort(dropped)
	return active, dropped, nil
}

// Debian's prometheus, configured with the README's job, scrapes exactly the
// tasks the watcher reports passing; the others are dropped by the relabel
// rule, not lost.
func TestSwarmwatcherPrometheusSD(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("Debian's prometheus is needed (apt-get install prometheus): " + err.Error())
	}
	dir := t.TempDir()
	cfg := "global:\n  scrape_interval: 5s\n" + readmeJob(t, WatcherURL)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	logs, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second}
	var last string
	took := WaitFor(t, 90*time.Second, "prometheus' active targets = the watcher's passing tasks", func() (bool, string) {
		passing, all, err := passingTargets(client)
		if err != nil {
			return false, err.Error()
		}
		active, dropped, err := promTargets(client, base)
		if err != nil {
			return false, err.Error()
		}
		var notPassing []string
		for _, a := range all {
			if !slices.Contains(passing, a) {
				notPassing = append(notPassing, a)
			}
		}
		droppedAll := true
		for _, n := range notPassing {
			droppedAll = droppedAll && slices.Contains(dropped, n)
		}
		last = fmt.Sprintf("watcher passing %v (of %d targets); prometheus active %v, dropped %d", passing, len(all), active, len(dropped))
		return len(passing) > 0 && slices.Equal(passing, active) && droppedAll, last
	})
	t.Logf("after %v: %s", took.Round(time.Millisecond), last)
}
