package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
)

// downQuotes is a quote source that is away: every fetch fails, counted.
type downQuotes struct{ calls atomic.Int64 }

func (d *downQuotes) Fetch(context.Context) (quote.Quote, error) {
	d.calls.Add(1)
	return quote.Quote{}, errors.New("quotes-service unreachable")
}

// TestHealthIsLivenessOfThisInstanceOnly: /health is the container's HEALTHCHECK, so it
// must not fail because a dependency is away (issue 16: a health check that fails for a
// dependency makes swarm kill a live process). With quotes-service down it stays 200 and
// asks quotes-service nothing; the broker is no input of the API at all (discovery tokens
// run beside it). Only this instance's own state (its store, the testability switch) counts.
func TestHealthIsLivenessOfThisInstanceOnly(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	quotes := &downQuotes{}
	a := New(Config{Store: st, Quotes: quotes, ServedBy: "10.0.1.7"})
	get := func(path string) int {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if code := get("/accounts/10000"); code != http.StatusOK {
		t.Fatalf("account with quotes-service down: %d, want 200 (fallback quote)", code)
	}
	before := quotes.calls.Load()
	if before == 0 {
		t.Fatal("the account call did not ask the quote source: the fake is not wired")
	}
	for range 3 {
		if code := get("/health"); code != http.StatusOK {
			t.Fatalf("/health with quotes-service down: %d, want 200", code)
		}
	}
	if after := quotes.calls.Load(); after != before {
		t.Fatalf("/health asked quotes-service %d times, want never", after-before)
	}
	// Its own store closed: that is this instance broken, and /health says so.
	st.Close()
	if code := get("/health"); code != http.StatusServiceUnavailable {
		t.Fatalf("/health with its store closed: %d, want 503", code)
	}
}
