package hostip

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestDiscover(t *testing.T) {
	local := func() ([]netip.Addr, error) { return addrs("172.18.0.5", "10.0.1.7"), nil }
	tests := []struct {
		name        string
		lookup      func(calls int) ([]netip.Addr, error)
		local       func() ([]netip.Addr, error)
		wantIP      string
		wantMatched bool
	}{
		{
			name:        "stack address matched even when not first",
			lookup:      func(int) ([]netip.Addr, error) { return addrs("10.0.1.9", "10.0.1.7"), nil },
			local:       local,
			wantIP:      "10.0.1.7",
			wantMatched: true,
		},
		{
			name: "appears in DNS after a few tries",
			lookup: func(calls int) ([]netip.Addr, error) {
				if calls < 3 {
					return nil, errors.New("no such host")
				}
				return addrs("10.0.1.7"), nil
			},
			local:       local,
			wantIP:      "10.0.1.7",
			wantMatched: true,
		},
		{
			name:   "never in DNS falls back to the first address",
			lookup: func(int) ([]netip.Addr, error) { return addrs("10.0.1.9"), nil },
			local:  local,
			wantIP: "172.18.0.5",
		},
		{
			name:   "no interface address at all",
			lookup: func(int) ([]netip.Addr, error) { return nil, nil },
			local:  func() ([]netip.Addr, error) { return nil, nil },
			wantIP: "",
		},
		{
			name:   "interfaces cannot be listed",
			lookup: func(int) ([]netip.Addr, error) { return nil, nil },
			local:  func() ([]netip.Addr, error) { return nil, errors.New("boom") },
			wantIP: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			res := Discover(context.Background(), Config{
				Name:     "tasks.accountservice",
				Attempts: 5,
				Wait:     time.Millisecond,
				Lookup: func(context.Context, string) ([]netip.Addr, error) {
					calls++
					return tt.lookup(calls)
				},
				LocalAddrs: tt.local,
			})
			if res.IP != tt.wantIP || res.Matched != tt.wantMatched {
				t.Fatalf("got %+v, want IP %q matched %v", res, tt.wantIP, tt.wantMatched)
			}
			if res.Reason == "" {
				t.Fatal("every result must say how it was found")
			}
		})
	}
}

func TestDiscoverStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Discover(ctx, Config{
		Name:       "tasks.x",
		Attempts:   1000,
		Wait:       time.Hour,
		Lookup:     func(context.Context, string) ([]netip.Addr, error) { return nil, errors.New("nx") },
		LocalAddrs: func() ([]netip.Addr, error) { return addrs("10.0.0.2"), nil },
	})
	if res.IP != "10.0.0.2" || res.Matched {
		t.Fatalf("got %+v", res)
	}
}

func TestDefaultRouteInterface(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/route"
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth1\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	if err := os.WriteFile(path, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := defaultRouteInterface(path); got != "eth1" {
		t.Fatalf("got %q, want eth1", got)
	}
	if got := defaultRouteInterface(dir + "/missing"); got != "" {
		t.Fatalf("missing file: got %q", got)
	}
}

func TestConfirmReportsOnceMatched(t *testing.T) {
	calls := 0
	got := make(chan Result, 1)
	Confirm(context.Background(), Config{
		Name: "tasks.x",
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			calls++
			if calls < 3 {
				return nil, errors.New("nx")
			}
			return addrs("10.0.1.7"), nil
		},
		LocalAddrs: func() ([]netip.Addr, error) { return addrs("10.0.1.7"), nil },
	}, time.Millisecond, func(r Result) { got <- r })
	if r := <-got; r.IP != "10.0.1.7" || !r.Matched {
		t.Fatalf("got %+v", r)
	}
}
