// Package api is accountservice's HTTP API: accounts from the store, each with
// a quote, answered with the serving task's address; health; and the
// testability switch that lets tests make one instance unhealthy.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"sync/atomic"

	"github.com/gorilla/mux"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
	"github.com/goblog/goblog/internal/jsonhttp"
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
	Logger      *slog.Logger
}

// API serves the routes; create it with New.
type API struct {
	cfg       Config
	servedBy  atomic.Pointer[string]
	unhealthy atomic.Bool
	router    *mux.Router
}

// SetServedBy replaces the address reported as servedBy (once the task's
// stack address is confirmed after start).
func (a *API) SetServedBy(addr string) { a.servedBy.Store(&addr) }

func (a *API) served() string { return *a.servedBy.Load() }

// validID accepts what an account id can be: 1 to 19 digits.
var validID = regexp.MustCompile(`^[0-9]{1,19}$`)

// New returns the API's handler.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, router: mux.NewRouter()}
	a.SetServedBy(cfg.ServedBy)
	a.router.HandleFunc("/accounts/{accountId}", a.getAccount).Methods(http.MethodGet)
	a.router.HandleFunc("/health", a.health).Methods(http.MethodGet)
	if cfg.Testability {
		a.router.HandleFunc("/testability/healthy/{state}", a.setHealthy).Methods(http.MethodPut)
	}
	a.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	a.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

func (a *API) getAccount(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["accountId"]
	if !validID.MatchString(id) {
		jsonhttp.WriteError(w, http.StatusBadRequest, "account id must be 1 to 19 digits")
		return
	}
	acc, err := a.cfg.Store.Get(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		jsonhttp.WriteError(w, http.StatusNotFound, "no account "+id)
		return
	case err != nil:
		a.cfg.Logger.Error("read account", "id", id, "err", err)
		jsonhttp.WriteError(w, http.StatusServiceUnavailable, "account store unavailable")
		return
	}
	q, err := a.cfg.Quotes.Fetch(r.Context())
	if err != nil {
		a.cfg.Logger.Warn("quote fallback", "err", err)
		q = quote.Fallback
	}
	jsonhttp.Write(w, http.StatusOK, Account{ID: acc.ID, Name: acc.Name, ServedBy: a.served(), Quote: q})
}

func (a *API) health(w http.ResponseWriter, _ *http.Request) {
	if err := a.cfg.Store.Check(); err != nil {
		jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "DOWN", "reason": "account store: " + err.Error()})
		return
	}
	if a.unhealthy.Load() {
		jsonhttp.Write(w, http.StatusServiceUnavailable, map[string]string{"status": "DOWN", "reason": "marked unhealthy through /testability"})
		return
	}
	jsonhttp.Write(w, http.StatusOK, map[string]string{"status": "UP"})
}

func (a *API) setHealthy(w http.ResponseWriter, r *http.Request) {
	var healthy bool
	switch mux.Vars(r)["state"] {
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
