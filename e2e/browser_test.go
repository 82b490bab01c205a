//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/browsertest"
)

// Browser starts Debian's chromium headless for one test and returns a tab's context,
// ended with the test or after timeout (internal/browsertest).
func Browser(t *testing.T, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	return browsertest.Open(t, width, height, timeout)
}

// Eval evaluates a JavaScript expression in the page and returns it as a string.
func Eval(ctx context.Context, expr string) (string, error) { return browsertest.Eval(ctx, expr) }

// SaveScreenshot writes a full-page PNG of the tab to e2e/output/<name> and returns its path.
func SaveScreenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	return browsertest.Screenshot(t, ctx, filepath.Join(RepoRoot, "e2e", "output"), name, true)
}
