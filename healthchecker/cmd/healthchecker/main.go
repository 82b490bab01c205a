// Command healthchecker is the HEALTHCHECK of every goblog image:
//
//	healthchecker -port 6767 [-path /health] [-timeout 2s]
//
// It exits 0 iff GET http://127.0.0.1:<port><path> answers 2xx within the
// timeout, else 1 (2 for bad flags). It is static and has no other dependency,
// so it runs in FROM scratch images.
//
// It runs inside every service's container and inherits that service's
// environment (PATH among it), so its variables carry a prefix:
// HEALTHCHECKER_PORT, HEALTHCHECKER_PATH, HEALTHCHECKER_TIMEOUT.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goblog/goblog/healthchecker/internal/check"
	"github.com/goblog/goblog/internal/conf"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var (
		port    int
		path    string
		timeout time.Duration
	)
	s := conf.New("healthchecker", "Exits 0 iff GET http://127.0.0.1:<port><path> answers 2xx within the timeout, else 1: the HEALTHCHECK of every goblog image.")
	s.EnvPrefix = "HEALTHCHECKER_"
	s.Int(&port, "port", 0, "port on 127.0.0.1 to probe (required)", func(v int) error {
		if v == 0 {
			return errors.New("is required")
		}
		return conf.Between(1, 65535)(v)
	})
	s.String(&path, "path", "/health", "path to GET", func(v string) error {
		if !strings.HasPrefix(v, "/") {
			return errors.New("must start with /")
		}
		return nil
	})
	s.Duration(&timeout, "timeout", 2*time.Second, "time allowed for the whole check", conf.AtLeast(time.Millisecond))
	if done, err := s.Parse(args); done || err != nil {
		return s.ExitCode(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	if err := check.Run(context.Background(), url, timeout); err != nil {
		fmt.Fprintf(os.Stderr, "healthchecker: %s: %v\n", url, err)
		return 1
	}
	return 0
}
