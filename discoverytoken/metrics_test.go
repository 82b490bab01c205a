package discoverytoken

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorExportsEveryBound(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(RegistryConfig{Now: clock.Now, MaxInstances: 2})
	r.Apply(upAt("svc", "a", 1, clock.Now()))
	r.Apply(upAt("svc", "b", 2, clock.Now()))
	r.Apply(upAt("svc", "c", 3, clock.Now())) // over the cap
	bad := upAt("svc", "d", 4, clock.Now())
	bad.Address = "127.0.0.1"
	r.Apply(bad)
	c := NewCollector("turbine", r, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP turbine_discovery_instances Instances in the registry, protected ones included.
# TYPE turbine_discovery_instances gauge
turbine_discovery_instances 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "turbine_discovery_instances"); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, "turbine_discovery_tokens_refused_total")
	if err != nil || n != 5 {
		t.Fatalf("refused series: %d (%v), want 5 reasons", n, err)
	}
	out, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range out {
		if mf.GetName() != "turbine_discovery_tokens_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			reason, v := m.GetLabel()[0].GetValue(), m.GetCounter().GetValue()
			if (reason == "full" || reason == "malformed") != (v == 1) {
				t.Errorf("refused{reason=%q} = %v", reason, v)
			}
		}
	}
}
