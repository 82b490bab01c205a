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
// through byName. stop ends it.
func watcherTransport(watcherURL, quotesURL string, byName http.RoundTripper, logger *slog.Logger) (http.RoundTripper, func(), error) {
	u, err := url.Parse(quotesURL)
	if err != nil || u.Hostname() == "" {
		return nil, nil, fmt.Errorf("quotes URL %q: want scheme://host[:port]", quotesURL)
	}
	port, _ := strconv.Atoi(u.Port())
	d, err := wsd.NewDiscovery(wsd.DiscoveryConfig{WatcherURL: watcherURL, Service: u.Hostname(), Port: port, Fallback: byName, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return d, d.Close, nil
}
