package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/goblog/goblog/accountservice/internal/breaker"
	"github.com/goblog/goblog/discoverytoken"
)

// serveMetrics serves the quote circuit's Hystrix stream and prom (Prometheus /metrics, nil:
// none) on cfg.MetricsListen until ctx ends. The returned wait blocks until the server has
// stopped.
func serveMetrics(ctx context.Context, cfg Config, b *breaker.Breaker, prom http.Handler, logger *slog.Logger) (wait func(), err error) {
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.ServeMetrics(ctx, ln, prom, logger); err != nil {
			logger.Error("hystrix stream server", "err", err)
		}
	}()
	return wg.Wait, nil
}

// announce publishes this instance's discovery tokens (service name, its stack address
// once known on addr, the metrics port) when an AMQP URL is configured. It never touches
// the request path. The returned wait blocks until DOWN has been sent (or given up) after
// ctx ends.
func announce(ctx context.Context, cfg Config, addr <-chan string, logger *slog.Logger) (wait func(), err error) {
	if cfg.AMQPURL == "" {
		logger.Info("no AMQP URL (-amqp-url / AMQP_URL): running without a broker, no discovery tokens published")
		return func() {}, nil
	}
	_, portStr, err := net.SplitHostPort(cfg.MetricsListen)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	log := logger.With("component", "discoverytoken")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ip string
		select {
		case <-ctx.Done():
			return
		case ip = <-addr:
		}
		p, err := discoverytoken.NewPublisher(discoverytoken.PublisherConfig{
			URL: cfg.AMQPURL, Service: "accountservice", Address: ip, Port: port,
			InstanceID: instanceID(), Interval: cfg.TokenInterval, TTL: cfg.TokenTTL,
			Logger: log, // no Ready: it is made only once the address is known, which is the signal
		})
		if err != nil {
			log.Error("discovery tokens disabled", "err", err)
			return
		}
		_ = p.Run(ctx)
	}()
	return wg.Wait, nil
}

// instanceID is unique per process start: the hostname (the container ID in swarm) and a
// random suffix, so a restarted container is a new instance.
func instanceID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
