package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

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
	inst, err := wsd.NewInstancer(wsd.Config{WatcherURL: watcherURL, Service: u.Hostname(), Port: port, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	base := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	tr := wsd.NewTransport(inst, wsd.TransportConfig{Base: base, MaxAttempts: 2, Fallback: byName, Logger: logger})
	st := inst.State()
	logger.Info("quotes-service by the swarmwatcher", "watcher", watcherURL, "service", u.Hostname(), "tasks", len(st.Instances), "err", st.Err)
	return tr, func() { tr.Close(); inst.Stop() }, nil
}
