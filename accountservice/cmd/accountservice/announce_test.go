package main

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/accountservice/internal/breaker"
	"github.com/goblog/goblog/accountservice/internal/quote"
)

func TestDiscoveryFlags(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AMQPURL != "" || c.MetricsListen != ":8181" || c.TokenInterval != 5*time.Second || c.TokenTTL != 15*time.Second {
		t.Fatalf("discovery defaults: %+v", c)
	}
	t.Setenv("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/")
	if c, err := parse(nil); err != nil || c.AMQPURL == "" {
		t.Fatalf("env AMQP_URL not read: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"-token-interval", "0s"}, {"-token-ttl", "1s"}, {"-metrics-listen", ""}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%v) accepted", bad)
		}
	}
}

func TestAnnounceWithoutBrokerReturnsAtOnce(t *testing.T) {
	wait, err := announce(context.Background(), Config{MetricsListen: ":8181"}, make(chan string), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	wait() // must not block: nothing was started
}

func TestAnnounceStopsBeforeTheAddressIsKnown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := announce(ctx, Config{AMQPURL: "amqp://guest:guest@127.0.0.1:1/", MetricsListen: ":8181"}, make(chan string), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("announce did not stop with its context")
	}
}

type fakeQuote struct{}

func (fakeQuote) Fetch(context.Context) (quote.Quote, error) { return quote.Quote{Text: "q"}, nil }

func TestServeMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := breaker.New(fakeQuote{}, breaker.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := serveMetrics(ctx, Config{MetricsListen: addr}, b, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/hystrix.stream")
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data:") {
		t.Fatalf("first stream line %q, %v", line, err)
	}
	cancel()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done: // an open stream does not hold the server up
	case <-time.After(5 * time.Second):
		t.Fatal("metrics server did not stop with an open stream")
	}
	resp.Body.Close()
}
