package turbine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/internal/tenant"
	watcherapi "github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/turbine/api"
)

// Placement is what the source of truth says of an address a token claims for a service.
type Placement struct {
	// Running: the address is a running task of one of the service's versions (the plain
	// swarm service or a tenant's).
	Running bool
	// Tenant is the tenant of that version, "" for the plain one.
	Tenant string
}

// Verifier answers whether an address is a running task of a (logical) service, and of
// which tenant: the check a discovery token's claim must pass before turbine dials it. Err
// means the source of truth could not be asked; the caller then dials nothing new.
type Verifier interface {
	RunningTask(ctx context.Context, service, address string) (Placement, error)
}

// maxWatcherBody bounds the watcher's answer (a 400-task swarm is well under 1 MiB).
const maxWatcherBody = 8 << 20

// maxCachedServices bounds the watcher cache; it is flushed when full.
const maxCachedServices = 256

// WatcherVerifier asks the swarmwatcher's /api/services?logical=<service> for every version
// of a logical service in its stack (the plain swarm service <stack>_<service> and its
// tenants', e.g. <stack>_<service>-canary labelled goblog.tenant=canary,
// goblog.service=<service>; another stack's services do not count) and keeps
// each service's running-task addresses, with their tenant, for TTL, so a burst of tokens
// costs one query per service and TTL. The tenant is the watcher's (the service's label),
// never the token's. It is safe for concurrent use.
type WatcherVerifier struct {
	base   string
	stack  string
	ttl    time.Duration
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached

	queries, errors, hits, full, badTenants atomic.Uint64
	lastErr                                 atomic.Pointer[string]
	lastOK                                  atomic.Pointer[time.Time]
}

// cached is one logical service's running tasks: address → tenant ("" for plain).
type cached struct {
	addrs map[string]string
	at    time.Time
}

var _ Verifier = (*WatcherVerifier)(nil)

// NewWatcherVerifier returns a verifier against the watcher at base (http://host:port).
func NewWatcherVerifier(base, stack string, ttl, timeout time.Duration) *WatcherVerifier {
	return &WatcherVerifier{
		base: base, stack: stack, ttl: ttl, now: time.Now,
		client: &http.Client{Timeout: timeout},
		cache:  map[string]cached{},
	}
}

// RunningTask reports whether address is the IP of a running task of a version of the
// logical service, and that version's tenant.
func (v *WatcherVerifier) RunningTask(ctx context.Context, service, address string) (Placement, error) {
	now := v.now()
	v.mu.Lock()
	c, ok := v.cache[service]
	v.mu.Unlock()
	if !ok || now.Sub(c.at) >= v.ttl {
		addrs, err := v.fetch(ctx, service)
		if err != nil {
			msg := err.Error()
			v.errors.Add(1)
			v.lastErr.Store(&msg)
			return Placement{}, err
		}
		v.lastOK.Store(&now)
		c = cached{addrs: addrs, at: now}
		v.mu.Lock()
		if len(v.cache) >= maxCachedServices {
			v.full.Add(1)
			clear(v.cache)
		}
		v.cache[service] = c
		v.mu.Unlock()
	} else {
		v.hits.Add(1)
	}
	t, running := c.addrs[normAddr(address)]
	return Placement{Running: running, Tenant: t}, nil
}

// normAddr spells an IP address one way, so "::ffff:10.0.0.1" or "fe80::0001" written two
// ways still compare equal; anything else is kept as given.
func normAddr(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.Unmap().String()
	}
	return a
}

// fetch asks the watcher for the versions of one logical service. A watcher that predates
// tenants ignores ?logical= and answers every service without a logical name: then the plain
// service <stack>_<service> is the only version, as before tenants.
func (v *WatcherVerifier) fetch(ctx context.Context, service string) (map[string]string, error) {
	v.queries.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+"/api/services?logical="+url.QueryEscape(service), nil)
	if err != nil {
		return nil, fmt.Errorf("watcher: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("watcher: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWatcherBody+1))
	if err != nil {
		return nil, fmt.Errorf("watcher: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("watcher: GET /api/services: %s", resp.Status)
	}
	if len(body) > maxWatcherBody {
		return nil, fmt.Errorf("watcher: answer over %d bytes", maxWatcherBody)
	}
	var services []watcherapi.Service
	if err := json.Unmarshal(body, &services); err != nil {
		return nil, fmt.Errorf("watcher: decode /api/services: %w", err)
	}
	prefix := v.stack + "_"
	addrs := map[string]string{}
	for _, s := range services {
		switch {
		case !strings.HasPrefix(s.Name, prefix): // another stack's
			continue
		case s.Logical == service:
		case s.Logical == "" && s.Name == prefix+service: // a watcher without tenants
		default:
			continue
		}
		for _, t := range s.Tasks {
			if t.State != "running" || t.Address == "" {
				continue
			}
			ten := t.Tenant
			if ten == "" {
				ten = s.Tenant
			}
			if ten != "" && !tenant.Valid(ten) {
				// The watcher refuses invalid labels itself; a tenant it sends anyway is
				// not trusted to select anything: the task stays unverified.
				v.badTenants.Add(1)
				continue
			}
			addrs[normAddr(t.Address)] = ten
		}
	}
	return addrs, nil
}

// Stats returns the verifier's counters.
func (v *WatcherVerifier) Stats() api.WatcherStats {
	s := api.WatcherStats{Queries: v.queries.Load(), Errors: v.errors.Load(), CacheHits: v.hits.Load(), CacheFull: v.full.Load(), BadTenants: v.badTenants.Load()}
	if p := v.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	if p := v.lastOK.Load(); p != nil {
		s.LastSuccess = p.UTC()
	}
	return s
}
