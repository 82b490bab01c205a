//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/goblog/goblog/turbine/api"
)

func tbInstances(t testing.TB, c *http.Client) ([]api.Instance, error) {
	code, body, err := CallErr(c, http.MethodGet, TurbineURL+api.PathInstances)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/instances: %d %s", code, body)
	}
	var out []api.Instance
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GET /api/instances: %w: %q", err, body)
	}
	return out, nil
}

func tbStatsNow(t testing.TB, c *http.Client) api.Stats {
	var s api.Stats
	if code := Call(t, c, http.MethodGet, TurbineURL+api.PathStats, &s); code != http.StatusOK {
		t.Fatalf("GET /api/stats: %d", code)
	}
	return s
}

// accountAddrs is the set of accountservice addresses turbine lists (connected only, if asked).
func accountAddrs(insts []api.Instance, connectedOnly bool) []string {
	var out []string
	for _, in := range insts {
		if in.Service == "accountservice" && (!connectedOnly || in.StreamConnected) {
			out = append(out, in.Address)
		}
	}
	slices.Sort(out)
	return out
}

func taskAddrs(tasks []Task) []string {
	var out []string
	for _, task := range tasks {
		out = append(out, task.IP)
	}
	slices.Sort(out)
	return out
}

// waitTurbineMatchesTasks waits until turbine lists exactly accountservice's running tasks,
// each with a connected metrics stream.
func waitTurbineMatchesTasks(t *testing.T, c *http.Client, within time.Duration) time.Duration {
	t.Helper()
	return WaitFor(t, within, "turbine lists every running accountservice task with a connected stream", func() (bool, string) {
		want := taskAddrs(RunningTasks(t, "accountservice"))
		insts, err := tbInstances(t, c)
		if err != nil {
			return false, err.Error()
		}
		got := accountAddrs(insts, true)
		return slices.Equal(got, want) && len(accountAddrs(insts, false)) == len(want),
			fmt.Sprintf("tasks %v, turbine (connected) %v, turbine (all) %v", want, got, accountAddrs(insts, false))
	})
}

// waitReportingHosts reads /turbine.stream until the quote circuit's aggregate reports n hosts.
func waitReportingHosts(t *testing.T, n int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, TurbineURL+"/turbine.stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /turbine.stream: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("GET /turbine.stream: Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	last := "nothing"
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var s struct {
			Type           string `json:"type"`
			Name           string `json:"name"`
			ReportingHosts int    `json:"reportingHosts"`
			RequestCount   int    `json:"requestCount"`
		}
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			t.Fatalf("/turbine.stream sent invalid JSON: %v: %q", err, data)
		}
		if s.Type == "HystrixCommand" && s.Name == "quotes-service" {
			last = fmt.Sprintf("reportingHosts %d, requestCount %d", s.ReportingHosts, s.RequestCount)
			if s.ReportingHosts == n {
				return time.Since(start)
			}
		}
	}
	t.Fatalf("/turbine.stream: reportingHosts %d not seen within %s; last: %s (%v)", n, within, last, sc.Err())
	return 0
}

// TestTurbineFollowsScaling scales accountservice to 3, checks that turbine discovers every
// task through the discovery tokens and aggregates their three streams, SIGKILLs one task
// (no DOWN: it must be evicted after its TTL) and scales back to 1 (two DOWNs: removed at
// once). It leaves accountservice at one replica.
func TestTurbineFollowsScaling(t *testing.T) {
	c := NewClient()
	WaitFor(t, 2*time.Minute, "turbine healthy (subscribed to the broker)", func() (bool, string) {
		code, body, err := CallErr(c, http.MethodGet, TurbineURL+"/health")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
	start := tbStatsNow(t, c)
	d := waitTurbineMatchesTasks(t, c, time.Minute)
	t.Logf("turbine lists the one accountservice task with its stream connected (%s)", d.Round(time.Millisecond))

	// Scale to 3: every task announces itself once swarm DNS confirms its address.
	scaleTook := KeepReplicas(t, "accountservice", 3)
	d = waitTurbineMatchesTasks(t, c, time.Minute)
	t.Logf("scaled to 3 in %s; turbine listed all 3 with connected streams %s later", scaleTook.Round(time.Millisecond), d.Round(time.Millisecond))
	d = waitReportingHosts(t, 3, time.Minute)
	t.Logf("/turbine.stream reports reportingHosts 3 (%s)", d.Round(time.Millisecond))

	// SIGKILL one task's container: no DOWN, so turbine must evict it after its TTL (15 s),
	// and swarm's replacement must show up.
	before := tbStatsNow(t, c)
	victim := RunningTasks(t, "accountservice")[0]
	insts, err := tbInstances(t, c)
	if err != nil {
		t.Fatal(err)
	}
	victimID := ""
	for _, in := range insts {
		if in.Address == victim.IP {
			victimID = in.InstanceID
		}
	}
	if victimID == "" {
		t.Fatalf("task %s not in turbine's list %+v", victim.IP, insts)
	}
	Docker(t, "kill", "--signal", "KILL", victim.ContainerID)
	evicted := WaitFor(t, time.Minute, "the SIGKILLed task evicted from turbine", func() (bool, string) {
		insts, err := tbInstances(t, c)
		if err != nil {
			return false, err.Error()
		}
		for _, in := range insts {
			if in.InstanceID == victimID {
				return false, fmt.Sprintf("%s (%s) still listed, last seen %s", victimID, victim.IP, in.LastSeen.Format(time.RFC3339Nano))
			}
		}
		return true, ""
	})
	after := tbStatsNow(t, c)
	if after.Registry.RemovedTTL <= before.Registry.RemovedTTL {
		t.Fatalf("the SIGKILLed task was not removed by TTL expiry: registry stats before %+v, after %+v", before.Registry, after.Registry)
	}
	t.Logf("SIGKILLed task %s evicted by TTL %s after the kill (TTL 15 s, heartbeat 5 s)", victim.IP, evicted.Round(time.Millisecond))
	WaitFor(t, 2*time.Minute, "swarm replaced the killed task", func() (bool, string) { return Converged(Service("accountservice")) })
	d = waitTurbineMatchesTasks(t, c, time.Minute)
	t.Logf("the replacement task listed with a connected stream (%s after convergence)", d.Round(time.Millisecond))

	// Scale to 1: the two tasks stopped get SIGTERM and say DOWN before they exit.
	before = tbStatsNow(t, c)
	Docker(t, "service", "scale", "--detach", Service("accountservice")+"=1")
	gone := WaitFor(t, time.Minute, "turbine lists one accountservice instance", func() (bool, string) {
		insts, err := tbInstances(t, c)
		if err != nil {
			return false, err.Error()
		}
		n := len(accountAddrs(insts, false))
		return n == 1, fmt.Sprintf("%d listed", n)
	})
	after = tbStatsNow(t, c)
	if down := after.Registry.RemovedDown - before.Registry.RemovedDown; down != 2 {
		t.Fatalf("%d instances removed by DOWN after scaling 3 → 1, want 2 (registry stats before %+v, after %+v)", down, before.Registry, after.Registry)
	}
	t.Logf("scaled 3 → 1: both stopped instances removed by their DOWN %s after the scale command", gone.Round(time.Millisecond))
	WaitFor(t, 2*time.Minute, "accountservice back to 1", func() (bool, string) { return Converged(Service("accountservice")) })
	waitReportingHosts(t, 1, time.Minute)
	// Counters before and after, never absolute values: a user may have sent bad tokens
	// before the test ran.
	if s := tbStatsNow(t, c); !s.Consumer.Subscribed || s.Consumer.Malformed != start.Consumer.Malformed {
		t.Fatalf("turbine's consumer: before the test %+v, after %+v (no malformed token was sent meanwhile)", start.Consumer, s.Consumer)
	}
}

// brokerPublisher is the broker user a token publisher may use: the publisher of
// ${XDG_CONFIG_HOME:-$HOME/.config}/goblog/broker.env when ./copyall.sh wrote one, then
// guest (a broker deployed before per-user credentials).
func brokerPublishers(t *testing.T) []url.Userinfo {
	t.Helper()
	var out []url.Userinfo
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "goblog", "broker.env")); err == nil {
		vals := map[string]string{}
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				vals[k] = strings.Trim(v, `"'`)
			}
		}
		if u, p := vals["GOBLOG_AMQP_PUBLISHER_USER"], vals["GOBLOG_AMQP_PUBLISHER_PASSWORD"]; u != "" && p != "" {
			out = append(out, *url.UserPassword(u, p))
		}
	}
	return append(out, *url.UserPassword("guest", "guest"))
}

// startDecoy runs a real accountservice as a plain container on the stack network: not a
// swarm task, yet it announces itself (its own address on the stack network, a real
// Hystrix stream on 8181) through the broker like any instance. It returns the container's
// address once turbine lists it.
func startDecoy(t *testing.T, c *http.Client) string {
	t.Helper()
	const name = "goblog-e2e-turbine-decoy"
	_, _ = DockerErr("rm", "-f", name)
	t.Cleanup(func() { _, _ = DockerErr("rm", "-f", name) })
	for _, user := range brokerPublishers(t) {
		amqpURL := (&url.URL{Scheme: "amqp", User: &user, Host: "rabbitmq:5672", Path: "/"}).String()
		Docker(t, "run", "-d", "--name", name, "--network", Stack+"_net", "--network-alias", name,
			"-e", "SELF_DNS="+name, "-e", "AMQP_URL="+amqpURL, "-e", "AMQP_URL_FILE=",
			"goblog/accountservice:latest")
		ip := strings.TrimSpace(Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+Stack+`_net").IPAddress}}`, name))
		if ip == "" {
			t.Fatalf("decoy %s has no address on %s_net", name, Stack)
		}
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) {
			insts, err := tbInstances(t, c)
			if err == nil {
				for _, in := range insts {
					if in.Address == ip {
						t.Logf("decoy %s announced %s:%d as %s (broker user %s)", name, in.Address, in.Port, in.Service, user.Username())
						return ip
					}
				}
			}
			time.Sleep(time.Second)
		}
		t.Logf("turbine did not list the decoy with broker user %s; logs: %s", user.Username(), lastLines(DockerErr("logs", "--tail", "5", name)))
		_, _ = DockerErr("rm", "-f", name)
	}
	t.Fatal("the decoy's tokens never reached turbine with any broker user")
	return ""
}

func lastLines(out string, _ error) string { return strings.TrimSpace(out) }

// reportingHostsNow reads one HystrixCommand sample of the quote circuit from
// /turbine.stream?cluster=<cluster> and returns its reportingHosts.
func reportingHostsNow(t *testing.T, cluster string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, TurbineURL+api.PathStream+"?"+api.QueryCluster+"="+url.QueryEscape(cluster), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /turbine.stream: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var s struct {
			Type, Name     string
			ReportingHosts int `json:"reportingHosts"`
		}
		if json.Unmarshal([]byte(data), &s) == nil && s.Type == "HystrixCommand" && s.Name == "quotes-service" {
			return s.ReportingHosts
		}
	}
	t.Fatalf("/turbine.stream?cluster=%s: no quotes-service sample (%v)", cluster, sc.Err())
	return 0
}

// driveQuoteCircuit sends requests through the edge so every accountservice task's quote
// circuit has samples to report.
func driveQuoteCircuit(t *testing.T, n int) {
	t.Helper()
	c := NewClient()
	for i := range n {
		_, _, _ = CallErr(c, http.MethodGet, fmt.Sprintf("%s/accounts/%d", EdgeURL, 10000+i%100))
	}
}

// TestTurbineNeverDialsANonTaskAddress: an instance on the stack network that is no swarm
// task announces itself through the broker; turbine lists it unverified and never dials
// it, while it streams every real task.
func TestTurbineNeverDialsANonTaskAddress(t *testing.T) {
	c := NewClient()
	WaitFor(t, 2*time.Minute, "turbine ready (subscribed to the broker)", func() (bool, string) {
		code, body, err := CallErr(c, http.MethodGet, TurbineURL+api.PathHealth)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
	waitTurbineMatchesTasks(t, c, time.Minute)
	driveQuoteCircuit(t, 20)
	tasks := len(RunningTasks(t, "accountservice"))

	decoy := startDecoy(t, c)
	listed := tbStatsNow(t, c)
	// Several verification rounds (one a second) must pass with the decoy refused each time.
	WaitFor(t, time.Minute, "five verification rounds refuse the decoy", func() (bool, string) {
		now := tbStatsNow(t, c)
		return now.Streams.Unverified >= listed.Streams.Unverified+5,
			fmt.Sprintf("unverified %d → %d", listed.Streams.Unverified, now.Streams.Unverified)
	})
	insts, err := tbInstances(t, c)
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, in := range insts {
		switch {
		case in.Address == decoy:
			seen = true
			if in.Verified || in.Dials != 0 || in.StreamConnected {
				t.Fatalf("the decoy at %s: verified %v, dials %d, connected %v; want unverified and never dialled", decoy, in.Verified, in.Dials, in.StreamConnected)
			}
			t.Logf("decoy %s listed: verified %v, dials %d, streamConnected %v", decoy, in.Verified, in.Dials, in.StreamConnected)
		case in.Service == "accountservice":
			if !in.Verified || in.Dials == 0 || !in.StreamConnected {
				t.Errorf("real task %s: verified %v, dials %d, connected %v", in.Address, in.Verified, in.Dials, in.StreamConnected)
			}
		}
	}
	if !seen {
		t.Fatalf("the decoy %s is no longer listed: %+v", decoy, insts)
	}
	driveQuoteCircuit(t, 20)
	if n := reportingHostsNow(t, "accountservice"); n != tasks {
		t.Fatalf("/turbine.stream?cluster=accountservice reports %d hosts, %d tasks run (the decoy must not count)", n, tasks)
	}
	// The decoy goes (SIGKILL, no DOWN): turbine forgets it after its TTL.
	Docker(t, "rm", "-f", "goblog-e2e-turbine-decoy")
	WaitFor(t, time.Minute, "the decoy evicted", func() (bool, string) {
		insts, err := tbInstances(t, c)
		if err != nil {
			return false, err.Error()
		}
		for _, in := range insts {
			if in.Address == decoy {
				return false, "still listed"
			}
		}
		return true, ""
	})
}

// TestTurbineDashboardInABrowser renders turbine's page in Debian's chromium, one
// service's cluster, and checks the quote circuit's card against /turbine.stream and the
// instance table against /api/instances; the screenshot is kept in e2e/output/turbine.png.
func TestTurbineDashboardInABrowser(t *testing.T) {
	c := NewClient()
	waitTurbineMatchesTasks(t, c, 2*time.Minute)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // keep the circuit busy so the sparkline moves
		for {
			select {
			case <-stop:
				return
			default:
				driveQuoteCircuit(t, 5)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	tasks := len(RunningTasks(t, "accountservice"))

	ctx := Browser(t, 1280, 900, 3*time.Minute)
	eval := func(expr string) (string, error) { return Eval(ctx, expr) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate(TurbineURL+"/?cluster=accountservice"),
		chromedp.WaitVisible(chromedp.CSS(`.circuit[data-name="quotes-service"]`)),
	); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	card := `document.querySelector('.circuit[data-name="quotes-service"]')`
	WaitFor(t, time.Minute, "the card shows every task reporting, a rate and a sparkline", func() (bool, string) {
		hosts, _ := eval(card + `.dataset.hosts`)
		rate, _ := eval(card + `.querySelector(".rate").textContent`)
		points, _ := eval(card + `.querySelector("polyline").getAttribute("points").split(" ").length`)
		conn, _ := eval(`document.getElementById("conn-text").textContent`)
		rows, _ := eval(`document.querySelectorAll("#instances tr.instance").length`)
		npoints, _ := strconv.Atoi(points)
		return hosts == fmt.Sprint(tasks) && rate != "" && rate != "0.0" && npoints >= 10 && conn == "live" && rows == fmt.Sprint(tasks),
			fmt.Sprintf("hosts %s (tasks %d), rate %q, sparkline points %s, connection %q, instance rows %s", hosts, tasks, rate, points, conn, rows)
	})
	for _, q := range []string{".status", ".err", ".lat"} {
		if v, err := eval(card + `.querySelector("` + q + `").textContent`); err != nil || strings.TrimSpace(v) == "" {
			t.Errorf("card %s is empty (%v)", q, err)
		}
	}
	if v, _ := eval(`document.querySelectorAll('#instances tr.instance[data-verified="true"]').length`); v != fmt.Sprint(tasks) {
		t.Errorf("%s verified instance rows, want %d", v, tasks)
	}
	SaveScreenshot(t, ctx, "turbine.png")
}
