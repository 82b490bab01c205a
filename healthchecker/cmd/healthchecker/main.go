// Command healthchecker is the HEALTHCHECK of every goblog image:
//
//	healthchecker -port 6767 [-path /health] [-timeout 2s] [-jitter 3s]
//
// It exits 0 iff GET http://127.0.0.1:<port><path> answers 2xx within the
// timeout, else 1 (2 for bad flags). It is static and has no other dependency,
// so it runs in FROM scratch images.
//
// -jitter spreads the checks of containers that started together. Each check
// is an exec that costs the engine about 75 ms of CPU, and the engine starts a
// container's next check one interval after the previous one ended. Tasks that
// a deploy or a scale starts in the same second therefore check in the same
// second, every interval, for as long as they run: on 2 cores four such execs
// at once held the tutorial's load at p99 12-46 ms for that second. A passing
// check that lingers a random while before exiting moves its container's next
// check by that much, so the phases drift apart within a few intervals. A
// failing check exits at once, and the wait never takes the run past -timeout.
//
// It runs inside every service's container and inherits that service's
// environment (PATH among it), so its variables carry a prefix:
// HEALTHCHECKER_PORT, HEALTHCHECKER_PATH, HEALTHCHECKER_TIMEOUT, HEALTHCHECKER_JITTER.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
		jitter  time.Duration
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
	s.Duration(&jitter, "jitter", 0, "after a passing check, wait a random time below this before exiting, never past -timeout: spreads the checks of containers started together (0: exit at once)", conf.AtLeast(time.Duration(0)))
	if done, err := s.Parse(args); done || err != nil {
		return s.ExitCode(err)
	}
	start := time.Now()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	if err := check.Run(context.Background(), url, timeout); err != nil {
		fmt.Fprintf(os.Stderr, "healthchecker: %s: %v\n", url, err)
		return 1
	}
	sleep(lingerFor(jitter, timeout-time.Since(start), rand.Int64N))
	return 0
}

// sleep is time.Sleep; tests replace it to see the wait without taking it.
var sleep = time.Sleep

// lingerFor picks how long a passing check waits before exiting: uniform in
// [0, jitter) from randN (rand.Int64N), cut to what is left of the timeout.
func lingerFor(jitter, left time.Duration, randN func(n int64) int64) time.Duration {
	if jitter <= 0 || left <= 0 {
		return 0
	}
	return min(time.Duration(randN(int64(jitter))), left)
}
