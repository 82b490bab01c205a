package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goblog/goblog/edge/internal/proxy"
	"github.com/goblog/goblog/edge/internal/upstream"
	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// metricsHandler serves the edge's metrics in Prometheus' text format: its
// own answers (503 overloaded, 502 bad gateway) and, in watcher mode (w not
// nil), the feed's state (edge_watcher_*: instances and whether each set is
// the last good one kept after a failure) and the tenant routing
// (edge_tenant_requests_total by outcome). Read at scrape time: nothing is
// added to a request.
func metricsHandler(p *proxy.Proxy, w *upstream.Watcher) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edge_overloaded_total",
			Help: "Requests answered 503 because every upstream task carried its bound of requests in flight.",
		}, func() float64 { return float64(p.Stats().Overloaded) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edge_bad_gateway_total",
			Help: "Requests answered 502: no upstream task answered.",
		}, func() float64 { return float64(p.Stats().BadGateway) }),
	)
	if w != nil {
		reg.MustRegister(wsd.NewCollector("edge", w))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
