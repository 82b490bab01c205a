package sd

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/goblog/goblog/internal/tenant"
)

// tenantRoutes is a Discovery's routing by tenant: one go-kit balancer per
// tenant that has a service, made on the first request that names it. A
// request without the header costs one map lookup and nothing else.
type tenantRoutes struct {
	d *Discovery

	// byName is read on every tenant request without a lock and replaced
	// whole (copy on write) when a tenant is added; mu serialises writers.
	byName atomic.Pointer[map[string]*Transport]
	mu     sync.Mutex
	closed bool

	routed, fallback, invalid atomic.Uint64
}

// TenantStats counts the requests that carried the tenant header.
type TenantStats struct {
	// Routed went to their tenant's tasks.
	Routed uint64
	// Fallback named a tenant with no passing task (or no service, or one
	// beyond MaxTenants) and went to the plain tasks.
	Fallback uint64
	// Invalid carried a header that is no tenant (see tenant.Valid; also an
	// empty or repeated header): it was ignored, the request went to the
	// plain tasks.
	Invalid uint64
}

// pick returns the transport for req: its tenant's, or nil for the plain
// one. It never allocates for a request without the header.
func (r *tenantRoutes) pick(req *http.Request) *Transport {
	name, present := tenant.FromHeader(req.Header[tenant.Header])
	if !present {
		return nil
	}
	if name == "" {
		r.invalid.Add(1)
		return nil
	}
	tr := r.transport(name)
	if tr == nil || tr.Instances() == 0 {
		r.fallback.Add(1)
		return nil
	}
	r.routed.Add(1)
	return tr
}

// transport returns the tenant's balancer, made when the Instancer knows the
// tenant; nil when it does not.
func (r *tenantRoutes) transport(name string) *Transport {
	if m := r.byName.Load(); m != nil {
		if tr, ok := (*m)[name]; ok {
			return tr
		}
	}
	if !r.d.inst.hasTenant(name) {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	old := map[string]*Transport{}
	if m := r.byName.Load(); m != nil {
		if tr, ok := (*m)[name]; ok {
			return tr
		}
		old = *m
	}
	next := make(map[string]*Transport, len(old)+1)
	for t, tr := range old {
		if len(old) >= MaxTenants && !r.d.inst.hasTenant(t) {
			// At the bound: balancers of tenants that have gone make room.
			// A request still on one finishes; the next finds none.
			tr.Close()
			continue
		}
		next[t] = tr
	}
	if len(next) >= MaxTenants {
		return nil
	}
	tr := NewTransport(r.d.inst.Tenant(name), TransportConfig{
		Base: r.d.base, MaxAttempts: 2, Timeout: r.d.cfg.Timeout, Logger: r.d.cfg.Logger.With("tenant", name),
	})
	next[name] = tr
	r.byName.Store(&next)
	r.d.cfg.Logger.Info("routing a tenant over its own tasks", "tenant", name, "tasks", tr.Instances())
	return tr
}

// close ends every tenant's balancer.
func (r *tenantRoutes) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if m := r.byName.Load(); m != nil {
		for _, tr := range *m {
			tr.Close()
		}
	}
	r.byName.Store(nil)
}

func (r *tenantRoutes) stats() TenantStats {
	return TenantStats{Routed: r.routed.Load(), Fallback: r.fallback.Load(), Invalid: r.invalid.Load()}
}
