// Command healthchecker is the HEALTHCHECK of every goblog image:
//
//	healthchecker -port 6767 [-path /health] [-timeout 2s]
//
// It exits 0 iff GET http://127.0.0.1:<port><path> answers 2xx within the
// timeout, else 1 (2 for bad flags). It is static and has no other dependency,
// so it runs in FROM scratch images.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goblog/goblog/healthchecker/internal/check"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("healthchecker", flag.ContinueOnError)
	port := fs.Int("port", 0, "port on 127.0.0.1 to probe (required)")
	path := fs.String("path", "/health", "path to GET")
	timeout := fs.Duration("timeout", 2*time.Second, "time allowed for the whole check")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *port <= 0 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "healthchecker: -port must be 1-65535")
		return 2
	}
	if !strings.HasPrefix(*path, "/") || *timeout <= 0 {
		fmt.Fprintln(os.Stderr, "healthchecker: -path must start with / and -timeout be positive")
		return 2
	}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", *port, *path)
	if err := check.Run(context.Background(), url, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "healthchecker: %s: %v\n", url, err)
		return 1
	}
	return 0
}
