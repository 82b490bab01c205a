package discoverytoken

import "github.com/prometheus/client_golang/prometheus"

// RegistryStatser is what the collector reads from a registry. *Registry is one.
type RegistryStatser interface{ Stats() RegistryStats }

// ConsumerStatser is what the collector reads from a consumer. *Consumer is one.
type ConsumerStatser interface{ Stats() ConsumerStats }

var (
	_ RegistryStatser = (*Registry)(nil)
	_ ConsumerStatser = (*Consumer)(nil)
)

// Collector exports a registry's and a consumer's counters as Prometheus metrics, read at
// scrape time from their Stats (which copy no instance). Every bound has its metric: the
// caps (tokens_refused_total{reason="full"|"service-full"}), malformed tokens (by kind),
// self-preservation (instances_protected, protections_total).
type Collector struct {
	reg RegistryStatser
	con ConsumerStatser

	instances, protected, subscribed, tombstones    *prometheus.Desc
	refused, added, removed, protections, tombDrops *prometheus.Desc
	received, malformed, subscribes                 *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector for reg and con (either may be nil) whose metric names
// start with namespace_discovery_ (e.g. turbine_discovery_instances). Register it where the
// binary registers its metrics.
func NewCollector(namespace string, reg RegistryStatser, con ConsumerStatser) *Collector {
	name := func(n string) string { return prometheus.BuildFQName(namespace, "discovery", n) }
	return &Collector{
		reg: reg, con: con,
		instances:  prometheus.NewDesc(name("instances"), "Instances in the registry, protected ones included.", nil, nil),
		protected:  prometheus.NewDesc(name("instances_protected"), "Instances silent past their TTL, kept by self-preservation.", nil, nil),
		subscribed: prometheus.NewDesc(name("subscribed"), "1 while the registry is told the broker subscription is up.", nil, nil),
		tombstones: prometheus.NewDesc(name("tombstones"), "DOWNs remembered against out-of-order UPs.", nil, nil),
		refused: prometheus.NewDesc(name("tokens_refused_total"),
			"Tokens the registry refused, by reason: malformed, conflict (another address for a held instance), stale, full (instance cap), service-full (per-service cap).",
			[]string{"reason"}, nil),
		added:       prometheus.NewDesc(name("instances_added_total"), "Instances added.", nil, nil),
		removed:     prometheus.NewDesc(name("instances_removed_total"), "Instances removed, by reason: down, ttl, protection-ended.", []string{"reason"}, nil),
		protections: prometheus.NewDesc(name("protections_total"), "Times an instance entered self-preservation.", nil, nil),
		tombDrops:   prometheus.NewDesc(name("tombstones_dropped_total"), "DOWNs forgotten early at the tombstone cap.", nil, nil),
		received:    prometheus.NewDesc(name("tokens_received_total"), "Messages the consumer received.", nil, nil),
		malformed:   prometheus.NewDesc(name("tokens_malformed_total"), "Messages the consumer rejected as malformed, by kind.", []string{"kind"}, nil),
		subscribes:  prometheus.NewDesc(name("subscriptions_total"), "Successful subscriptions to the broker (1 + reconnects).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.instances, c.protected, c.subscribed, c.tombstones, c.refused, c.added,
		c.removed, c.protections, c.tombDrops, c.received, c.malformed, c.subscribes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.reg != nil {
		s := c.reg.Stats()
		gauge(c.instances, float64(s.Live))
		gauge(c.protected, float64(s.Protected))
		sub := 0.0
		if s.Subscribed {
			sub = 1
		}
		gauge(c.subscribed, sub)
		gauge(c.tombstones, float64(s.Tombstones))
		counter(c.refused, s.Malformed, "malformed")
		counter(c.refused, s.Conflicts, "conflict")
		counter(c.refused, s.Stale, "stale")
		counter(c.refused, s.RejectedFull, "full")
		counter(c.refused, s.RejectedServiceFull, "service-full")
		counter(c.added, s.Added)
		counter(c.removed, s.RemovedDown, ReasonDown)
		counter(c.removed, s.RemovedTTL, ReasonTTL)
		counter(c.removed, s.RemovedProtectionEnded, ReasonProtectionEnded)
		counter(c.protections, s.ProtectedTotal)
		counter(c.tombDrops, s.TombstonesDropped)
	}
	if c.con != nil {
		s := c.con.Stats()
		counter(c.received, s.Received)
		for _, kind := range []string{KindTooLarge, KindNotJSON, KindState, KindAddress, KindPort, KindService,
			KindInstanceID, KindTTL, KindTimestamp, KindFuture} {
			counter(c.malformed, s.MalformedByKind[kind], kind)
		}
		counter(c.subscribes, s.Subscribes)
	}
}
