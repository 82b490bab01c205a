package turbine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/goblog/goblog/turbine/api"
)

// statsCollector exposes turbine's own part of /api/stats (streams, clients, watcher) in
// Prometheus' text format at /metrics: every bound that was hit is a counter there too. The
// registry's and consumer's counters come from discoverytoken's collector beside it. It reads the same counters on each scrape, so
// nothing is counted twice.
type statsCollector struct {
	stats func() api.Stats
}

var (
	descDials      = prometheus.NewDesc("turbine_stream_dials_total", "Connection attempts to instance metrics streams.", nil, nil)
	descRefused    = prometheus.NewDesc("turbine_stream_refused_total", "Dials refused or held back, by reason.", []string{"reason"}, nil)
	descCut        = prometheus.NewDesc("turbine_stream_cut_total", "Instance streams cut for breaking a bound, by bound.", []string{"bound"}, nil)
	descBadLines   = prometheus.NewDesc("turbine_stream_bad_lines_total", "Stream events that were not valid samples.", nil, nil)
	descStreams    = prometheus.NewDesc("turbine_streams", "Instance streams, by state.", []string{"state"}, nil)
	descClients    = prometheus.NewDesc("turbine_stream_clients", "/turbine.stream clients now.", nil, nil)
	descClientsRef = prometheus.NewDesc("turbine_stream_clients_refused_total", "/turbine.stream clients refused beyond the cap.", nil, nil)
	descAggs       = prometheus.NewDesc("turbine_aggregations_total", "Aggregates computed (once per round and cluster).", nil, nil)
	descClusters   = prometheus.NewDesc("turbine_clusters_capped_total", "Cluster aggregates refused beyond the per-round cap.", nil, nil)
	descWatcher    = prometheus.NewDesc("turbine_watcher_queries_total", "Queries to the swarmwatcher, by outcome.", []string{"outcome"}, nil)
	descBadTenants = prometheus.NewDesc("turbine_watcher_bad_tenants_total", "Running tasks the swarmwatcher reported with an invalid tenant name (left unverified).", nil, nil)
)

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descDials, s.Streams.Dials)
	counter(descRefused, s.Streams.Unverified, "unverified")
	counter(descRefused, s.Streams.WatcherDown, "watcher_down")
	counter(descRefused, s.Streams.CappedStreams, "max_streams")
	counter(descRefused, s.Streams.DialWaits, "max_concurrent_dials")
	counter(descCut, s.Streams.CutLineTooLong, "max_line")
	counter(descCut, s.Streams.CutTooManyKeys, "max_keys_per_host")
	counter(descCut, s.Streams.CutTooManyBytes, "max_bytes_per_host")
	counter(descBadLines, s.BadStreamLines)
	gauge(descStreams, s.Streams.Active, "active")
	gauge(descStreams, s.Streams.Connected, "connected")
	gauge(descClients, s.Clients.Streaming)
	counter(descClientsRef, s.Clients.Refused)
	counter(descAggs, s.Clients.Aggregations)
	counter(descClusters, s.Clients.ClustersCapped)
	counter(descWatcher, s.Watcher.Queries-min(s.Watcher.Errors, s.Watcher.Queries), "ok")
	counter(descWatcher, s.Watcher.Errors, "error")
	counter(descWatcher, s.Watcher.CacheHits, "cached")
	counter(descBadTenants, s.Watcher.BadTenants)
}
