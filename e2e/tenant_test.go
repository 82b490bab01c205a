//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/tenant"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// TestTenantRouting: with the edge in watcher mode and accountservice's quote
// call too (both switched for the test, put back after), and both canaries
// scaled to 1 (back to 0 after), through the published edge:
//   - every request carrying X-Goblog-Tenant: canary is served by the canary
//     accountservice task and its quote comes from the canary quotes-service
//     task; no plain request reaches either (both hops);
//   - an invalid header is ignored (plain tasks) and counted by the edge;
//   - with quotes-service-canary scaled to 0, tenant requests still reach the
//     canary accountservice and their quotes come from the plain
//     quotes-service (fallback, counted by the canary accountservice), never
//     the circuit breaker's fallback quote.
//
// Tasks are told apart by address: servedBy and the quote's ipAddress name
// the task's IP on the stack network, and the watcher's
// /api/services?tenant=canary lists the canary tasks with theirs.
func TestTenantRouting(t *testing.T) {
	const n = 100
	rig := &discRig{client: NewClient()}
	// Both accountservices route their quote call by tenant; the edge by watcher.
	rig.setEnv(t, Service("accountservice-canary"), "QUOTES_DISCOVERY", "watcher")
	rig.setEnv(t, Service("accountservice"), "QUOTES_DISCOVERY", "watcher")
	rig.setEnv(t, Service("edge"), "EDGE_DISCOVERY", "watcher")
	WaitFor(t, 2*time.Minute, "the edge answering", func() (bool, string) {
		code, body, err := CallErr(NewClient(), http.MethodGet, EdgeURL+"/accounts/10000")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})

	var figures []string
	report := func(format string, args ...any) {
		figures = append(figures, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}
	t.Cleanup(func() { t.Logf("tenant routing figures:\n  %s", strings.Join(figures, "\n  ")) })

	for _, name := range []string{"quotes-service-canary", "accountservice-canary"} {
		t.Cleanup(func() { Scale(t, name, 0) })
		report("scale %s to 1: %s", name, Scale(t, name, 1).Round(time.Millisecond))
	}
	var canaryAcct, canaryQuotes map[string]bool
	took := WaitFor(t, 2*time.Minute, "the watcher reporting both canaries passing", func() (bool, string) {
		var err error
		canaryAcct, canaryQuotes, err = canaryTasks()
		return err == nil && len(canaryAcct) == 1 && len(canaryQuotes) == 1,
			fmt.Sprintf("accountservice %v, quotes-service %v, err %v", canaryAcct, canaryQuotes, err)
	})
	report("watcher: canary accountservice %v, quotes-service %v passing after %s", keys(canaryAcct), keys(canaryQuotes), took.Round(time.Millisecond))
	plainAcct, plainQuotes := taskIPs(t, "accountservice"), taskIPs(t, "quotes-service")

	// The feeds of the edge and of the canary accountservice catch up.
	took = WaitFor(t, time.Minute, "a tenant request served by the canaries", func() (bool, string) {
		a, err := edgeAccount("canary")
		return err == nil && canaryAcct[a.servedBy] && canaryQuotes[a.quoteIP], fmt.Sprintf("%+v %v", a, err)
	})
	report("first tenant request through both canaries %s after they passed", took.Round(time.Millisecond))

	edgeBefore := edgeMetrics(t)
	canaryBefore := canaryMetrics(t)
	tenantRun := tally(t, n, "canary", canaryAcct, canaryQuotes)
	plainRun := tally(t, n, "", canaryAcct, canaryQuotes)
	invalidRun := tally(t, 10, "not a tenant!", canaryAcct, canaryQuotes)
	edgeAfter := edgeMetrics(t)
	canaryAfter := canaryMetrics(t)
	report("tenant requests: %d/%d served by the canary accountservice, %d/%d quotes from the canary quotes-service (servedBy %v, quotes %v)",
		tenantRun.acct, n, tenantRun.quotes, n, tenantRun.servedBy, tenantRun.quoteBy)
	report("plain requests: %d/%d served by the canary accountservice, %d/%d quotes from the canary quotes-service (servedBy %v)",
		plainRun.acct, n, plainRun.quotes, n, plainRun.servedBy)
	report("invalid header: %d/10 reached a canary", invalidRun.acct+invalidRun.quotes)
	routed := edgeAfter[`edge_tenant_requests_total{outcome="routed"}`] - edgeBefore[`edge_tenant_requests_total{outcome="routed"}`]
	invalid := edgeAfter[`edge_tenant_requests_total{outcome="invalid"}`] - edgeBefore[`edge_tenant_requests_total{outcome="invalid"}`]
	quotesRouted := canaryAfter[`accountservice_tenant_requests_total{outcome="routed"}`] - canaryBefore[`accountservice_tenant_requests_total{outcome="routed"}`]
	report("edge metrics: routed +%v, invalid +%v; canary accountservice metrics: quote calls routed +%v", routed, invalid, quotesRouted)
	if tenantRun.acct != n || tenantRun.quotes != n {
		t.Errorf("tenant requests: %d/%d on the canary accountservice, %d/%d quotes from the canary quotes-service; want all", tenantRun.acct, n, tenantRun.quotes, n)
	}
	if plainRun.acct != 0 || plainRun.quotes != 0 || invalidRun.acct != 0 || invalidRun.quotes != 0 {
		t.Errorf("plain requests reached a canary: %+v; invalid-header ones: %+v", plainRun, invalidRun)
	}
	for ip := range plainRun.servedBy {
		if !plainAcct[ip] {
			t.Errorf("a plain request served by %s, not a plain accountservice task %v", ip, keys(plainAcct))
		}
	}
	if routed != n || invalid != 10 || quotesRouted != n {
		t.Errorf("edge counted %v routed and %v invalid, the canary %v routed quote calls; want %d, 10, %d", routed, invalid, quotesRouted, n, n)
	}

	// No canary quotes-service: tenant requests' quotes from the plain one.
	report("scale quotes-service-canary to 0: %s", Scale(t, "quotes-service-canary", 0).Round(time.Millisecond))
	took = WaitFor(t, time.Minute, "tenant quotes from the plain quotes-service", func() (bool, string) {
		a, err := edgeAccount("canary")
		return err == nil && canaryAcct[a.servedBy] && plainQuotes[a.quoteIP], fmt.Sprintf("%+v %v", a, err)
	})
	report("first tenant quote from the plain quotes-service %s after the scale", took.Round(time.Millisecond))
	canaryBefore = canaryMetrics(t)
	fallbackRun := tally(t, n, "canary", canaryAcct, plainQuotes)
	canaryAfter = canaryMetrics(t)
	fellBack := canaryAfter[`accountservice_tenant_requests_total{outcome="fallback"}`] - canaryBefore[`accountservice_tenant_requests_total{outcome="fallback"}`]
	report("tenant requests without a canary quotes-service: %d/%d served by the canary accountservice, %d/%d quotes from the plain quotes-service (%v), %d circuit-breaker quotes; canary quote calls counted as fallback +%v",
		fallbackRun.acct, n, fallbackRun.quotes, n, fallbackRun.quoteBy, fallbackRun.breaker, fellBack)
	if fallbackRun.acct != n || fallbackRun.quotes != n || fellBack != n {
		t.Errorf("without the canary quotes-service: %+v, %v counted; want %d on the canary accountservice with plain quotes, all counted", fallbackRun, fellBack, n)
	}
}

// canaryTasks lists the passing tasks of the canary accountservice and
// quotes-service by address, as the watcher's /api/services?tenant=canary
// reports them.
func canaryTasks() (acct, quotes map[string]bool, err error) {
	resp, err := NewClient().Get(WatcherURL + "/api/services?tenant=canary")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var list []api.Service
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&list); err != nil {
		return nil, nil, err
	}
	acct, quotes = map[string]bool{}, map[string]bool{}
	for _, s := range list {
		if s.Tenant != "canary" {
			return nil, nil, fmt.Errorf("?tenant=canary listed %s of tenant %q", s.Name, s.Tenant)
		}
		into := map[string]map[string]bool{"accountservice": acct, "quotes-service": quotes}[s.Logical]
		for _, tk := range s.Tasks {
			if into != nil && tk.Health == api.HealthPassing && tk.Tenant == "canary" {
				into[tk.Address] = true
			}
		}
	}
	return acct, quotes, nil
}

func taskIPs(t *testing.T, name string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, tk := range RunningTasks(t, name) {
		out[tk.IP] = true
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// answer is what the test reads of an account: who served it, and the
// address of the quotes-service task that gave its quote.
type answer struct{ servedBy, quoteIP, quoteBy string }

// edgeAccount asks the edge for an account, with the tenant header when
// tenantName is not "".
func edgeAccount(tenantName string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, EdgeURL+"/accounts/10000", nil)
	if err != nil {
		return answer{}, err
	}
	if tenantName != "" {
		req.Header.Set(tenant.Header, tenantName)
	}
	resp, err := NewClient().Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("%d %s %v", resp.StatusCode, body, err)
	}
	var a struct {
		ServedBy string `json:"servedBy"`
		Quote    struct {
			IPAddress string `json:"ipAddress"`
		} `json:"quote"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return answer{}, fmt.Errorf("%w: %s", err, body)
	}
	// ipAddress is "<hostname>/<ip>:8080", or "circuit-breaker" for the fallback quote.
	ip := a.Quote.IPAddress
	if _, rest, ok := strings.Cut(ip, "/"); ok {
		ip = rest
	}
	if i := strings.LastIndex(ip, ":"); i > 0 {
		ip = ip[:i]
	}
	return answer{servedBy: a.ServedBy, quoteIP: ip, quoteBy: a.Quote.IPAddress}, nil
}

// run counts n requests' answers: on an account task in acct, with a quote
// from a task in quotes, with the circuit breaker's quote; and by servedBy
// and quote source.
type run struct {
	acct, quotes, breaker int
	servedBy, quoteBy     map[string]int
}

func tally(t *testing.T, n int, tenantName string, acct, quotes map[string]bool) run {
	t.Helper()
	r := run{servedBy: map[string]int{}, quoteBy: map[string]int{}}
	for range n {
		a, err := edgeAccount(tenantName)
		if err != nil {
			t.Fatalf("GET /accounts/10000 (tenant %q): %v", tenantName, err)
		}
		r.servedBy[a.servedBy]++
		r.quoteBy[a.quoteIP]++
		if acct[a.servedBy] {
			r.acct++
		}
		if quotes[a.quoteIP] {
			r.quotes++
		}
		if a.quoteBy == "circuit-breaker" {
			r.breaker++
		}
	}
	return r
}

// edgeMetrics and canaryMetrics read the unpublished /metrics of the edge and
// of the canary accountservice from a container on the stack network.
func edgeMetrics(t *testing.T) map[string]float64 {
	return metricsOf(t, "http://tasks.edge:8181/metrics")
}

func canaryMetrics(t *testing.T) map[string]float64 {
	return metricsOf(t, "http://tasks.accountservice-canary:8181/metrics")
}

func metricsOf(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := probe(t, Stack+"_net", nil, "-check", "http", "-body", "-url", url)
	status, body, _ := strings.Cut(out, "\n")
	if status != "200" {
		t.Fatalf("GET %s: %s", url, out)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
