// Package hostip finds the address a swarm task has on its stack network.
//
// A task usually has several interfaces (the stack's overlay, docker_gwbridge,
// the ingress network when a port is published), and their order is not
// guaranteed. The embedded DNS name tasks.<service> resolves only on networks
// the service is attached to, so the local address that is also among its
// answers is the task's address on the stack network. When no such address is
// found in time, Discover falls back to the first local address and says so.
package hostip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
		Reason: fmt.Sprintf("could not confirm the stack address through %s (%v); using the first interface address", cfg.Name, lastErr),
	}
}

// InterfaceAddrs lists the host's non-loopback IPv4 addresses in interface order.
func InterfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := p.Addr().Unmap()
		if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			out = append(out, ip)
		}
	}
	return out, nil
}
