//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// tbInstance is one element of turbine's GET /api/instances.
type tbInstance struct {
	InstanceID      string    `json:"instanceId"`
	Service         string    `json:"service"`
	Address         string    `json:"address"`
	Port            int       `json:"port"`
	State           string    `json:"state"`
	LastSeen        time.Time `json:"lastSeen"`
	StreamConnected bool      `json:"streamConnected"`
}

type tbStats struct {
	Registry struct {
		Added       uint64 `json:"added"`
		RemovedDown uint64 `json:"removedDown"`
		RemovedTTL  uint64 `json:"removedTTL"`
	} `json:"registry"`
	Consumer struct {
		Malformed  uint64 `json:"malformed"`
		Subscribed bool   `json:"subscribed"`
	} `json:"consumer"`
}

func tbInstances(t testing.TB, c *http.Client) ([]tbInstance, error) {
	code, body, err := CallErr(c, http.MethodGet, TurbineURL+"/api/instances")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/instances: %d %s", code, body)
	}
	var out []tbInstance
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GET /api/instances: %w: %q", err, body)
	}
	return out, nil
}

func tbStatsNow(t testing.TB, c *http.Client) tbStats {
	var s tbStats
	if code := Call(t, c, http.MethodGet, TurbineURL+"/api/stats", &s); code != http.StatusOK {
		t.Fatalf("GET /api/stats: %d", code)
	}
	return s
}

// accountAddrs is the set of accountservice addresses turbine lists (connected only, if asked).
func accountAddrs(insts []tbInstance, connectedOnly bool) []string {
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
	// Counters a user of a deployed stack may have moved already: compared before/after only.
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
	if s := tbStatsNow(t, c); !s.Consumer.Subscribed || s.Consumer.Malformed != start.Consumer.Malformed {
		t.Fatalf("turbine's consumer after the test: %+v (malformed before: %d)", s.Consumer, start.Consumer.Malformed)
	}
}
