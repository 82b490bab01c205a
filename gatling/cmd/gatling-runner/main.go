// Command gatling-runner is the gatling load test packed into an image
// (goblog/gatling-runner) so the benchmark can run it from a container on
// the stack's attachable network and load one task by its IP. It ships no
// feeder: mount one and pass -feeder; reports go under /data/results unless
// -out says otherwise.
package main

import (
	"os"

	"github.com/goblog/goblog/gatling/internal/cli"
)

func main() {
	os.Exit(cli.Main(cli.Env{
		Args:       os.Args[1:],
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		DefaultOut: "/data/results",
	}))
}
