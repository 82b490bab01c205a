//go:build !linux

package exepages

// Release does nothing here: it needs Linux's madvise and /proc.
func Release() (Result, error) { return Result{}, ErrUnsupported }
