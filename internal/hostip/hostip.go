// Package hostip finds the address a swarm task has on its stack network.
//
// A task usually has several interfaces (the stack's overlay, docker_gwbridge,
// the ingress network when a port is published), and their order is not
// guaranteed. The embedded DNS name tasks.<service> resolves only on networks
// the service is attached to, so the local address that is also among its
// answers is the task's address on the stack network. When no such address is
// found in time (swarm adds a task to DNS only once it is healthy, so at start
// it is usually not there yet), Discover falls back to the first address that
// is not on the interface carrying the default route (docker_gwbridge) and says
// so; Confirm keeps checking in the background.
package hostip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// Config says where to look. Zero fields take defaults.
type Config struct {
	// Name is a DNS name that resolves to the tasks of this service on the
	// stack network, e.g. "tasks.accountservice". Empty skips the DNS match.
	Name string
	// Attempts and Wait bound how long Discover waits for this task to appear
	// in DNS (it may not yet be registered at start). Defaults: 10 and 300ms.
	Attempts int
	Wait     time.Duration
	// Lookup resolves Name; default net.DefaultResolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// LocalAddrs lists this host's addresses; default the interface addresses.
	LocalAddrs func() ([]netip.Addr, error)
}

// Result is the address found and how it was found, for the start-up log.
type Result struct {
	IP      string // empty when the host has no usable address
	Matched bool   // true when IP was confirmed through Name
	Reason  string
}

// Discover finds this task's address. It never fails: a Result without an IP
// says why in Reason.
func Discover(ctx context.Context, cfg Config) Result {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 10
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 300 * time.Millisecond
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
		}
	}
	if cfg.LocalAddrs == nil {
		cfg.LocalAddrs = InterfaceAddrs
	}
	return discover(ctx, cfg)
}

// Confirm retries the DNS match until it succeeds or ctx ends, and calls found
// with the confirmed address. Use it after Discover fell back.
func Confirm(ctx context.Context, cfg Config, every time.Duration, found func(Result)) {
	if cfg.Name == "" {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		if res := Discover(ctx, Config{Name: cfg.Name, Attempts: 1, Lookup: cfg.Lookup, LocalAddrs: cfg.LocalAddrs}); res.Matched {
			found(res)
			return
		}
	}
}

func discover(ctx context.Context, cfg Config) Result {

	local, err := cfg.LocalAddrs()
	if err != nil {
		return Result{Reason: fmt.Sprintf("list interface addresses: %v", err)}
	}
	if len(local) == 0 {
		return Result{Reason: "no non-loopback IPv4 address on any interface"}
	}
	if cfg.Name == "" {
		return Result{IP: local[0].String(), Reason: "no DNS name to match; using the first interface address"}
	}

	var lastErr error
	for attempt := 0; attempt < cfg.Attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				attempt = cfg.Attempts
				continue
			case <-time.After(cfg.Wait):
			}
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		answers, err := cfg.Lookup(lctx, cfg.Name)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		for _, a := range answers {
			if slices.Contains(local, a.Unmap()) {
				return Result{IP: a.Unmap().String(), Matched: true, Reason: "local address found in " + cfg.Name}
			}
		}
		lastErr = fmt.Errorf("none of %d answers is a local address", len(answers))
	}
	return Result{
		IP:     local[0].String(),
		Reason: fmt.Sprintf("not yet confirmed through %s (%v); using the first address off the default-route interface", cfg.Name, lastErr),
	}
}

// InterfaceAddrs lists the host's non-loopback IPv4 addresses in interface
// order, those of the interface carrying the default route last: in a swarm
// task that interface is docker_gwbridge, never the stack network.
func InterfaceAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	defIface := defaultRouteInterface("/proc/net/route")
	var first, last []netip.Addr
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := p.Addr().Unmap()
			if !ip.Is4() || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
				continue
			}
			if ifc.Name == defIface {
				last = append(last, ip)
			} else {
				first = append(first, ip)
			}
		}
	}
	return append(first, last...), nil
}

// defaultRouteInterface names the interface of the IPv4 default route in a
// /proc/net/route table, or "" when there is none or the file is unreadable.
func defaultRouteInterface(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}
