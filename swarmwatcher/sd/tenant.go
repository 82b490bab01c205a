package sd

import (
	"maps"
	"slices"
	"sort"

	kitsd "github.com/go-kit/kit/sd"

	"github.com/goblog/goblog/swarmwatcher/api"
)

// Tenants (package github.com/goblog/goblog/internal/tenant): a service
// labelled goblog.tenant=<name> and goblog.service=<logical> is a version of
// the logical service that serves only requests carrying that tenant. The
// Instancer of a service publishes the service's own tasks (never a
// tenant's) and, apart, each tenant's passing tasks of the same logical
// service (Tenant); Discovery routes a request by its X-Goblog-Tenant header
// over them.

// MaxTenants bounds the tenants an Instancer follows for its service (and
// the balancers a Discovery keeps, one per tenant): tenants come from
// service labels, a claim like any other. Tenants beyond it (by name order)
// are left out and counted (InstancerStats.TenantsOverCap).
const MaxTenants = 64

// serviceMeta is what only a snapshot says about a service.
type serviceMeta struct {
	logical, tenant string
	refused         bool // the watcher refused its tenant labels
}

// pool is one published set: the plain service's or one tenant's.
type pool struct {
	state    kitsd.Event
	lastGood []string
	reg      map[chan<- kitsd.Event]struct{}
	present  bool // a tenant with a service right now (the plain pool: always)
}

func newPool() *pool { return &pool{reg: map[chan<- kitsd.Event]struct{}{}, present: true} }

// publishTenants publishes the sets of the tenants of own's logical service:
// every service of that logical name with a (valid) tenant label, the plain
// service itself excluded; services of one tenant are merged. A tenant whose
// services have gone gets an empty set, without error: it has no task.
func (in *Instancer) publishTenants(plainName string, own serviceMeta) {
	sets := map[string]map[string]api.Task{}
	if own.logical != "" {
		for name, m := range in.meta {
			if name == plainName || m.tenant == "" || m.refused || m.logical != own.logical {
				continue
			}
			if sets[m.tenant] == nil {
				sets[m.tenant] = map[string]api.Task{}
			}
			maps.Copy(sets[m.tenant], in.services[name])
		}
	}
	names := slices.Sorted(maps.Keys(sets))
	over := 0
	if len(names) > MaxTenants {
		over = len(names) - MaxTenants
		if in.overCap.Swap(int64(over)) == 0 {
			in.log.Warn("more tenants than followed: the rest get the plain tasks", "tenants", len(names), "max", MaxTenants, "left_out", names[MaxTenants:])
		}
		names = names[:MaxTenants]
	} else {
		in.overCap.Store(0)
	}
	for _, t := range names {
		instances, err := in.derive(sets[t])
		in.update(t, kitsd.Event{Instances: instances, Err: err})
	}
	in.mu.Lock()
	var gone []string
	for t, p := range in.pools {
		_, present := sets[t]
		present = present && slices.Contains(names, t)
		if t == "" {
			continue
		}
		p.present = present
		if !present {
			if len(p.reg) == 0 {
				delete(in.pools, t) // nobody follows it: forget it
				continue
			}
			gone = append(gone, t)
		}
	}
	in.mu.Unlock()
	for _, t := range gone {
		in.update(t, kitsd.Event{})
	}
}

// Tenant returns a go-kit Instancer of tenant's passing tasks of this
// Instancer's logical service: the tasks of the services labelled
// goblog.tenant=<tenant> and goblog.service=<the logical name of Service>.
// Like the Instancer it keeps the tenant's last good set while the feed is
// lost; a tenant without a service has an empty set. Stopping it does
// nothing: the Instancer owns the feed.
func (in *Instancer) Tenant(tenant string) kitsd.Instancer { return tenantView{in, tenant} }

// Tenants returns the tenants of the service that currently have a service
// (with or without passing tasks), sorted.
func (in *Instancer) Tenants() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for t, p := range in.pools {
		if t != "" && p.present {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// hasTenant reports whether tenant currently has a service.
func (in *Instancer) hasTenant(tenant string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	p := in.pools[tenant]
	return tenant != "" && p != nil && p.present
}

// tenantView is the Instancer seen through one tenant's set.
type tenantView struct {
	in     *Instancer
	tenant string
}

var _ kitsd.Instancer = tenantView{}

func (v tenantView) Register(ch chan<- kitsd.Event)   { v.in.register(v.tenant, ch) }
func (v tenantView) Deregister(ch chan<- kitsd.Event) { v.in.deregister(v.tenant, ch) }
func (v tenantView) Stop()                            {}

// State returns the tenant's last published event (see Instancer.State).
func (v tenantView) State() kitsd.Event { return v.in.stateOf(v.tenant) }
