package turbine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	watcherapi "github.com/goblog/goblog/swarmwatcher/api"
	"github.com/goblog/goblog/turbine/api"
)

// Verifier answers whether an address is a running task of a service: the check a
// discovery token's claim must pass before turbine dials it. Err means the source of truth
// could not be asked; the caller then dials nothing new.
type Verifier interface {
	RunningTask(ctx context.Context, service, address string) (bool, error)
}

// maxWatcherBody bounds the watcher's answer (a 400-task swarm is well under 1 MiB).
const maxWatcherBody = 8 << 20

// maxCachedServices bounds the watcher cache; it is flushed when full.
const maxCachedServices = 256

// WatcherVerifier asks the swarmwatcher's /api/services?service=<stack>_<service> and keeps
// each service's running-task addresses for TTL, so a burst of tokens costs one query per
// service and TTL. It is safe for concurrent use.
type WatcherVerifier struct {
	base   string
	stack  string
	ttl    time.Duration
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cached

	queries, errors, hits, full atomic.Uint64
	lastErr                     atomic.Pointer[string]
	lastOK                      atomic.Pointer[time.Time]
}

type cached struct {
	addrs map[string]bool
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

// RunningTask reports whether address is the IP of a running task of service.
func (v *WatcherVerifier) RunningTask(ctx context.Context, service, address string) (bool, error) {
	name := v.stack + "_" + service
	now := v.now()
	v.mu.Lock()
	c, ok := v.cache[name]
	v.mu.Unlock()
	if ok && now.Sub(c.at) < v.ttl {
		v.hits.Add(1)
		return c.addrs[normAddr(address)], nil
	}
	addrs, err := v.fetch(ctx, name)
	if err != nil {
		msg := err.Error()
		v.errors.Add(1)
		v.lastErr.Store(&msg)
		return false, err
	}
	v.lastOK.Store(&now)
	v.mu.Lock()
	if len(v.cache) >= maxCachedServices {
		v.full.Add(1)
		clear(v.cache)
	}
	v.cache[name] = cached{addrs: addrs, at: now}
	v.mu.Unlock()
	return addrs[normAddr(address)], nil
}

// normAddr spells an IP address one way, so "::ffff:10.0.0.1" or "fe80::0001" written two
// ways still compare equal; anything else is kept as given.
func normAddr(a string) string {
	if ip, err := netip.ParseAddr(a); err == nil {
		return ip.Unmap().String()
	}
	return a
}

// fetch asks the watcher for one service's tasks. A watcher without ?service= answers every
// service; the filter on name below keeps the right one either way.
func (v *WatcherVerifier) fetch(ctx context.Context, name string) (map[string]bool, error) {
	v.queries.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+"/api/services?service="+url.QueryEscape(name), nil)
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
	addrs := map[string]bool{}
	for _, s := range services {
		if s.Name != name {
			continue
		}
		for _, t := range s.Tasks {
			if t.State == "running" && t.Address != "" {
				addrs[normAddr(t.Address)] = true
			}
		}
	}
	return addrs, nil
}

// Stats returns the verifier's counters.
func (v *WatcherVerifier) Stats() api.WatcherStats {
	s := api.WatcherStats{Queries: v.queries.Load(), Errors: v.errors.Load(), CacheHits: v.hits.Load(), CacheFull: v.full.Load()}
	if p := v.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	if p := v.lastOK.Load(); p != nil {
		s.LastSuccess = p.UTC()
	}
	return s
}
