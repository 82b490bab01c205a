package exepages

import (
	"bytes"
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/syncbuf"
)

// The test binary releases its own pages and goes on running: the code it
// runs next faults back in, and its resident file pages shrink.
func TestReleaseShrinksTheResidentBinary(t *testing.T) {
	r, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d mappings, %d bytes: RssFile %d kB before, %d kB after", r.Mappings, r.Bytes, r.RSSFileBefore>>10, r.RSSFileAfter>>10)
	if r.Mappings == 0 || r.Bytes == 0 {
		t.Fatalf("released nothing: %+v", r)
	}
	if r.RSSFileAfter >= r.RSSFileBefore {
		t.Errorf("RssFile did not shrink: %d before, %d after", r.RSSFileBefore, r.RSSFileAfter)
	}
	// Code and read-only data are intact after the release: run some that
	// this test has not run yet and read a table from the binary.
	xs := []string{"c", "a", "b"}
	sort.Strings(xs)
	if xs[0] != "a" || xs[2] != "c" {
		t.Errorf("sorted %v", xs)
	}
	if _, err := Release(); err != nil {
		t.Errorf("second release: %v", err)
	}
}

func TestRunReleasesAtOnceAndStopsWithItsContext(t *testing.T) {
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, 5*time.Millisecond, logger) }()
	// Wait for a second release (a debug line), then stop.
	for !strings.Contains(logs.String(), `"msg":"binary's pages released"`) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"binary's pages released; again every interval","interval":"5ms","mappings":`) {
		t.Errorf("no first-release line in %s", logs.String())
	}
}

func TestRunWithoutIntervalReleasesNothing(t *testing.T) {
	var logs bytes.Buffer
	if err := Run(context.Background(), 0, slog.New(slog.NewJSONHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged %s", logs.String())
	}
}
