// Command benchreport reads the raw files of one gatling/bench.sh run and
// writes its table of figures (P1 … P10) as Markdown to -o and to stdout.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/goblog/goblog/gatling/internal/bench"
)

func main() {
	dir := flag.String("dir", "", "run directory written by gatling/bench.sh (required)")
	out := flag.String("o", "", "write the Markdown table to this file as well")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: benchreport -dir RUN_DIR [-o results.md]\n\nBuilds the benchmark table from the files gatling/bench.sh collected.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "benchreport: -dir is required and takes no arguments")
		flag.Usage()
		os.Exit(2)
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "benchreport: %s is not a directory\n", *dir)
		os.Exit(2)
	}
	res := bench.Build(*dir)
	var buf bytes.Buffer
	if err := bench.Markdown(&buf, res); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
			os.Exit(1)
		}
	}
	os.Stdout.Write(buf.Bytes())
}
