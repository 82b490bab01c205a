package turbine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// loadSamples reads the data: lines of a recorded hystrix-go stream.
func loadSamples(t *testing.T, file string) []Sample {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []Sample
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:")); ok {
			s, err := ParseSample(data)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, s)
		}
	}
	return out
}

func num(t *testing.T, s Sample, path ...string) float64 {
	t.Helper()
	var v any = map[string]any(s)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: not an object at %q", path, p)
		}
		v = m[p]
	}
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v = %#v, not a number", path, v)
	}
	f, _ := n.Float64()
	return f
}

func find(t *testing.T, samples []Sample, typ string) Sample {
	t.Helper()
	for _, s := range samples {
		if s["type"] == typ {
			return s
		}
	}
	t.Fatalf("no %s sample in %d", typ, len(samples))
	return nil
}

func TestAggregateRecordedSamples(t *testing.T) {
	ok := loadSamples(t, "testdata/host-ok.stream")           // 20 successes, circuit closed
	failing := loadSamples(t, "testdata/host-failing.stream") // 5 failures, 15 short-circuited, open
	agg := NewAggregator(0, 0)
	h1, h2, h3 := agg.AddHost("h1", "accountservice", ""), agg.AddHost("h2", "accountservice", ""), agg.AddHost("h3", "accountservice", "")
	for _, s := range ok {
		mustUpdate(t, agg, h1, s)
		mustUpdate(t, agg, h2, s)
	}
	for _, s := range failing {
		mustUpdate(t, agg, h3, s)
	}

	snap := agg.Snapshot(Cluster{})
	if len(snap) != 2 {
		t.Fatalf("%d aggregated samples, want HystrixCommand and HystrixThreadPool", len(snap))
	}
	cmd := find(t, snap, "HystrixCommand")
	for _, c := range []struct {
		path []string
		want float64
	}{
		{[]string{"reportingHosts"}, 3},
		{[]string{"requestCount"}, 60},
		{[]string{"errorCount"}, 20},
		{[]string{"errorPercentage"}, 100}, // summed; the dashboard divides by reportingHosts
		{[]string{"rollingCountSuccess"}, 40},
		{[]string{"rollingCountFailure"}, 5},
		{[]string{"rollingCountShortCircuited"}, 15},
		{[]string{"rollingCountFallbackSuccess"}, 20},
		{[]string{"latencyExecute", "99"}, 12},
		{[]string{"latencyTotal_mean"}, 5},
		{[]string{"propertyValue_circuitBreakerRequestVolumeThreshold"}, 15},
		{[]string{"currentTime"}, 1795347393614}, // the newest, not a sum
	} {
		if got := num(t, cmd, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	if cmd["name"] != "quotes-service" || cmd["group"] != "quotes-service" {
		t.Errorf("name/group = %v/%v", cmd["name"], cmd["group"])
	}
	// Two hosts closed, one open: Turbine's value-to-count map.
	if got, ok := cmd["isCircuitBreakerOpen"].(map[string]int); !ok || got["true"] != 1 || got["false"] != 2 {
		t.Errorf("isCircuitBreakerOpen = %#v, want map[false:2 true:1]", cmd["isCircuitBreakerOpen"])
	}
	// All agree: the value is kept.
	if cmd["propertyValue_executionIsolationStrategy"] != "THREAD" {
		t.Errorf("isolation strategy = %#v", cmd["propertyValue_executionIsolationStrategy"])
	}
	pool := find(t, snap, "HystrixThreadPool")
	if got := num(t, pool, "rollingCountThreadsExecuted"); got != 40 {
		t.Errorf("pool rollingCountThreadsExecuted = %v, want 40 (h3's pool was not recorded)", got)
	}
	if got := num(t, pool, "reportingHosts"); got != 2 {
		t.Errorf("pool reportingHosts = %v, want 2", got)
	}

	// Removing a host takes its contribution out at once.
	agg.RemoveHost(h3)
	cmd = find(t, agg.Snapshot(Cluster{}), "HystrixCommand")
	if r, n := num(t, cmd, "reportingHosts"), num(t, cmd, "requestCount"); r != 2 || n != 40 {
		t.Fatalf("after removing h3: reportingHosts %v requestCount %v, want 2 and 40", r, n)
	}
	if cmd["isCircuitBreakerOpen"] != false {
		t.Fatalf("after removing the open host: isCircuitBreakerOpen = %#v, want false", cmd["isCircuitBreakerOpen"])
	}

	// A newer sample from a host replaces its older one (no double counting).
	mustUpdate(t, agg, h1, ok[0])
	if n := num(t, find(t, agg.Snapshot(Cluster{}), "HystrixCommand"), "requestCount"); n != 40 {
		t.Fatalf("re-sent sample counted twice: requestCount %v", n)
	}

	// A host of an older generation cannot add data back.
	agg.RemoveHost(h2)
	old := h2
	agg.AddHost("h2", "accountservice", "")
	if agg.Update(old, ok[0], 100) == nil {
		t.Fatal("a removed host's stream updated the aggregate")
	}
	if r := num(t, find(t, agg.Snapshot(Cluster{}), "HystrixCommand"), "reportingHosts"); r != 1 {
		t.Fatalf("reportingHosts %v, want 1 (only h1 has data)", r)
	}

	// Everything out: nothing to report.
	agg.RemoveHost(h1)
	agg.ClearHost(h3) // unknown: ignored
	if snap := agg.Snapshot(Cluster{}); len(snap) != 0 {
		t.Fatalf("empty aggregator reports %v", snap)
	}
}

func TestAggregateSnapshotMarshals(t *testing.T) {
	agg := NewAggregator(0, 0)
	h := agg.AddHost("h", "x", "")
	s, err := ParseSample([]byte(`{"type":"HystrixCommand","name":"x","a":1.5,"b":1e400,"c":null,"d":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, agg, h, s)
	mustUpdate(t, agg, agg.AddHost("h2", "x", ""), s)
	for _, out := range agg.Snapshot(Cluster{}) {
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("aggregate does not marshal: %v", err)
		}
	}
}

func TestParseSampleRejects(t *testing.T) {
	for _, body := range []string{``, `null`, `[]`, `{}`, `{"type":"HystrixCommand"}`, `{"type":1,"name":"x"}`, `{"type":"x","name":"y"`, `{"type":"x","name":"y"} {}`} {
		if _, err := ParseSample([]byte(body)); err == nil {
			t.Errorf("ParseSample(%q) accepted it", body)
		}
	}
}

func mustUpdate(t *testing.T, agg *Aggregator, h *Host, s Sample) {
	t.Helper()
	if err := agg.Update(h, s, 1000); err != nil {
		t.Fatalf("update %s: %v", h.id, err)
	}
}

func sample(t *testing.T, typ, name string, requests int) Sample {
	t.Helper()
	s, err := ParseSample(fmt.Appendf(nil, `{"type":%q,"name":%q,"requestCount":%d}`, typ, name, requests))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAggregateOneCluster(t *testing.T) {
	agg := NewAggregator(0, 0)
	mustUpdate(t, agg, agg.AddHost("a1", "accountservice", ""), sample(t, "HystrixCommand", "quotes", 10))
	mustUpdate(t, agg, agg.AddHost("a2", "accountservice", ""), sample(t, "HystrixCommand", "quotes", 5))
	mustUpdate(t, agg, agg.AddHost("c1", "accountservice", "canary"), sample(t, "HystrixCommand", "quotes", 1000))
	mustUpdate(t, agg, agg.AddHost("q1", "quotes-service", ""), sample(t, "HystrixCommand", "quotes", 100))
	mustUpdate(t, agg, agg.AddHost("qc", "quotes-service", "canary"), sample(t, "HystrixCommand", "quotes", 20000))
	for _, c := range []struct {
		cluster       string
		hosts, counts float64
	}{
		{"", 5, 21115},
		{"accountservice", 3, 1015}, // plain and every tenant
		{"accountservice@canary", 1, 1000},
		{"accountservice@", 2, 15}, // plain only
		{"quotes-service", 2, 20100},
		{"quotes-service@", 1, 100},
		{"@canary", 2, 21000}, // every service's canary
	} {
		cl, err := ParseCluster(c.cluster)
		if err != nil {
			t.Fatalf("ParseCluster(%q): %v", c.cluster, err)
		}
		snap := agg.Snapshot(cl)
		if len(snap) != 1 {
			t.Fatalf("cluster %q: %d samples", c.cluster, len(snap))
		}
		if h, n := num(t, snap[0], "reportingHosts"), num(t, snap[0], "requestCount"); h != c.hosts || n != c.counts {
			t.Errorf("cluster %q: reportingHosts %v requestCount %v, want %v and %v", c.cluster, h, n, c.hosts, c.counts)
		}
	}
	for _, nobody := range []string{"nobody", "accountservice@shadow", "@shadow", "nobody@canary"} {
		cl, err := ParseCluster(nobody)
		if err != nil {
			t.Fatalf("ParseCluster(%q): %v", nobody, err)
		}
		if snap := agg.Snapshot(cl); len(snap) != 0 {
			t.Errorf("cluster %q aggregates %v", nobody, snap)
		}
	}
}

func TestParseCluster(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Cluster
	}{
		{"", Cluster{}},
		{"accountservice", Cluster{Service: "accountservice"}},
		{"accountservice@canary", Cluster{Service: "accountservice", Tenant: "canary", ByTenant: true}},
		{"accountservice@", Cluster{Service: "accountservice", ByTenant: true}},
		{"@team-7", Cluster{Tenant: "team-7", ByTenant: true}},
	} {
		if got, err := ParseCluster(c.in); err != nil || got != c.want {
			t.Errorf("ParseCluster(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"@", "a@b@c", "a@canary!", "@" + strings.Repeat("x", 33), "a@ca nary", "@é"} {
		if got, err := ParseCluster(bad); err == nil {
			t.Errorf("ParseCluster(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestAggregatorBoundsEachHost(t *testing.T) {
	agg := NewAggregator(2, 1000)
	h := agg.AddHost("h", "x", "")
	if err := agg.Update(h, sample(t, "HystrixCommand", "a", 1), 100); err != nil {
		t.Fatal(err)
	}
	if err := agg.Update(h, sample(t, "HystrixCommand", "b", 1), 100); err != nil {
		t.Fatal(err)
	}
	if err := agg.Update(h, sample(t, "HystrixCommand", "c", 1), 100); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("third key: %v, want ErrTooManyKeys", err)
	}
	// Replacing a known key is not a new key; its old size is given back.
	if err := agg.Update(h, sample(t, "HystrixCommand", "a", 2), 900); err != nil {
		t.Fatalf("replace within the budget: %v", err)
	}
	if err := agg.Update(h, sample(t, "HystrixCommand", "b", 2), 200); !errors.Is(err, ErrTooManyBytes) {
		t.Fatalf("over the byte budget: %v, want ErrTooManyBytes", err)
	}
	if got := num(t, agg.Snapshot(Cluster{})[0], "requestCount"); got != 2 {
		t.Errorf("a's requestCount %v, want the replacement's 2", got)
	}
	if agg.Keys() != 2 {
		t.Errorf("Keys() = %d, want 2", agg.Keys())
	}
	agg.ClearHost(h)
	if err := agg.Update(h, sample(t, "HystrixCommand", "c", 1), 1000); err != nil {
		t.Fatalf("after ClearHost the budget is free again: %v", err)
	}
}
