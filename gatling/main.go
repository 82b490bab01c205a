// Command gatling replays the tutorial's Gatling simulation against
// accountservice (through the edge on 6767 by default) and writes a report.
//
//	go run ./gatling -baseUrl http://localhost:6767 -users 1000 -ramp 10s -duration 30s -pause 1s
//
// Run it with -h for every flag.
package main

import (
	_ "embed"
	"os"
	"path/filepath"

	"github.com/goblog/goblog/gatling/internal/cli"
)

// accounts is the shipped feeder: accountId 10000 … 10099, the seed data.
//
//go:embed accounts.csv
var accounts []byte

func main() {
	os.Exit(cli.Main(cli.Env{
		Args:           os.Args[1:],
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		EmbeddedFeeder: accounts,
		DefaultOut:     filepath.Join("gatling", "results"),
	}))
}
