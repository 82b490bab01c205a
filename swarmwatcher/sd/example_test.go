package sd_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"
	kitsd "github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	kitlog "github.com/go-kit/log"

	wsd "github.com/goblog/goblog/swarmwatcher/sd"
)

// The go-kit way: Instancer → Endpointer → round robin → retry.
func ExampleNewInstancer() {
	inst, err := wsd.NewInstancer(wsd.Config{
		WatcherURL: "http://swarmwatcher:6969",
		Service:    "goblog_quotes-service",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Stop()

	factory := func(instance string) (endpoint.Endpoint, io.Closer, error) {
		return func(ctx context.Context, _ any) (any, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+instance+"/api/quote", nil)
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		}, nil, nil
	}
	endpointer := kitsd.NewEndpointer(inst, factory, kitlog.NewNopLogger())
	defer endpointer.Close()
	quote := lb.Retry(2, time.Second, lb.NewRoundRobin(endpointer))
	_, _ = quote(context.Background(), nil)
}

// At the HTTP level: a client (or an httputil.ReverseProxy) whose transport
// balances over the passing tasks, by name until the watcher first answers.
func ExampleNewTransport() {
	inst, err := wsd.NewInstancer(wsd.Config{
		WatcherURL: "http://swarmwatcher:6969",
		Service:    "accountservice", // finds goblog_accountservice
		Port:       6767,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Stop()
	tr := wsd.NewTransport(inst, wsd.TransportConfig{Fallback: http.DefaultTransport})
	defer tr.Close()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get("http://accountservice:6767/accounts/10000")
	if err == nil {
		resp.Body.Close()
	}
}
