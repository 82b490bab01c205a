package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/goblog/goblog/accountservice/internal/quote"
	"github.com/goblog/goblog/accountservice/internal/store"
)

// heldQuotes blocks every call until release is closed.
type heldQuotes struct {
	release chan struct{}
	calls   atomic.Int64
}

func (h *heldQuotes) Fetch(ctx context.Context) (quote.Quote, error) {
	h.calls.Add(1)
	<-h.release
	return quote.Quote{Text: "q"}, nil
}

func TestBeyondMaxInFlightIs503AtOnceAndHealthStillAnswers(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := &heldQuotes{release: make(chan struct{})}
	a := New(Config{Store: st, Quotes: q, ServedBy: "10.0.1.7", MaxInFlight: 3})
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest("GET", "/accounts/10000", nil))
			codes[i] = rec.Code
		}()
	}
	for q.calls.Load() < 3 {
		runtime.Gosched()
	}
	for i := 0; i < 4; i++ {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest("GET", "/accounts/10001", nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("beyond the bound: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("health while saturated: %d", rec.Code)
	}
	if q.calls.Load() != 3 || a.Overloaded() != 4 {
		t.Fatalf("%d quote calls and %d refused, want 3 and 4", q.calls.Load(), a.Overloaded())
	}
	close(q.release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("request %d within the bound: %d", i, c)
		}
	}
	rec = httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest("GET", "/accounts/10001", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("after the burst: %d, want the slots free again", rec.Code)
	}
}

func BenchmarkGetAccount(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "accounts.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	q := &heldQuotes{release: make(chan struct{})}
	close(q.release)
	a := New(Config{Store: st, Quotes: q, ServedBy: "10.0.1.7", MaxInFlight: 128})
	req := httptest.NewRequest("GET", "/accounts/10042", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
	}
}
