// Package api is accountservice's HTTP API: accounts from the store, each with
// a quote, answered with the serving task's address; health; and the
// testability switch that lets tests make one instance unhealthy.
//
// Account requests are bounded: beyond MaxInFlight at once the API answers
// 503 with Retry-After at once instead of queueing. /health is outside that
// bound and costs next to nothing, so a busy task still answers its checks.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
	"github.com/goblog/goblog/internal/jsonhttp"
	"github.com/goblog/goblog/internal/tenant"
)

// AccountStore is what the API needs of the store.
type AccountStore interface {
	Get(id string) (store.Account, error)
	Check() error
}

// QuoteFetcher gets one quote; an error means "serve the fallback".
type QuoteFetcher interface {
	Fetch(ctx context.Context) (quote.Quote, error)
}

// Account is the answer of GET /accounts/{accountId}.
type Account struct {
	ID       string      `json:"id"`
	Name     string      `json:"name"`
	ServedBy string      `json:"servedBy"`
	Quote    quote.Quote `json:"quote"`
}

// Config wires the API.
type Config struct {
	Store       AccountStore
	Quotes      QuoteFetcher
	ServedBy    string // this task's address on the stack network (see SetServedBy)
	Testability bool   // enables PUT /testability/healthy/{state}
	// MaxInFlight bounds the account requests served at once (0: no bound).
	MaxInFlight int
	Logger      *slog.Logger
}

// RetryAfter is what an overloaded answer tells the client to wait, in seconds.
const RetryAfter = "1"

// API serves the routes; create it with New.
type API struct {
	cfg        Config
	servedBy   atomic.Pointer[string]
	unhealthy  atomic.Bool
	inflight   atomic.Int64
	overloaded atomic.Uint64
	badTenant  atomic.Uint64
	lastLog    atomic.Int64
}

// SetServedBy replaces the address reported as servedBy (once the task's
// stack address is confirmed after start).
func (a *API) SetServedBy(addr string) { a.servedBy.Store(&addr) }

func (a *API) served() string { return *a.servedBy.Load() }

// Overloaded is how many account requests were refused beyond MaxInFlight.
func (a *API) Overloaded() uint64 { return a.overloaded.Load() }

// InvalidTenants is how many account requests carried an X-Goblog-Tenant
// header that names no tenant (ignored: not passed on).
func (a *API) InvalidTenants() uint64 { return a.badTenant.Load() }

// validID accepts what an account id can be: 1 to 19 digits.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 19 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// New returns the API's handler.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg}
	a.SetServedBy(cfg.ServedBy)
	return a
}

const (
	accountsPrefix    = "/accounts/"
	testabilityPrefix = "/testability/healthy/"
)

// ServeHTTP routes by hand: three routes do not need a router's allocations.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/health":
		if a.method(w, r, http.MethodGet) {
			a.health(w)
		}
	case strings.HasPrefix(p, accountsPrefix) && !strings.Contains(p[len(accountsPrefix):], "/"):
		if a.method(w, r, http.MethodGet) {
			a.getAccount(w, r, p[len(accountsPrefix):])
		}
	case a.cfg.Testability && strings.HasPrefix(p, testabilityPrefix) && !strings.Contains(p[len(testabilityPrefix):], "/"):
		if a.method(w, r, http.MethodPut) {
			a.setHealthy(w, p[len(testabilityPrefix):])
		}
	default:
		jsonhttp.WriteError(w, http.StatusNotFound, "no route for "+r.Method+" "+p)
	}
}

func (a *API) method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want {
		return true
	}
	jsonhttp.WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	return false
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request, id string) {
	if !validID(id) {
		jsonhttp.WriteError(w, http.StatusBadRequest, "account id must be 1 to 19 digits")
		return
	}
	if n := a.inflight.Add(1); a.cfg.MaxInFlight > 0 && n > int64(a.cfg.MaxInFlight) {
		a.inflight.Add(-1)
		a.overloaded.Add(1)
		w.Header().Set("Retry-After", RetryAfter)
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "too many requests in flight; retry later")
		return
	}
	defer a.inflight.Add(-1)
	acc, err := a.cfg.Store.Get(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		jsonhttp.WriteError(w, http.StatusNotFound, "no account "+id)
		return
	case err != nil:
		a.logOnce("read account", "id", id, "err", err)
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "account store unavailable")
		return
	}
	q, err := a.cfg.Quotes.Fetch(a.quoteContext(r))
	if err != nil {
		a.logOnce("quote fallback", "err", err)
		q = quote.Fallback
	}
	jsonhttp.Write(w, http.StatusOK, &Account{ID: acc.ID, Name: acc.Name, ServedBy: a.served(), Quote: q})
}

// quoteContext is the request's context, carrying its tenant (if it names
// one) to the quote call, which passes it on.
func (a *API) quoteContext(r *http.Request) context.Context {
	name, present := tenant.FromHeader(r.Header[tenant.Header])
	switch {
	case !present:
		return r.Context()
	case name == "":
		a.badTenant.Add(1)
		return r.Context()
	}
	return tenant.NewContext(r.Context(), name)
}

// logOnce logs at most one line a second: errors on the hot path come in
// floods.
func (a *API) logOnce(msg string, args ...any) {
	if now := time.Now().Unix(); a.lastLog.Swap(now) != now {
		a.cfg.Logger.Warn(msg, args...)
	}
}

var (
	healthUp        = []byte(`{"status":"UP"}` + "\n")
	jsonContentType = []string{"application/json"}
)

func (a *API) health(w http.ResponseWriter) {
	if err := a.cfg.Store.Check(); err != nil {
		jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "DOWN", "reason": "account store: " + err.Error()})
		return
	}
	if a.unhealthy.Load() {
		jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "DOWN", "reason": "marked unhealthy through /testability"})
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(healthUp)
}

func (a *API) setHealthy(w http.ResponseWriter, state string) {
	var healthy bool
	switch state {
	case "true":
		healthy = true
	case "false":
		healthy = false
	default:
		jsonhttp.WriteError(w, http.StatusBadRequest, "state must be true or false")
		return
	}
	a.unhealthy.Store(!healthy)
	a.cfg.Logger.Warn("health switched through /testability", "healthy", healthy)
	jsonhttp.Write(w, http.StatusOK, map[string]any{"servedBy": a.served(), "healthy": healthy})
}
