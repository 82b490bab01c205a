//go:build !linux

package lbclient

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist.
func setUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
