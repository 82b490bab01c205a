// Command benchreport reads the raw files of one gatling/bench.sh run and
// writes its table of figures (P1 … P10) as Markdown to -o and to stdout.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/goblog/goblog/gatling/internal/bench"
	"github.com/goblog/goblog/internal/conf"
)

func main() {
	s := conf.New("benchreport", "Builds the benchmark table from the files gatling/bench.sh collected:\n  benchreport -dir RUN_DIR [-o results.md]")
	var dir, out string
	s.String(&dir, "dir", "", "run `directory` written by gatling/bench.sh (required)")
	s.String(&out, "o", "", "write the Markdown table to this `file` as well")
	if done, err := s.Parse(os.Args[1:]); done || err != nil {
		os.Exit(s.ExitCode(err))
	}
	if dir == "" {
		os.Exit(s.ExitCode(errors.New("-dir is required")))
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "benchreport: %s is not a directory\n", dir)
		os.Exit(2)
	}
	res := bench.Build(dir)
	var buf bytes.Buffer
	if err := bench.Markdown(&buf, res); err != nil {
		fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
		os.Exit(1)
	}
	if out != "" {
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "benchreport: %v\n", err)
			os.Exit(1)
		}
	}
	os.Stdout.Write(buf.Bytes())
}
