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

	"github.com/prometheus/client_golang/prometheus"
	. "github.com/smartystreets/goconvey/convey"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/turbine/api"
)

type fakeSubscription struct{ subscribed bool }

func (f *fakeSubscription) Subscribed() bool { return f.subscribed }
func (f *fakeSubscription) Stats() discoverytoken.ConsumerStats {
	return discoverytoken.ConsumerStats{Subscribed: f.subscribed}
}

type fakeProtection []string

func (f fakeProtection) ProtectedIDs() []string { return f }

func TestServer(t *testing.T) {
	Convey("Given a turbine with one instance whose stream reported", t, func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reg := discoverytoken.NewRegistry(discoverytoken.RegistryConfig{})
		for _, id := range []string{"a", "b"} {
			reg.Apply(discoverytoken.Token{State: discoverytoken.StateUp, Address: "10.0.1.7", Port: 8181,
				Service: "accountservice", InstanceID: id, TTLSeconds: 15, Timestamp: time.Now()})
		}
		agg := NewAggregator(0, 0)
		host := agg.AddHost("a", "accountservice", "")
		for _, s := range loadSamples(t, "testdata/host-ok.stream") {
			mustUpdate(t, agg, host, s)
		}
		cfg := testConfig()
		cfg.MaxClients = 2
		hub := NewHub(agg, 10*time.Millisecond, cfg.MaxClusters)
		go func() { _ = hub.Run(ctx) }()
		streams := NewStreams(cfg, agg, verifyAll(), nil)
		sub := &fakeSubscription{subscribed: true}
		scfg := ServerConfig{Config: cfg, Registry: reg, Subscription: sub, Streams: streams, Aggregator: agg, Hub: hub,
			Protection: fakeProtection{"b"}, Collectors: []prometheus.Collector{discoverytoken.NewCollector("turbine", reg, nil)}}
		handler := NewHandler(scfg)
		get := func(path string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			return rec
		}

		Convey("GET /api/instances lists them in the api package's shape, protected and verified", func() {
			rec := get(api.PathInstances)
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Header().Get("Content-Type"), ShouldEqual, "application/json")
			var raw []map[string]any
			So(json.Unmarshal(rec.Body.Bytes(), &raw), ShouldBeNil)
			So(raw, ShouldHaveLength, 2)
			for _, f := range []string{"instanceId", "service", "address", "port", "state", "lastSeen", "streamConnected", "verified", "protected"} {
				So(raw[0], ShouldContainKey, f)
			}
			var got []api.Instance
			So(json.Unmarshal(rec.Body.Bytes(), &got), ShouldBeNil)
			So(got[0].Address, ShouldEqual, "10.0.1.7")
			So(got[0].StreamConnected, ShouldBeFalse)
			So(got[0].Verified, ShouldBeFalse) // Run never verified it
			So(got[0].Protected, ShouldBeFalse)
			So(got[1].Protected, ShouldBeTrue)
		})

		Convey("GET /api/stats counts without copying the registry", func() {
			var st api.Stats
			rec := get(api.PathStats)
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(json.Unmarshal(rec.Body.Bytes(), &st), ShouldBeNil)
			So(st.LiveInstances, ShouldEqual, 2)
			So(st.Protected, ShouldEqual, 1)
			So(st.AggregatedKeys, ShouldEqual, 2)
			So(st.Consumer.Subscribed, ShouldBeTrue)
		})

		Convey("GET /metrics carries the bounds' counters", func() {
			rec := get("/metrics")
			So(rec.Code, ShouldEqual, http.StatusOK)
			for _, m := range []string{`turbine_stream_cut_total{bound="max_line"}`, `turbine_stream_refused_total{reason="unverified"}`,
				"turbine_discovery_instances 2", "turbine_stream_clients_refused_total", "turbine_discovery_instances_protected", "turbine_watcher_bad_tenants_total 0"} {
				So(rec.Body.String(), ShouldContainSubstring, m)
			}
		})

		Convey("GET /health is readiness: 200 while subscribed and 503 when not; /-/live stays 200", func() {
			So(get(api.PathHealth).Code, ShouldEqual, http.StatusOK)
			sub.subscribed = false
			rec := get(api.PathHealth)
			So(rec.Code, ShouldEqual, http.StatusServiceUnavailable)
			So(rec.Body.String(), ShouldContainSubstring, "not subscribed")
			So(get(api.PathLive).Code, ShouldEqual, http.StatusOK)
		})

		Convey("GET / is the dashboard, its own assets only, under a strict CSP", func() {
			rec := get("/")
			So(rec.Code, ShouldEqual, http.StatusOK)
			So(rec.Header().Get("Content-Type"), ShouldStartWith, "text/html")
			So(rec.Header().Get("Content-Security-Policy"), ShouldContainSubstring, "script-src 'self'")
			body := rec.Body.String()
			So(body, ShouldContainSubstring, `src="/ui/app.js"`)
			So(body, ShouldNotContainSubstring, "http://")
			So(body, ShouldNotContainSubstring, "https://")
			js := get("/ui/app.js")
			So(js.Code, ShouldEqual, http.StatusOK)
			So(js.Body.String(), ShouldContainSubstring, "EventSource")
			So(js.Body.String(), ShouldNotContainSubstring, "innerHTML")
			So(get("/ui/app.css").Code, ShouldEqual, http.StatusOK)
			So(get("/nope").Code, ShouldEqual, http.StatusNotFound)
		})

		Convey("GET /turbine.stream sends the aggregate as server-sent events", func() {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+api.PathStream, nil)
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

		Convey("?cluster= narrows /turbine.stream to one service: another one pings", func() {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + api.PathStream + "?cluster=quotes-service")
			So(err, ShouldBeNil)
			defer resp.Body.Close()
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			So(err, ShouldBeNil)
			So(line, ShouldEqual, ": ping\n")
			bad := get(api.PathStream + "?cluster=" + strings.Repeat("x", 300))
			So(bad.Code, ShouldEqual, http.StatusBadRequest)
		})

		Convey("?cluster=<service>@<tenant> selects a tenant: the plain instance is not in the canary's aggregate", func() {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			first := func(cluster string) string {
				resp, err := srv.Client().Get(srv.URL + api.PathStream + "?cluster=" + cluster)
				So(err, ShouldBeNil)
				So(resp.StatusCode, ShouldEqual, http.StatusOK)
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				So(err, ShouldBeNil)
				resp.Body.Close()
				// MaxClients is 2: let this client leave before the next one comes.
				waitFor(t, "the client leaves", func() bool {
					var st api.Stats
					_ = json.Unmarshal(get(api.PathStats).Body.Bytes(), &st)
					return st.Clients.Streaming == 0
				})
				return line
			}
			So(first("accountservice@canary"), ShouldEqual, ": ping\n")
			So(first("@canary"), ShouldEqual, ": ping\n")
			So(first("accountservice@"), ShouldStartWith, "data: ") // plain only: host a
			So(first("accountservice"), ShouldStartWith, "data: ")
			for _, bad := range []string{"@", "accountservice@not%20a%20tenant", "accountservice@a@b", "@" + strings.Repeat("t", 33)} {
				rec := get(api.PathStream + "?cluster=" + bad)
				So(rec.Code, ShouldEqual, http.StatusBadRequest)
				So(rec.Body.String(), ShouldContainSubstring, "cluster")
			}
		})

		Convey("clients beyond MaxClients get 503, and a freed place is reused", func() {
			srv := httptest.NewServer(handler)
			defer srv.Close()
			var bodies []*http.Response
			for range 2 {
				resp, err := srv.Client().Get(srv.URL + api.PathStream)
				So(err, ShouldBeNil)
				defer resp.Body.Close()
				So(resp.StatusCode, ShouldEqual, http.StatusOK)
				bodies = append(bodies, resp)
			}
			var before api.Stats
			So(json.Unmarshal(get(api.PathStats).Body.Bytes(), &before), ShouldBeNil)
			resp, err := srv.Client().Get(srv.URL + api.PathStream)
			So(err, ShouldBeNil)
			resp.Body.Close()
			So(resp.StatusCode, ShouldEqual, http.StatusServiceUnavailable)
			So(resp.Header.Get("Retry-After"), ShouldNotBeEmpty)
			var after api.Stats
			So(json.Unmarshal(get(api.PathStats).Body.Bytes(), &after), ShouldBeNil)
			So(after.Clients.Refused, ShouldEqual, before.Clients.Refused+1)
			bodies[0].Body.Close()
			waitFor(t, "the closed client leaves", func() bool {
				var st api.Stats
				_ = json.Unmarshal(get(api.PathStats).Body.Bytes(), &st)
				return st.Clients.Streaming == 1
			})
			resp, err = srv.Client().Get(srv.URL + api.PathStream)
			So(err, ShouldBeNil)
			resp.Body.Close()
			So(resp.StatusCode, ShouldEqual, http.StatusOK)
		})
	})
}

func TestHubAggregatesOncePerTickForEveryClient(t *testing.T) {
	agg := NewAggregator(0, 0)
	mustUpdate(t, agg, agg.AddHost("a", "accountservice", ""), sample(t, "HystrixCommand", "q", 1))
	hub := NewHub(agg, time.Hour, 2)
	before := hub.Aggregations()
	var first []byte
	for range 50 { // fifty clients in one round
		f, _, err := hub.Frame(Cluster{})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = f
		}
		if string(f) != string(first) {
			t.Fatal("clients of one round got different frames")
		}
	}
	if n := hub.Aggregations() - before; n != 1 {
		t.Fatalf("%d aggregations for 50 clients in one round, want 1", n)
	}
	_, next, _ := hub.Frame(Cluster{Service: "accountservice"})
	if _, _, err := hub.Frame(Cluster{Service: "accountservice", ByTenant: true}); err == nil || hub.ClustersCapped() != 1 {
		t.Fatalf("a third cluster in a round of cap 2: %v (capped %d)", err, hub.ClustersCapped())
	}
	hub.Tick()
	select {
	case <-next:
	default:
		t.Fatal("Tick did not wake the waiting clients")
	}
	if _, _, err := hub.Frame(Cluster{}); err != nil || hub.Aggregations()-before != 3 {
		t.Fatalf("next round: %v, %d aggregations", err, hub.Aggregations()-before)
	}
}
