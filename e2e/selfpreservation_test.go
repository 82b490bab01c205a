//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/turbine/api"
)

// Issue 16's figures of the accountservice publisher (its defaults: -token-interval,
// -token-ttl) and of the outage.
const (
	spHeartbeat = 5 * time.Second  // accountservice's token interval
	spTTL       = 3 * spHeartbeat  // its ttlSeconds
	spOutage    = 60 * time.Second // how long the broker stays away
	// spRecovery bounds "30 s after the broker is back heartbeats are current again".
	spRecovery = 30 * time.Second
	// spEvictSlack is the expiry tick (250 ms) plus this test's polling (250 ms and a request).
	spEvictSlack = 2 * time.Second
)

// spAllTasks lists every task swarm ever made for name (running or not) that it still
// remembers: a restart of a task is a new ID here.
func spAllTasks(t *testing.T, name string) []string {
	t.Helper()
	ids := strings.Fields(Docker(t, "service", "ps", "-q", "--no-trunc", Service(name)))
	slices.Sort(ids)
	return ids
}

// spAccounts is turbine's view of accountservice, by instance ID.
func spAccounts(c *http.Client) (map[string]api.Instance, error) {
	insts, err := tbInstances(nil, c)
	if err != nil {
		return nil, err
	}
	out := map[string]api.Instance{}
	for _, in := range insts {
		if in.Service == "accountservice" {
			out[in.InstanceID] = in
		}
	}
	return out, nil
}

// spCode is the status code of a GET on turbine (0 when it did not answer).
func spCode(c *http.Client, path string) int {
	code, _, err := CallErr(c, http.MethodGet, TurbineURL+path)
	if err != nil {
		return 0
	}
	return code
}

// spReplicas is the desired replica count of name.
func spReplicas(t *testing.T, name string) string {
	t.Helper()
	return Docker(t, "service", "inspect", "--format", "{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}", Service(name))
}

// TestTurbineSelfPreservationThroughABrokerOutage is issue 16's part 2 on the deployed stack:
// with three accountservice instances publishing tokens, the broker is scaled to 0 for 60 s.
// Turbine must evict nobody (all three stay listed, protected once past their TTL), keep every
// metrics stream connected (no re-dial), keep answering, and not be restarted by swarm (its
// container health check is liveness, not the broker-dependent readiness). Within 30 s of the
// broker being back every instance's heartbeat is current again. Then one instance's process
// is SIGKILLed: a single silent instance is still evicted within three heartbeat intervals.
// It leaves the broker and accountservice at one replica each, even when it fails.
func TestTurbineSelfPreservationThroughABrokerOutage(t *testing.T) {
	testStart := time.Now()
	c := NewClient()
	c.Timeout = 5 * time.Second
	WaitFor(t, 2*time.Minute, "turbine ready (subscribed to the broker)", func() (bool, string) {
		code := spCode(c, api.PathHealth)
		return code == http.StatusOK, fmt.Sprintf("GET /health: %d", code)
	})
	scaled := KeepReplicas(t, "accountservice", 3)
	listed := waitTurbineMatchesTasks(t, c, time.Minute)
	t.Logf("accountservice scaled to 3 in %s; turbine listed all three with connected streams %s later",
		scaled.Round(time.Millisecond), listed.Round(time.Millisecond))

	turbineTasks := spAllTasks(t, "turbine")
	turbineRunning := RunningTasks(t, "turbine")
	if len(turbineRunning) != 1 {
		t.Fatalf("turbine runs %d tasks, want 1", len(turbineRunning))
	}
	start, err := spAccounts(c)
	if err != nil || len(start) != 3 {
		t.Fatalf("turbine's accountservice instances before the outage: %v %v", start, err)
	}
	before := tbStatsNow(t, c)

	// --- The outage. ----------------------------------------------------------------------
	t.Cleanup(func() {
		if spReplicas(t, "rabbitmq") != "1" {
			Scale(t, "rabbitmq", 1)
		}
	})
	scaleDown := time.Now()
	Docker(t, "service", "scale", "--detach", Service("rabbitmq")+"=0")
	noticed := WaitFor(t, 30*time.Second, "turbine's readiness says the broker is gone", func() (bool, string) {
		code := spCode(c, api.PathHealth)
		return code == http.StatusServiceUnavailable, fmt.Sprintf("GET /health: %d", code)
	})
	outageStart := time.Now()
	t.Logf("broker scaled to 0: turbine's /health went 503 %s after the scale command", noticed.Round(time.Millisecond))

	var (
		polls, unanswered, notLive int
		problems                   []string
		allProtectedAfter          time.Duration
		last                       map[string]api.Instance
	)
	for time.Since(outageStart) < spOutage {
		polls++
		if code := spCode(c, api.PathLive); code != http.StatusOK {
			notLive++
		}
		now, err := spAccounts(c)
		switch {
		case err != nil:
			unanswered++
			if len(problems) < 5 {
				problems = append(problems, fmt.Sprintf("%s: %v", time.Since(outageStart).Round(time.Second), err))
			}
		default:
			last = now
			protected := 0
			for id, in := range start {
				got, ok := now[id]
				switch {
				case !ok:
					problems = append(problems, fmt.Sprintf("%s: %s (%s) evicted", time.Since(outageStart).Round(time.Second), id, in.Address))
				case !got.StreamConnected || got.Dials != in.Dials:
					problems = append(problems, fmt.Sprintf("%s: %s (%s) stream connected %v, dials %d → %d",
						time.Since(outageStart).Round(time.Second), id, in.Address, got.StreamConnected, in.Dials, got.Dials))
				case got.Protected:
					protected++
				}
			}
			if protected == len(start) && allProtectedAfter == 0 {
				allProtectedAfter = time.Since(outageStart)
			}
		}
		if len(problems) > 20 {
			break
		}
		time.Sleep(time.Second)
	}
	outage := time.Since(outageStart)
	if unanswered > 0 || notLive > 0 || len(problems) > 0 {
		restarted := "turbine's tasks unchanged"
		if got := spAllTasks(t, "turbine"); !slices.Equal(got, turbineTasks) {
			restarted = fmt.Sprintf("SWARM RESTARTED TURBINE (its registry was lost): tasks before %v, now %v", turbineTasks, got)
		}
		t.Fatalf("during %s of broker outage (%d polls): /api/instances unanswered %d times, /-/live not 200 %d times; %s; problems: %s",
			outage.Round(time.Millisecond), polls, unanswered, notLive, restarted, strings.Join(problems, "; "))
	}
	if allProtectedAfter == 0 {
		t.Fatalf("after %s of broker outage (TTL %s) not every instance was marked protected: %+v", outage.Round(time.Millisecond), spTTL, last)
	}
	during := tbStatsNow(t, c)
	if during.Consumer.Subscribed || during.Registry.Subscribed {
		t.Fatalf("turbine says it is subscribed with the broker at 0 replicas: consumer %+v", during.Consumer)
	}
	if during.Protected < len(start) || during.Registry.Protected < len(start) {
		t.Fatalf("/api/stats counts %d protected (registry %d), want at least %d", during.Protected, during.Registry.Protected, len(start))
	}
	t.Logf("broker away %s: %d polls of /api/instances, every one answered with all %d instances and their streams connected (no re-dial); all protected %s into the outage (TTL %s)",
		outage.Round(time.Millisecond), polls, len(start), allProtectedAfter.Round(time.Millisecond), spTTL)

	// --- The broker is back. -------------------------------------------------------------
	brokerBack := Scale(t, "rabbitmq", 1)
	backAt := time.Now()
	var resubscribed time.Duration
	current := WaitFor(t, spRecovery, "every instance's heartbeat current again", func() (bool, string) {
		if resubscribed == 0 && spCode(c, api.PathHealth) == http.StatusOK {
			resubscribed = time.Since(backAt)
		}
		now, err := spAccounts(c)
		if err != nil {
			return false, err.Error()
		}
		var stale []string
		for id, in := range last {
			got, ok := now[id]
			if !ok || !got.LastSeen.After(in.LastSeen) || got.Protected || !got.StreamConnected {
				stale = append(stale, fmt.Sprintf("%s listed %v lastSeen %s protected %v connected %v", id, ok,
					got.LastSeen.Format(time.RFC3339Nano), got.Protected, got.StreamConnected))
			}
		}
		return len(stale) == 0, strings.Join(stale, "; ")
	})
	after := tbStatsNow(t, c)
	if d := after.Registry.Removed - before.Registry.Removed; d != 0 {
		t.Fatalf("%d instances removed across the outage, want none: registry before %+v, after %+v", d, before.Registry, after.Registry)
	}
	if after.Consumer.Subscribes <= before.Consumer.Subscribes {
		t.Fatalf("turbine did not subscribe again: consumer before %+v, after %+v", before.Consumer, after.Consumer)
	}
	if got := spAllTasks(t, "turbine"); !slices.Equal(got, turbineTasks) {
		t.Fatalf("swarm restarted turbine: tasks before %v, after %v", turbineTasks, got)
	}
	if now := RunningTasks(t, "turbine"); len(now) != 1 || now[0].ContainerID != turbineRunning[0].ContainerID {
		t.Fatalf("turbine's container changed: before %+v, after %+v", turbineRunning, now)
	}
	t.Logf("broker scaled back to 1: running and healthy %s after the command (outage %s from scale-down); turbine subscribed again %s later, every heartbeat current %s later; nobody evicted, turbine's task and container unchanged (%d tasks in its history)",
		brokerBack.Round(time.Millisecond), backAt.Sub(scaleDown).Round(time.Millisecond), resubscribed.Round(time.Millisecond),
		current.Round(time.Millisecond), len(turbineTasks))

	// --- One instance killed: still evicted after its TTL. ---------------------------------
	waitTurbineMatchesTasks(t, c, time.Minute)
	victim := RunningTasks(t, "accountservice")[0]
	insts, err := spAccounts(c)
	if err != nil {
		t.Fatal(err)
	}
	var victimID string
	var victimSeen time.Time
	for id, in := range insts {
		if in.Address == victim.IP {
			victimID, victimSeen = id, in.LastSeen
		}
	}
	if victimID == "" {
		t.Fatalf("task %s not in turbine's list %+v", victim.IP, insts)
	}
	preKill := tbStatsNow(t, c)
	Docker(t, "kill", "--signal", "KILL", victim.ContainerID)
	wasProtected := false
	evicted := WaitFor(t, spTTL+spEvictSlack, "the SIGKILLed instance evicted", func() (bool, string) {
		now, err := spAccounts(c)
		if err != nil {
			return false, err.Error()
		}
		in, ok := now[victimID]
		if ok && in.Protected {
			wasProtected = true
		}
		if ok {
			victimSeen = in.LastSeen
		}
		return !ok, fmt.Sprintf("%s (%s) still listed, last seen %s", victimID, victim.IP, victimSeen.Format(time.RFC3339Nano))
	})
	goneAt := time.Now()
	postKill := tbStatsNow(t, c)
	if wasProtected {
		t.Fatalf("the one SIGKILLed instance of three was marked protected")
	}
	if d := postKill.Registry.RemovedTTL - preKill.Registry.RemovedTTL; d != 1 || postKill.Registry.Removed-preKill.Registry.Removed != 1 {
		t.Fatalf("removals after the kill: %d by TTL, want exactly the victim: registry before %+v, after %+v", d, preKill.Registry, postKill.Registry)
	}
	t.Logf("SIGKILLed %s (%s): evicted by TTL %s after the kill, %s after its last heartbeat (TTL %s = 3 heartbeat intervals)",
		victimID, victim.IP, evicted.Round(time.Millisecond), goneAt.Sub(victimSeen).Round(time.Millisecond), spTTL)

	WaitFor(t, 2*time.Minute, "swarm replaced the killed task", func() (bool, string) { return Converged(Service("accountservice")) })
	d := waitTurbineMatchesTasks(t, c, time.Minute)
	t.Logf("the replacement listed with a connected stream %s after convergence; the whole test took %s", d.Round(time.Millisecond), time.Since(testStart).Round(time.Millisecond))
}

// TestTurbineVerifiesATenantsInstances is issue 16's part 1 for turbine: an accountservice
// deployed as a tenant's swarm service (labels goblog.tenant and goblog.service=accountservice,
// publishing tokens as service "accountservice") is verified through the swarmwatcher's
// ?logical= answer, streamed, and listed with the watcher's tenant; ?cluster=<svc>@<tenant>
// is accepted and a malformed tenant refused. It creates its own tenant service (named apart
// from the stack's canary, which may run beside it) and removes it.
func TestTurbineVerifiesATenantsInstances(t *testing.T) {
	const (
		tenantName = "e2e-shadow"
		svc        = Stack + "_e2e-accountservice-shadow"
	)
	c := NewClient()
	image := Docker(t, "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", Service("accountservice"))
	_, _ = DockerErr("service", "rm", svc)
	t.Cleanup(func() { _, _ = DockerErr("service", "rm", svc) })
	start := time.Now()
	Docker(t, "service", "create", "--detach", "--name", svc,
		"--label", "goblog.tenant="+tenantName, "--label", "goblog.service=accountservice", "--label", "swarmwatcher.port=6767",
		"--network", Stack+"_net", "--endpoint-mode", "dnsrr", "--health-interval", testHealthInterval,
		"--secret", "goblog_amqp_publisher_url", "--env", "AMQP_URL_FILE=/run/secrets/goblog_amqp_publisher_url",
		"--env", "SELF_DNS=tasks."+svc, "--env", "QUOTES_URL=http://quotes-service:8080",
		image)
	WaitFor(t, 2*time.Minute, svc+" running", func() (bool, string) { return Converged(svc) })
	var ip string
	WaitFor(t, time.Minute, svc+"'s task address", func() (bool, string) {
		ip = strings.TrimSpace(Docker(t, "inspect", "--type", "task", "--format",
			`{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "`+Stack+`_net"}}{{index .Addresses 0}}{{end}}{{end}}`,
			strings.Fields(Docker(t, "service", "ps", "-q", "--filter", "desired-state=running", svc))[0]))
		ip, _, _ = strings.Cut(ip, "/")
		return ip != "", "no address yet"
	})
	var tenantInst api.Instance
	listed := WaitFor(t, time.Minute, "turbine lists the tenant's instance verified, with its tenant, stream connected", func() (bool, string) {
		insts, err := tbInstances(t, c)
		if err != nil {
			return false, err.Error()
		}
		for _, in := range insts {
			if in.Address == ip {
				tenantInst = in
				return in.Service == "accountservice" && in.Verified && in.Tenant == tenantName && in.StreamConnected,
					fmt.Sprintf("%+v", in)
			}
		}
		return false, fmt.Sprintf("%s not listed among %d instances", ip, len(insts))
	})
	insts, err := tbInstances(t, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if in.Service == "accountservice" && in.Address != ip && in.Tenant != "" {
			t.Errorf("a plain accountservice instance listed with tenant %q: %+v", in.Tenant, in)
		}
	}
	for cluster, want := range map[string]int{"accountservice@" + tenantName: http.StatusOK, "@" + tenantName: http.StatusOK,
		"accountservice@": http.StatusOK, "accountservice@no%20tenant": http.StatusBadRequest, "@": http.StatusBadRequest} {
		code, body := spStreamCode(t, cluster)
		if code != want {
			t.Errorf("/turbine.stream?cluster=%s: %d %s, want %d", cluster, code, body, want)
		}
	}
	t.Logf("tenant service %s (%s) created; turbine listed its instance %s verified, tenant %q, stream connected %s after the create command (%s after it converged)",
		svc, ip, tenantInst.InstanceID, tenantInst.Tenant, time.Since(start).Round(time.Millisecond), listed.Round(time.Millisecond))
}

// spStreamCode opens /turbine.stream?cluster=<cluster> (cluster already query-escaped) and
// returns the status, and the body of a refusal.
func spStreamCode(t *testing.T, cluster string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, TurbineURL+api.PathStream+"?"+api.QueryCluster+"="+cluster, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /turbine.stream?cluster=%s: %v", cluster, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return resp.StatusCode, string(b)
	}
	return resp.StatusCode, ""
}
