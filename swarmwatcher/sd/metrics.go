package sd

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// SetStats describes one published set: the plain one or a tenant's.
type SetStats struct {
	// Tenant is "" for the service's own (plain) tasks.
	Tenant string
	// Instances in the set.
	Instances int
	// Stale: the set is the last good one, kept because of Err (the feed
	// is lost, the watcher's data is stale, no verdict yet, ...).
	Stale bool
	Err   string
}

// InstancerStats is what an Instancer reports about itself.
type InstancerStats struct {
	// Sets: the plain set first, then the tenants' by name.
	Sets []SetStats
	// FeedLosses counts the times the feed was lost (each starts a period
	// of serving the last good sets); Resyncs the snapshots re-read because
	// a service was created; Malformed the events skipped.
	FeedLosses, Resyncs, Malformed uint64
	// TenantsOverCap is how many tenants were left out at the last update
	// (beyond MaxTenants).
	TenantsOverCap int
}

// Stats returns the Instancer's counters and the state of its sets.
func (in *Instancer) Stats() InstancerStats {
	st := InstancerStats{
		FeedLosses: in.losses.Load(), Resyncs: in.resyncs.Load(), Malformed: in.malformed.Load(),
		TenantsOverCap: int(in.overCap.Load()),
	}
	in.mu.Lock()
	for t, p := range in.pools {
		if t != "" && !p.present && len(p.state.Instances) == 0 {
			continue
		}
		s := SetStats{Tenant: t, Instances: len(p.state.Instances), Stale: p.state.Err != nil}
		if p.state.Err != nil {
			s.Err = p.state.Err.Error()
		}
		st.Sets = append(st.Sets, s)
	}
	in.mu.Unlock()
	sort.Slice(st.Sets, func(i, j int) bool { return st.Sets[i].Tenant < st.Sets[j].Tenant })
	return st
}

// DiscoveryStats is what a Discovery reports about itself.
type DiscoveryStats struct {
	Instancer InstancerStats
	Tenant    TenantStats
	// ByName: requests currently go through the Fallback transport (the
	// watcher has not given a set yet).
	ByName bool
}

// Stats returns the Discovery's counters and state.
func (d *Discovery) Stats() DiscoveryStats {
	return DiscoveryStats{Instancer: d.inst.Stats(), Tenant: d.tenants.stats(), ByName: d.tr.falling.Load()}
}

// Collector exports a Discovery's Stats as Prometheus metrics, read at
// scrape time. Names start with namespace_watcher_ (the feed, its sets) and
// namespace_tenant_ (the routing).
type Collector struct {
	d *Discovery

	instances, stale, overCap, byName    *prometheus.Desc
	losses, resyncs, malformed, requests *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector for d; register it where the binary
// registers its metrics.
func NewCollector(namespace string, d *Discovery) *Collector {
	name := func(sub, n string) string { return prometheus.BuildFQName(namespace, sub, n) }
	tl := []string{"tenant"}
	return &Collector{
		d:         d,
		instances: prometheus.NewDesc(name("watcher", "instances"), "Tasks balanced over, by tenant (\"\": the plain tasks).", tl, nil),
		stale: prometheus.NewDesc(name("watcher", "stale"),
			"1 while the set is the last good one, kept because the watcher's feed is lost or says nothing current (the set is never emptied by a failure).", tl, nil),
		overCap:   prometheus.NewDesc(name("watcher", "tenants_over_cap"), "Tenants left out beyond the bound on tenants followed.", nil, nil),
		byName:    prometheus.NewDesc(name("watcher", "by_name"), "1 while requests go by service name: the watcher has not given a set yet.", nil, nil),
		losses:    prometheus.NewDesc(name("watcher", "feed_losses_total"), "Times the watcher's feed was lost (the last good sets were kept).", nil, nil),
		resyncs:   prometheus.NewDesc(name("watcher", "resyncs_total"), "Snapshots re-read because a service was created.", nil, nil),
		malformed: prometheus.NewDesc(name("watcher", "events_malformed_total"), "Events of the feed skipped as unreadable.", nil, nil),
		requests: prometheus.NewDesc(name("tenant", "requests_total"),
			"Requests carrying the tenant header, by outcome: routed (to the tenant's tasks), fallback (the tenant has no passing task: the plain ones), invalid (not a tenant: ignored).",
			[]string{"outcome"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.instances, c.stale, c.overCap, c.byName, c.losses, c.resyncs, c.malformed, c.requests} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, s := range st.Instancer.Sets {
		gauge(c.instances, float64(s.Instances), s.Tenant)
		gauge(c.stale, b2f(s.Stale), s.Tenant)
	}
	gauge(c.overCap, float64(st.Instancer.TenantsOverCap))
	gauge(c.byName, b2f(st.ByName))
	counter(c.losses, st.Instancer.FeedLosses)
	counter(c.resyncs, st.Instancer.Resyncs)
	counter(c.malformed, st.Instancer.Malformed)
	counter(c.requests, st.Tenant.Routed, "routed")
	counter(c.requests, st.Tenant.Fallback, "fallback")
	counter(c.requests, st.Tenant.Invalid, "invalid")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
