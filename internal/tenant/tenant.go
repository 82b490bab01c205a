// Package tenant holds the one definition of a goblog tenant: the name a
// request carries in its X-Goblog-Tenant header and a service declares with
// the goblog.tenant label. A tenant ("canary", "shadow", a team's sandbox)
// runs beside the plain tasks of the same logical service; requests that
// carry it go to its tasks, every other request never does.
package tenant

import "context"

// Header is the request header that names a request's tenant.
const Header = "X-Goblog-Tenant"

// Labels a service carries: its tenant, and the logical service it is a
// version of (default: the service name without the stack prefix).
const (
	LabelTenant  = "goblog.tenant"
	LabelService = "goblog.service"
)

// MaxLen is the longest tenant name.
const MaxLen = 32

// Valid reports whether name is a tenant name: 1 to MaxLen ASCII letters,
// digits and '-'. Anything else is not a tenant, whoever claims it.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > MaxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// FromHeader returns the tenant a request's header values name (values is
// r.Header[Header], canonical key). present is false without the header;
// name is "" when the header is there but names no tenant (empty, invalid,
// or repeated): the caller ignores it and counts it. It does not allocate.
func FromHeader(values []string) (name string, present bool) {
	if values == nil {
		return "", false
	}
	if len(values) != 1 || !Valid(values[0]) {
		return "", true
	}
	return values[0], true
}

type ctxKey struct{}

// NewContext returns ctx carrying the tenant name, for the calls a request
// makes to the next hop (see FromContext).
func NewContext(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, ctxKey{}, name)
}

// FromContext returns the tenant ctx carries, if any.
func FromContext(ctx context.Context) (string, bool) {
	name, ok := ctx.Value(ctxKey{}).(string)
	return name, ok && name != ""
}
