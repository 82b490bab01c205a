package watch

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the watcher's Prometheus instruments, always built; registered
// only when asked (Watcher.Register).
type metrics struct {
	refreshes       *prometheus.CounterVec
	refreshDuration prometheus.Histogram
	probes          *prometheus.CounterVec
	probeLatency    prometheus.Histogram
	roundDuration   prometheus.Histogram
	probeLateness   prometheus.Histogram
	tasks           *prometheus.GaugeVec
	services        prometheus.Gauge
	stale           prometheus.Gauge
	changes         *prometheus.CounterVec
	subscribers     prometheus.Gauge
	dropped         prometheus.Counter
	triggers        prometheus.Counter
	// The stages from an engine event to the watcher's subscribers (the
	// server adds the last: publish to the event-stream client's flush).
	eventToRelist   prometheus.Histogram
	relistToPublish prometheus.Histogram
}

// StageBuckets are the buckets of the convergence stage histograms: 1 ms to
// about 8 s.
var StageBuckets = prometheus.ExponentialBuckets(0.001, 2, 14)

// newMetrics creates the instruments; Watcher.Register registers them.
func newMetrics() *metrics {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmwatcher_refreshes_total", Help: "Re-lists of the swarm state, by result.",
		}, []string{"result"}),
		refreshDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_refresh_duration_seconds", Help: "Time one re-list of the swarm state took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmwatcher_probes_total", Help: "Health probes, by outcome (pass, warn, fail).",
		}, []string{"outcome"}),
		probeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_probe_duration_seconds", Help: "Latency of health probes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_probe_round_duration_seconds", Help: "Time one batch of probes took (the tasks whose turn came: every task once per probe interval, spread over it).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		probeLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_probe_lateness_seconds", Help: "How long after its turn a task's probe started (a probe that waits long is starving).",
			Buckets: StageBuckets,
		}),
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swarmwatcher_tasks", Help: "Running tasks, by service and health.",
		}, []string{"service", "health"}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmwatcher_services", Help: "Services in the swarm.",
		}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmwatcher_stale", Help: "1 while the Docker API data is stale.",
		}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swarmwatcher_changes_total", Help: "Changes detected, by type.",
		}, []string{"type"}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swarmwatcher_subscribers", Help: "Current subscribers of the watcher's changes (the event-stream encoder, the webhook forwarder).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmwatcher_subscribers_dropped_total", Help: "Subscribers dropped because they fell behind.",
		}),
		triggers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "swarmwatcher_engine_events_total", Help: "Engine events (and stream reconnects) that asked for a re-list.",
		}),
		eventToRelist: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_event_to_relist_seconds", Help: "From the first engine event not yet served to the start of the re-list that serves it.",
			Buckets: StageBuckets,
		}),
		relistToPublish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swarmwatcher_relist_to_publish_seconds", Help: "From the Engine API's answer to the changes handed to subscribers (join, diff, fan-out).",
			Buckets: StageBuckets,
		}),
	}
	return m
}

// register adds every instrument to reg.
func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.refreshes, m.refreshDuration, m.probes, m.probeLatency, m.roundDuration, m.probeLateness,
		m.tasks, m.services, m.stale, m.changes, m.subscribers, m.dropped, m.triggers, m.eventToRelist, m.relistToPublish} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register watcher metrics: %w", err)
		}
	}
	return nil
}
