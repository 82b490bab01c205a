package turbine

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/smartystreets/goconvey/convey"

	"github.com/goblog/goblog/discoverytoken"
)

type fakeSubscription struct{ subscribed bool }

func (f fakeSubscription) Subscribed() bool { return f.subscribed }
func (f fakeSubscription) Stats() discoverytoken.ConsumerStats {
	return discoverytoken.ConsumerStats{Subscribed: f.subscribed}
}

func TestServer(t *testing.T) {
	Convey("Given a turbine with one instance whose stream reported", t, func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reg := discoverytoken.NewRegistry(discoverytoken.RegistryConfig{})
		reg.Apply(discoverytoken.Token{State: discoverytoken.StateUp, Address: "10.0.1.7", Port: 8181,
			Service: "accountservice", InstanceID: "a", TTLSeconds: 15, Timestamp: time.Now()})
		agg := NewAggregator()
		host := agg.AddHost("a")
		for _, s := range loadSamples(t, "testdata/host-ok.stream") {
			agg.Update(host, s)
		}
		streams := NewStreams(ctx, StreamsConfig{}, agg)
		sub := &fakeSubscription{subscribed: true}
		cfg := ServerConfig{Registry: reg, Subscription: sub, Streams: streams, Aggregator: agg, Interval: 10 * time.Millisecond}

		Convey("GET /api/instances lists it in the contract's shape", func() {
			rec := httptest.NewRecorder()
			NewHandler(cfg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/instances", nil))
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
			var got []map[string]any
			So(json.Unmarshal(rec.Body.Bytes(), &got), ShouldBeNil)
			So(got, ShouldHaveLength, 1)
			for _, f := range []string{"instanceId", "service", "address", "port", "state", "lastSeen", "streamConnected"} {
				So(got[0], ShouldContainKey, f)
			}
			So(got[0]["address"], ShouldEqual, "10.0.1.7")
			So(got[0]["streamConnected"], ShouldEqual, false)
		})

		Convey("GET /health is 200 while subscribed and 503 when not", func() {
			rec := httptest.NewRecorder()
			NewHandler(cfg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			So(rec.Code, ShouldEqual, http.StatusOK)
			sub.subscribed = false
			cfg.Subscription = sub
			rec = httptest.NewRecorder()
			NewHandler(cfg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			So(rec.Code, ShouldEqual, http.StatusServiceUnavailable)
			So(rec.Body.String(), ShouldContainSubstring, "not subscribed")
		})

		Convey("GET /turbine.stream sends the aggregate as server-sent events", func() {
			srv := httptest.NewServer(NewHandler(cfg))
			defer srv.Close()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/turbine.stream", nil)
			resp, err := srv.Client().Do(req)
			So(err, ShouldBeNil)
			defer resp.Body.Close()
			So(resp.Header.Get("Content-Type"), ShouldStartWith, "text/event-stream")
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			types := map[string]bool{}
			for lines := 0; len(types) < 2 && lines < 100 && sc.Scan(); lines++ {
				line, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var s map[string]any
				So(json.Unmarshal([]byte(line), &s), ShouldBeNil)
				So(s["reportingHosts"], ShouldEqual, 1)
				types[s["type"].(string)] = true
			}
			So(types, ShouldContainKey, "HystrixCommand")
			So(types, ShouldContainKey, "HystrixThreadPool")
		})

		Convey("GET /turbine.stream pings while there is nothing to aggregate", func() {
			cfg.Aggregator = NewAggregator()
			srv := httptest.NewServer(NewHandler(cfg))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + "/turbine.stream")
			So(err, ShouldBeNil)
			defer resp.Body.Close()
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			So(err, ShouldBeNil)
			So(line, ShouldEqual, ": ping\n")
		})
	})
}
