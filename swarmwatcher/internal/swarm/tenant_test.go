package swarm

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func TestTenancyReadsTheLabelsAndRefusesBadOnes(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		labels                  map[string]string
		logical, tenant, reason string
	}{
		{"goblog_accountservice", map[string]string{stackLabel: "goblog"}, "accountservice", "", ""},
		{"accountservice", nil, "accountservice", "", ""},
		{"goblog_accountservice-canary", map[string]string{stackLabel: "goblog", "goblog.tenant": "canary", "goblog.service": "accountservice"}, "accountservice", "canary", ""},
		{"goblog_x", map[string]string{stackLabel: "goblog", "goblog.tenant": "can ary"}, "x", "", "not a tenant"},
		{"goblog_x", map[string]string{stackLabel: "goblog", "goblog.tenant": strings.Repeat("a", 33)}, "x", "", "not a tenant"},
		{"goblog_x", map[string]string{stackLabel: "goblog", "goblog.tenant": ""}, "x", "", "not a tenant"},
		{"goblog_x", map[string]string{stackLabel: "goblog", "goblog.service": "a/b"}, "x", "", "not a service name"},
	} {
		logical, tenant, reason := Tenancy(tc.name, tc.labels)
		if logical != tc.logical || tenant != tc.tenant || (tc.reason == "") != (reason == "") || !strings.Contains(reason, tc.reason) {
			t.Errorf("Tenancy(%q, %v) = %q %q %q, want %q %q %q", tc.name, tc.labels, logical, tenant, reason, tc.logical, tc.tenant, tc.reason)
		}
	}
}

func TestBuildGivesEveryTaskItsServicesTenant(t *testing.T) {
	one := uint64(1)
	svc := swarm.Service{ID: "s2"}
	svc.Spec.Name = "goblog_accountservice-canary"
	svc.Spec.Labels = map[string]string{stackLabel: "goblog", "goblog.tenant": "canary", "goblog.service": "accountservice"}
	svc.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &one}
	tk := swarm.Task{ID: "c1", ServiceID: "s2", NodeID: "n1", DesiredState: swarm.TaskStateRunning}
	tk.Status.State = swarm.TaskStateRunning
	snap := build([]swarm.Service{svc}, []swarm.Task{tk}, []swarm.Node{{ID: "n1"}}, nil)
	if len(snap.Services) != 1 || len(snap.Services[0].Tasks) != 1 {
		t.Fatalf("snapshot %+v", snap)
	}
	s := snap.Services[0]
	if s.Logical != "accountservice" || s.Tenant != "canary" || s.Tasks[0].Tenant != "canary" {
		t.Errorf("service %q/%q, task tenant %q", s.Logical, s.Tenant, s.Tasks[0].Tenant)
	}
}
