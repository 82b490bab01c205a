package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/swarmwatcher/internal/swarm"
)

// tenantSnapshot is a plain accountservice and its canary tenant.
func tenantSnapshot() swarm.Snapshot {
	plain := snapshot(task("t1", "10.0.1.7", 1)).Services[0]
	plain.Logical = "accountservice"
	canaryTask := task("c1", "10.0.1.9", 1)
	canaryTask.Tenant = "canary"
	canary := swarm.Service{
		ID: "s2", Name: "goblog_accountservice-canary", Desired: 1, Running: 1, ProbePort: 6767, ProbePath: "/health",
		Mode: "replicated", EndpointMode: "dnsrr", Logical: "accountservice", Tenant: "canary",
		Labels: map[string]string{"swarmwatcher.port": "6767", "goblog.tenant": "canary", "goblog.service": "accountservice"},
		Tasks:  []swarm.Task{canaryTask},
	}
	other := snapshot(task("q1", "10.0.1.20", 1)).Services[0]
	other.ID, other.Name, other.Logical = "s3", "goblog_quotes-service", "quotes-service"
	return swarm.Snapshot{Services: []swarm.Service{plain, canary, other}}
}

func TestServicesFiltersByLogicalServiceAndTenant(t *testing.T) {
	w := newWatcher(t, &fakeDisc{snap: tenantSnapshot()})
	if err := w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := handler(t, Config{}, w)
	names := func(path string) []string {
		t.Helper()
		rec := get(h, path)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		var list []api.Service
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = s.Name + "/" + s.Logical + "/" + s.Tenant
			for _, tk := range s.Tasks {
				if tk.Tenant != s.Tenant {
					t.Errorf("%s: task %s has tenant %q, its service %q", path, tk.ID, tk.Tenant, s.Tenant)
				}
			}
		}
		return out
	}
	for path, want := range map[string][]string{
		"/api/services?logical=accountservice":               []string{"goblog_accountservice/accountservice/", "goblog_accountservice-canary/accountservice/canary"},
		"/api/services?tenant=canary":                        {"goblog_accountservice-canary/accountservice/canary"},
		"/api/services?logical=quotes-service&tenant=canary": {},
		"/api/services?service=goblog_accountservice":        {"goblog_accountservice/accountservice/"},
		"/api/services?logical=nothing":                      {},
	} {
		got := names(path)
		if len(got) != len(want) {
			t.Errorf("%s: %q, want %q", path, got, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: %q, want %q", path, got, want)
			}
		}
	}
}

func TestSDLabelsATenantsTasks(t *testing.T) {
	w := newWatcher(t, &fakeDisc{snap: tenantSnapshot()})
	if err := w.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := handler(t, Config{}, w)
	rec := get(h, "/api/sd")
	var groups []api.TargetGroup
	if err := json.Unmarshal(rec.Body.Bytes(), &groups); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range groups {
		svc := g.Labels[api.LabelService]
		seen[svc] = true
		tenant, has := g.Labels[api.LabelTenant]
		switch svc {
		case "goblog_accountservice-canary":
			if tenant != "canary" {
				t.Errorf("%s: tenant label %q, want canary", svc, tenant)
			}
		default:
			if has {
				t.Errorf("%s: a plain task has tenant label %q", svc, tenant)
			}
		}
		if want := map[string]string{"goblog_quotes-service": "quotes-service"}[svc]; want == "" && g.Labels[api.LabelLogical] != "accountservice" ||
			want != "" && g.Labels[api.LabelLogical] != want {
			t.Errorf("%s: logical label %q", svc, g.Labels[api.LabelLogical])
		}
	}
	if len(seen) != 3 {
		t.Errorf("target groups for %v, want the 3 services", seen)
	}
}
