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

	"github.com/goblog/goblog/gatling/internal/assertion"
	"github.com/goblog/goblog/gatling/internal/feeder"
	"github.com/goblog/goblog/gatling/internal/load"
	"github.com/goblog/goblog/gatling/internal/report"
	"github.com/goblog/goblog/gatling/internal/stats"
)

// Exit codes.
const (
	ExitOK = 0
	// ExitFailed: an -assert expression failed, or the report could not be
	// written.
	ExitFailed = 1
	// ExitUsage: a malformed flag, -assert expression or feeder; no load was
	// sent.
	ExitUsage = 2
	// ExitInterrupted: stopped by SIGINT or SIGTERM; the report was written
	// and the assertions checked (and printed) all the same.
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
feeder, GETs <base-url>/accounts/{id} with Accept: application/json, checks
for 200, pauses -pause. Each user keeps its own connection, as Gatling's do.

Prints a progress line every second on stderr, a summary on stdout (OK and
KO latencies apart, Gatling's response-time ranges), and writes index.html
(charts) and stats.json into the report directory. Ctrl-C stops the run
early and still writes the report and checks the assertions.

-assert EXPR (repeatable) is checked at the end, even after Ctrl-C. EXPR is
METRIC OP VALUE with OP one of <, <=, >, >=, =, != and METRIC one of:
  requests, ok, ko      a count (ko=0, ok>=1000), or for ok and ko a share of
                        all requests (ko<1%)
  reqPerSec, okPerSec   requests (all, or OK only) per second over the run
                        (reqPerSec>=990)
  min, mean, p50, p75,  latency of the OK responses, a duration (p99<5ms,
  p95, p99, max         p95<=800ms, mean<100ms); fails when none was OK
Each is printed as "assertion p99<5ms: passed (p99 3.21 ms)" and recorded in
stats.json. Quote expressions with < or > for the shell.

Exit status: 0 done and every assertion passed; 1 an assertion failed (or the
report could not be written); 2 bad flags or assertions (nothing was sent);
130 interrupted.

Example:
  go run ./gatling -base-url http://localhost:6767 -users 1000 -ramp 10s -duration 30s -pause 1s

Flags:
`

// aliases are the camelCase names of earlier versions, kept for Gatling
// users and scripts: alias -> flag.
var aliases = []struct{ alias, name string }{
	{"baseUrl", "base-url"},
	{"keepAlive", "keep-alive"},
	{"maxRequestsPerConn", "max-requests-per-conn"},
}

// options is everything the command line says.
type options struct {
	cfg        load.Config
	feeder     string
	out        string
	quiet      bool
	assertions []assertion.Assertion
}

// newFlagSet declares the flags into o (filled with the defaults). Its
// usage lists each flag once and its aliases apart.
func newFlagSet(o *options, stderr io.Writer, defaultOut string) *flag.FlagSet {
	o.cfg = load.Defaults()
	fs := flag.NewFlagSet("gatling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.StringVar(&c.BaseURL, "base-url", c.BaseURL, "where the service answers (`URL`, http or https)")
	fs.StringVar(&c.Path, "path", c.Path, "request path; {id} stands for the feeder's id")
	fs.IntVar(&c.Users, "users", c.Users, "number of virtual users")
	fs.DurationVar(&c.Ramp, "ramp", c.Ramp, "time over which the users start (0: all at once)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long each user loops, from its own start")
	fs.DurationVar(&c.Pause, "pause", c.Pause, "pause after each request (0s: closed loop, no pause)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "deadline of every request (connect, answer and body)")
	fs.BoolVar(&c.KeepAlive, "keep-alive", c.KeepAlive, "reuse each user's connection (false: a new connection per request)")
	fs.IntVar(&c.MaxRequestsPerConn, "max-requests-per-conn", c.MaxRequestsPerConn, "close a user's connection after this many requests (0: no limit)")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "progress line and timeline interval")
	fs.StringVar(&o.feeder, "feeder", "", "CSV feeder `file` with an accountId column (default: the shipped gatling/accounts.csv, ids 10000…10099)")
	fs.StringVar(&o.out, "out", "", "report `directory` (default "+filepath.Join(defaultOut, "<timestamp>")+")")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	fs.Func("assert", "check `EXPR` at the end, e.g. ko=0 or 'p99<5ms' (repeatable; see above)", func(v string) error {
		a, err := assertion.Parse(v)
		if err != nil {
			return err
		}
		o.assertions = append(o.assertions, a)
		return nil
	})
	for _, a := range aliases {
		f := fs.Lookup(a.name)
		fs.Var(f.Value, a.alias, "alias of -"+a.name)
	}
	fs.Usage = func() { usage(fs) }
	return fs
}

// usage prints the head, every flag but the aliases, then the aliases.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, usageHead)
	isAlias := map[string]string{}
	for _, a := range aliases {
		isAlias[a.alias] = a.name
	}
	primary := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	primary.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := isAlias[f.Name]; ok {
			return
		}
		primary.Var(f.Value, f.Name, f.Usage)
		primary.Lookup(f.Name).DefValue = f.DefValue
	})
	primary.PrintDefaults()
	fmt.Fprintln(w, "\nAliases (the camelCase names Gatling users know):")
	for _, a := range aliases {
		fmt.Fprintf(w, "  -%-20s same as -%s\n", a.alias, a.name)
	}
}

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
	var o options
	fs := newFlagSet(&o, env.Stderr, env.DefaultOut)
	if err := fs.Parse(env.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage // the flag package printed the error and the usage
	}
	cfg := o.cfg
	if fs.NArg() > 0 {
		return usageError(fs, env.Stderr, fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0)))
	}
	if err := cfg.Validate(); err != nil {
		return usageError(fs, env.Stderr, err)
	}

	var ids []string
	var err error
	feederName := o.feeder
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

	dir := o.out
	if dir == "" {
		dir = filepath.Join(env.DefaultOut, now().UTC().Format("20060102-150405"))
	}
	start := time.Now()
	rec := stats.NewRecorder(start)
	progress := func(t load.Tick) {
		if o.quiet {
			return
		}
		fmt.Fprintf(env.Stderr, "[%5.0fs] users %d active, %d/%d started | %7.1f req/s | total %d | KO %d | OK p99 %s so far\n",
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
	var passed bool
	s.Assertions, passed = assertion.CheckAll(o.assertions, s.Summary)
	if err := report.Summary(env.Stdout, s); err != nil {
		fmt.Fprintf(env.Stderr, "gatling: print summary: %v\n", err)
	}
	code := ExitOK
	if err := report.WriteDir(dir, s); err != nil {
		fmt.Fprintf(env.Stderr, "gatling: %v\n", err)
		code = ExitFailed
	} else {
		fmt.Fprintf(env.Stdout, "report: %s\n", filepath.Join(dir, "index.html"))
	}
	if !passed {
		fmt.Fprintf(env.Stderr, "gatling: %d of %d assertions failed\n", failed(s.Assertions), len(s.Assertions))
		code = ExitFailed
	}
	if interrupted {
		return ExitInterrupted
	}
	return code
}

func failed(rs []assertion.Result) int {
	n := 0
	for _, r := range rs {
		if !r.Passed {
			n++
		}
	}
	return n
}

func usageError(fs *flag.FlagSet, w io.Writer, err error) int {
	fmt.Fprintf(w, "gatling: %s\n\n", strings.ReplaceAll(err.Error(), "\n", "\ngatling: "))
	fs.Usage()
	return ExitUsage
}

func msTextShort(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fms", *p)
}

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
