package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goblog/goblog/accountservice/internal/api"
	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// promHandler serves accountservice's Prometheus metrics: the account
// requests refused (overloaded) and those whose tenant header was ignored
// and, with QUOTES_DISCOVERY=watcher (d not nil), the quote call's discovery
// (accountservice_watcher_*: whether each set is the last good one kept
// after a failure; accountservice_tenant_requests_total by outcome). Read at
// scrape time.
func promHandler(h *api.API, d *wsd.Discovery) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "accountservice_overloaded_total",
			Help: "Account requests answered 503 beyond the bound on requests in flight.",
		}, func() float64 { return float64(h.Overloaded()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "accountservice_tenant_header_invalid_total",
			Help: "Account requests whose X-Goblog-Tenant header named no tenant: ignored, not passed on.",
		}, func() float64 { return float64(h.InvalidTenants()) }),
	)
	if d != nil {
		reg.MustRegister(wsd.NewCollector("accountservice", d))
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
