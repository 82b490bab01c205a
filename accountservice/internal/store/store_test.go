package store

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

func TestSeedIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(); n != SeedCount {
		t.Fatalf("first open: %d accounts, want %d", n, SeedCount)
	}
	s.Close()

	for i := 0; i < 2; i++ {
		s, err = Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Count(); n != SeedCount {
			t.Fatalf("reopen %d: %d accounts, want %d", i, n, SeedCount)
		}
		s.Close()
	}
	s, _ = Open(path)
	defer s.Close()
	for _, tc := range []struct{ id, name string }{{"10000", "Person_0"}, {"10042", "Person_42"}, {"10099", "Person_99"}} {
		a, err := s.Get(tc.id)
		if err != nil || a.ID != tc.id || a.Name != tc.name {
			t.Errorf("Get(%s) = %+v, %v; want %s", tc.id, a, err, tc.name)
		}
	}
}

func TestUnknownID(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"10100", "9999", "0", ""} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): want ErrNotFound, got %v", id, err)
		}
	}
}

func TestClosedStoreFailsCheck(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("open store unhealthy: %v", err)
	}
	s.Close()
	if err := s.Check(); err == nil {
		t.Fatal("closed store reported healthy")
	}
	if _, err := s.Get("10000"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("closed store: want a store error, got %v", err)
	}
}

func TestConcurrentReads(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := s.Get("10001"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestOpenBadPath(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing-dir", "a.db")); err == nil {
		t.Fatal("want an error for a path in a missing directory")
	}
}
