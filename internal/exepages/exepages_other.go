//go:build !linux

package exepages

// binary is the running executable; there is none to release here.
type binary struct{}

// locate fails here: releasing needs Linux's madvise and /proc.
func locate() (*binary, error) { return nil, ErrUnsupported }

func (*binary) Close() error { return nil }

func (*binary) release() (Result, error) { return Result{}, ErrUnsupported }
