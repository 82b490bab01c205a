package sd

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	kitsd "github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
)

// backend answers with its own name and records the Host header it saw.
func backend(t testing.TB, name string, hosts *sync.Map) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(name, r.Host)
		if r.URL.Path == "/big" {
			io.WriteString(w, strings.Repeat("x", 1<<20))
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// refused returns an address that refuses connections.
func refused(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func call(t *testing.T, c *http.Client, method, url string, body io.Reader) (string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestTransportRoundRobinAndHost(t *testing.T) {
	var hosts sync.Map
	a, b := backend(t, "a", &hosts), backend(t, "b", &hosts)
	tr := NewTransport(kitsd.FixedInstancer{a, b}, TransportConfig{})
	defer tr.Close()
	c := &http.Client{Transport: tr}
	got := map[string]int{}
	for i := 0; i < 10; i++ {
		name, err := call(t, c, http.MethodGet, "http://accountservice:6767/accounts/10000", nil)
		if err != nil {
			t.Fatal(err)
		}
		got[name]++
	}
	if got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("spread %v, want 5 and 5", got)
	}
	if h, _ := hosts.Load("a"); h != "accountservice:6767" {
		t.Fatalf("Host header = %v, want the logical name", h)
	}
	// A large body is still readable after RoundTrip returned (lb.Retry
	// cancels its own context on return; the attempt must not use it).
	body, err := call(t, c, http.MethodGet, "http://accountservice:6767/big", nil)
	if err != nil || len(body) != 1<<20 {
		t.Fatalf("big body: %d bytes, %v", len(body), err)
	}
}

func TestTransportRetriesRefusedIdempotentOnly(t *testing.T) {
	var hosts sync.Map
	good := backend(t, "good", &hosts)
	dead := refused(t)
	// Sorted, the dead address comes first for the round robin's first pick
	// in half the calls; every GET must still succeed.
	tr := NewTransport(kitsd.FixedInstancer{dead, good}, TransportConfig{})
	defer tr.Close()
	c := &http.Client{Transport: tr}
	for i := 0; i < 6; i++ {
		if name, err := call(t, c, http.MethodGet, "http://svc/", nil); err != nil || name != "good" {
			t.Fatalf("GET %d = %q, %v; want good after one retry", i, name, err)
		}
	}
	failures := 0
	for i := 0; i < 6; i++ {
		if _, err := call(t, c, http.MethodPost, "http://svc/", strings.NewReader("x")); err != nil {
			failures++
		}
	}
	if failures != 3 {
		t.Fatalf("%d of 6 POSTs failed, want 3 (never retried, half pick the dead instance)", failures)
	}
	// A POST whose body can be rewound is still not retried: not idempotent.
	// A PUT with GetBody is.
	for i := 0; i < 4; i++ {
		if _, err := call(t, c, http.MethodPut, "http://svc/", strings.NewReader("x")); err != nil {
			t.Fatalf("PUT with a rewindable body: %v", err)
		}
	}
}

func TestTransportNoInstances(t *testing.T) {
	tr := NewTransport(kitsd.FixedInstancer{}, TransportConfig{})
	defer tr.Close()
	_, err := call(t, &http.Client{Transport: tr}, http.MethodGet, "http://svc/", nil)
	if !errors.Is(err, lb.ErrNoEndpoints) {
		t.Fatalf("err = %v, want lb.ErrNoEndpoints", err)
	}
	if tr.Instances() != 0 {
		t.Fatalf("Instances() = %d", tr.Instances())
	}
}

func TestTransportAllDead(t *testing.T) {
	tr := NewTransport(kitsd.FixedInstancer{refused(t), refused(t), refused(t)}, TransportConfig{MaxAttempts: 3})
	defer tr.Close()
	_, err := call(t, &http.Client{Transport: tr}, http.MethodGet, "http://svc/", nil)
	if err == nil || !strings.Contains(err.Error(), "attempts: 3") {
		t.Fatalf("err = %v, want a refusal after 3 attempts", err)
	}
}

type answer string

func (a answer) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(string(a))), Header: http.Header{}}, nil
}

// stateInstancer is an Instancer that reports a fixed state.
type stateInstancer struct {
	kitsd.FixedInstancer
	err error
}

func (s stateInstancer) Register(ch chan<- kitsd.Event) {
	ch <- kitsd.Event{Instances: s.FixedInstancer, Err: s.err}
}

func (s stateInstancer) State() kitsd.Event {
	return kitsd.Event{Instances: s.FixedInstancer, Err: s.err}
}

func TestTransportFallback(t *testing.T) {
	var hosts sync.Map
	good := backend(t, "good", &hosts)
	for _, tc := range []struct {
		name string
		inst kitsd.Instancer
		want string // "" means an error
	}{
		{"backend down, never answered", stateInstancer{err: errors.New("connect: refused")}, "by name"},
		{"backend says no instance", stateInstancer{}, ""},
		{"instances known", stateInstancer{FixedInstancer: kitsd.FixedInstancer{good}}, "good"},
		{"instancer without State", kitsd.FixedInstancer{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTransport(tc.inst, TransportConfig{Fallback: answer("by name")})
			defer tr.Close()
			got, err := call(t, &http.Client{Transport: tr}, http.MethodGet, "http://svc/", nil)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestTransportUsableAsSoonAsMade: go-kit's Endpointer takes the Instancer's
// set in a goroutine of its own; NewTransport must not return before it has,
// or a request sent at once finds no endpoint.
func TestTransportUsableAsSoonAsMade(t *testing.T) {
	for name, inst := range map[string]kitsd.Instancer{
		"State-reporting": stateInstancer{FixedInstancer: kitsd.FixedInstancer{"10.0.1.7:6767"}},
		"fixed":           kitsd.FixedInstancer{"10.0.1.7:6767"},
	} {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < 500; i++ {
				tr := NewTransport(inst, TransportConfig{Base: answer("ok")})
				req, _ := http.NewRequest(http.MethodGet, "http://svc/", nil)
				resp, err := tr.RoundTrip(req)
				tr.Close()
				if err != nil {
					t.Fatalf("request %d, right after NewTransport: %v", i, err)
				}
				resp.Body.Close()
			}
		})
	}
}
