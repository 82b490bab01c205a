// Package cli is the gatling command: flags, signals, progress line,
// summary and report. Both the gatling binary and the gatling-runner image
// run it.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/goblog/goblog/gatling/internal/feeder"
	"github.com/goblog/goblog/gatling/internal/load"
	"github.com/goblog/goblog/gatling/internal/report"
	"github.com/goblog/goblog/gatling/internal/stats"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the run could not be made or its report not written
	ExitUsage       = 2
	ExitInterrupted = 130
)

// Env is what the command needs from its process.
type Env struct {
	Args           []string
	Stdout, Stderr io.Writer
	// EmbeddedFeeder is the shipped feeder used when -feeder is not given;
	// nil makes -feeder required.
	EmbeddedFeeder []byte
	// DefaultOut is the parent of the timestamped report directory.
	DefaultOut string
	// Now names the default report directory (time.Now when nil); the run
	// itself is timed by the real clock.
	Now func() time.Time
}

const usageHead = `Usage: gatling [flags]

Replays the tutorial's Gatling simulation: -users virtual users start evenly
over -ramp; each loops for -duration: takes the next id from the circular
feeder, GETs <baseUrl>/accounts/{id} with Accept: application/json, checks for
200, pauses -pause. Each user keeps its own connection, as Gatling's do.

Prints a progress line every second on stderr, a summary on stdout, and writes
index.html (charts) and stats.json into the report directory. Ctrl-C stops the
run early and still writes the report.

Example:
  go run ./gatling -baseUrl http://localhost:6767 -users 1000 -ramp 10s -duration 30s -pause 1s

Flags:
`

// Main runs the command with a context cancelled by SIGINT or SIGTERM.
func Main(env Env) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the process the default way
	}()
	return Run(ctx, env)
}

// Run runs the command until the simulation ends or ctx is done.
func Run(ctx context.Context, env Env) int {
	now := env.Now
	if now == nil {
		now = time.Now
	}
	cfg := load.Defaults()
	fs := flag.NewFlagSet("gatling", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.BaseURL, "baseUrl", cfg.BaseURL, "where the service answers (`URL`, http or https)")
	fs.StringVar(&cfg.Path, "path", cfg.Path, "request path; {id} stands for the feeder's id")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "number of virtual users")
	fs.DurationVar(&cfg.Ramp, "ramp", cfg.Ramp, "time over which the users start (0: all at once)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each user loops, from its own start")
	fs.DurationVar(&cfg.Pause, "pause", cfg.Pause, "pause after each request (0s: closed loop, no pause)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "deadline of every request (connect, answer and body)")
	fs.BoolVar(&cfg.KeepAlive, "keepAlive", cfg.KeepAlive, "reuse each user's connection (false: a new connection per request)")
	fs.IntVar(&cfg.MaxRequestsPerConn, "maxRequestsPerConn", 0, "close a user's connection after this many requests (0: no limit)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "progress line and timeline interval")
	feederPath := fs.String("feeder", "", "CSV feeder file with an accountId column (default: the shipped gatling/accounts.csv, ids 10000…10099)")
	out := fs.String("out", "", "report directory (default "+filepath.Join(env.DefaultOut, "<timestamp>")+")")
	quiet := fs.Bool("quiet", false, "no progress line")
	if err := fs.Parse(env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage // the flag package printed the error and the usage
	}
	if fs.NArg() > 0 {
		return usageError(fs, env.Stderr, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0)))
	}
	if err := cfg.Validate(); err != nil {
		return usageError(fs, env.Stderr, err)
	}

	var ids []string
	var err error
	feederName := *feederPath
	switch {
	case feederName != "":
		ids, err = feeder.Load(feederName)
	case env.EmbeddedFeeder != nil:
		feederName = "accounts.csv (shipped)"
		ids, err = feeder.Parse(bytes.NewReader(env.EmbeddedFeeder))
	default:
		err = errors.New("-feeder is required: this binary ships no feeder")
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "gatling: %v\n", err)
		return ExitUsage
	}
	circ, err := feeder.NewCircular(ids)
	if err != nil {
		fmt.Fprintf(env.Stderr, "gatling: feeder: %v\n", err)
		return ExitUsage
	}

	dir := *out
	if dir == "" {
		dir = filepath.Join(env.DefaultOut, now().UTC().Format("20060102-150405"))
	}
	start := time.Now()
	rec := stats.NewRecorder(start)
	progress := func(t load.Tick) {
		if *quiet {
			return
		}
		fmt.Fprintf(env.Stderr, "[%5.0fs] users %d active, %d/%d started | %7.1f req/s | total %d | KO %d | p99 %s so far\n",
			t.Elapsed.Seconds(), t.Users, t.Started, cfg.Users, t.Point.ReqPerSec, t.Progress.Requests.Total, t.Progress.Requests.KO, msTextShort(t.Progress.P99Ms))
	}
	runner, err := load.NewRunner(cfg, circ, rec, progress)
	if err != nil {
		return usageError(fs, env.Stderr, err)
	}
	fmt.Fprintf(env.Stderr, "gatling: %d users over %v, each for %v with %v pause, against %s; report in %s\n",
		cfg.Users, cfg.Ramp, cfg.Duration, cfg.Pause, cfg.BaseURL, dir)
	cpu0 := cpuTime()
	runErr := runner.Run(ctx, start)
	end := time.Now()
	interrupted := runErr != nil
	if interrupted {
		fmt.Fprintln(env.Stderr, "gatling: interrupted, writing the report of what ran")
	}
	cpu := (cpuTime() - cpu0).Seconds()
	wall := end.Sub(start).Seconds()
	s := report.Stats{
		Summary: rec.Summary(end),
		Run: report.Run{
			BaseURL: cfg.BaseURL, Path: cfg.Path, Users: cfg.Users,
			RampS: cfg.Ramp.Seconds(), HoldS: cfg.Duration.Seconds(), PauseS: cfg.Pause.Seconds(), TimeoutS: cfg.Timeout.Seconds(),
			KeepAlive: cfg.KeepAlive, MaxRequestsPerConn: cfg.MaxRequestsPerConn,
			Feeder: feederName, FeederIDs: circ.Len(), UsersStarted: runner.Started(), Interrupted: interrupted,
		},
		Generator: report.Generator{CPUSeconds: round2(cpu), MaxRSSMiB: round2(maxRSSMiB()), GOMAXPROCS: runtime.GOMAXPROCS(0)},
	}
	if wall > 0 {
		s.Generator.CPUPercent = round2(100 * cpu / wall)
	}
	if err := report.Summary(env.Stdout, s); err != nil {
		fmt.Fprintf(env.Stderr, "gatling: print summary: %v\n", err)
	}
	if err := report.WriteDir(dir, s); err != nil {
		fmt.Fprintf(env.Stderr, "gatling: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(env.Stdout, "report: %s\n", filepath.Join(dir, "index.html"))
	if interrupted {
		return ExitInterrupted
	}
	return ExitOK
}

func usageError(fs *flag.FlagSet, w io.Writer, err error) int {
	fmt.Fprintf(w, "gatling: %s\n\n", strings.ReplaceAll(err.Error(), "\n", "\ngatling: "))
	fs.Usage()
	return ExitUsage
}

func msTextShort(v float64) string { return fmt.Sprintf("%.2fms", v) }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSSMiB is the peak resident set size (Linux reports KiB).
func maxRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
