package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// watcherTransport is client-side discovery for the quote call, the seeds'
// way: logical name → swarmwatcher Instancer → go-kit round robin (+ one
// retry on another task). Until the watcher first answers, calls go by name
// through byName. It routes each call by the tenant it carries (the
// X-Goblog-Tenant header the quote client sets): to that tenant's
// quotes-service tasks, or the plain ones when it has none. Close ends it.
func watcherTransport(watcherURL, quotesURL string, byName http.RoundTripper, logger *slog.Logger) (*wsd.Discovery, error) {
	u, err := url.Parse(quotesURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("quotes URL %q: want scheme://host[:port]", quotesURL)
	}
	port, _ := strconv.Atoi(u.Port())
	return wsd.NewDiscovery(wsd.DiscoveryConfig{WatcherURL: watcherURL, Service: u.Hostname(), Port: port, Fallback: byName, Logger: logger})
}
