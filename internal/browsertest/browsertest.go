// Package browsertest drives Debian's chromium, headless, for the tests that
// look at a page as a person would (the watcher's page, turbine's
// dashboard). It is imported by _test.go files only.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Open starts chromium (CHROMIUM, default /usr/bin/chromium) headless with a
// window of width×height and returns a tab's context, ended with the test or
// after timeout. A machine without chromium fails the test, naming the
// package to install: these tests never skip.
func Open(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not installed at %s (apt-get install chromium, or set CHROMIUM): %v", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser now, not at the first action
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// Eval evaluates a JavaScript expression in the page and returns it as a string.
func Eval(ctx context.Context, expr string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+expr+`)`))
}

// Screenshot writes a PNG of the tab, the full page or the viewport, to
// dir/name and returns the file's path.
func Screenshot(t testing.TB, ctx context.Context, dir, name string, full bool) string {
	t.Helper()
	action := chromedp.CaptureScreenshot()
	if full {
		action = chromedp.FullScreenshot(100) // quality 100: PNG; below: JPEG
	}
	png, err := chromedp.Run(ctx, action)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", file, len(png))
	return file
}
