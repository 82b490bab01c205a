// Package cli is the gatling command: flags, signals, progress line,
// summary and report. Both the gatling binary and the gatling-runner image
// run it.
package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/goblog/goblog/gatling/internal/assertion"
	"github.com/goblog/goblog/gatling/internal/feeder"
	"github.com/goblog/goblog/gatling/internal/hoststat"
	"github.com/goblog/goblog/gatling/internal/load"
	"github.com/goblog/goblog/gatling/internal/report"
	"github.com/goblog/goblog/gatling/internal/stats"
	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/debugserve"
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
	// LookupEnv reads the environment variables that back the flags
	// (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
}

const summary = `Replays the tutorial's Gatling simulation: -users virtual users start evenly
over -ramp; each loops for -duration: takes the next id from the circular
feeder, GETs <base-url>/accounts/{id} with Accept: application/json, checks
for 200, pauses -pause. Each user keeps its own connection, as Gatling's do.

Prints a progress line every second on stderr, a summary on stdout (OK and
KO latencies apart, Gatling's response-time ranges), and writes index.html
(charts) and stats.json into the report directory. Ctrl-C stops the run
early and still writes the report and checks the assertions.

-assert EXPR (repeatable; several may also be given comma-separated, as in
ASSERT='ko=0,p99<5ms') is checked at the end, even after Ctrl-C. EXPR is
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
report could not be written); 2 bad flags, variables or assertions (nothing
was sent); 130 interrupted.

Example:
  go run ./gatling -base-url http://localhost:6767 -users 1000 -ramp 10s -duration 30s -pause 1s

Aliases, the camelCase names Gatling users know (command line only):
  -baseUrl              same as -base-url
  -keepAlive            same as -keep-alive
  -maxRequestsPerConn   same as -max-requests-per-conn
  -path                 same as -request-path`

// aliases are names of earlier versions, kept for Gatling users and scripts:
// alias -> flag. -path became -request-path because its variable would be
// PATH.
var aliases = map[string]string{
	"baseUrl":            "base-url",
	"keepAlive":          "keep-alive",
	"maxRequestsPerConn": "max-requests-per-conn",
	"path":               "request-path",
}

// boolFlags take no separate value argument.
var boolFlags = map[string]bool{"keep-alive": true, "quiet": true, "version": true, "h": true, "help": true}

// canonicalArgs rewrites the aliases in args to their flag names (-baseUrl
// x, --baseUrl=x), leaving flag values and everything after "--" or the
// first non-flag argument alone.
func canonicalArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return append(out, args[i:]...)
		}
		dashes, name := "-", a[1:]
		if strings.HasPrefix(name, "-") {
			dashes, name = "--", name[1:]
		}
		name, value, hasValue := strings.Cut(name, "=")
		if n, ok := aliases[name]; ok {
			name = n
		}
		if hasValue {
			out = append(out, dashes+name+"="+value)
			continue
		}
		out = append(out, dashes+name)
		if !boolFlags[name] && i+1 < len(args) { // the next argument is this flag's value
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// options is everything the command line says.
type options struct {
	cfg        load.Config
	feeder     string
	out        string
	quiet      bool
	debug      string
	assertions []assertion.Assertion
}

// newSet declares the flags into o, each with its environment variable.
func newSet(o *options, env Env) *conf.Set {
	d := load.Defaults()
	s := conf.New("gatling", summary)
	s.Stdout, s.Stderr, s.LookupEnv = env.Stdout, env.Stderr, env.LookupEnv
	c := &o.cfg
	s.String(&c.BaseURL, "base-url", d.BaseURL, "where the service answers (`URL`, http or https)")
	s.String(&c.Path, "request-path", d.Path, "request path; {id} stands for the feeder's id")
	s.Int(&c.Users, "users", d.Users, "number of virtual users")
	s.Duration(&c.Ramp, "ramp", d.Ramp, "time over which the users start (0: all at once)")
	s.Duration(&c.Duration, "duration", d.Duration, "how long each user loops, from its own start")
	s.Duration(&c.Pause, "pause", d.Pause, "pause after each request (0s: closed loop, no pause)")
	s.Duration(&c.Timeout, "timeout", d.Timeout, "deadline of every request (connect, answer and body)")
	s.Bool(&c.KeepAlive, "keep-alive", d.KeepAlive, "reuse each user's connection (false: a new connection per request)")
	s.Int(&c.MaxRequestsPerConn, "max-requests-per-conn", d.MaxRequestsPerConn, "close a user's connection after this many requests (0: no limit)")
	s.Duration(&c.Interval, "interval", d.Interval, "progress line and timeline interval")
	s.String(&o.feeder, "feeder", "", "CSV feeder `file` with an accountId column (default: the shipped gatling/accounts.csv, ids 10000…10099)")
	s.String(&o.out, "out", "", "report `directory` (default "+filepath.Join(env.DefaultOut, "<timestamp>")+")")
	s.Bool(&o.quiet, "quiet", false, "no progress line")
	debugserve.AddFlag(s, &o.debug)
	s.Func("assert", "check `EXPR` at the end, e.g. ko=0 or 'p99<5ms' (repeatable; see above)", func(v string) error {
		for _, expr := range strings.Split(v, ",") {
			a, err := assertion.Parse(expr)
			if err != nil {
				return err
			}
			o.assertions = append(o.assertions, a)
		}
		return nil
	})
	return s
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
	set := newSet(&o, env)
	if done, err := set.Parse(canonicalArgs(env.Args)); done || err != nil {
		return set.ExitCode(err) // 0 after -h or -version, else 2 with the error
	}
	cfg := o.cfg
	if err := cfg.Validate(); err != nil {
		return set.ExitCode(err)
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
	if o.debug != "" { // profiles of the generator itself, while it runs
		dctx, stop := context.WithCancel(ctx)
		served := make(chan struct{})
		defer func() { stop(); <-served }() // the listener is closed before Run returns
		go func() {
			defer close(served)
			if err := debugserve.Run(dctx, o.debug, nil); err != nil {
				fmt.Fprintf(env.Stderr, "gatling: -debug-listen: %v\n", err)
			}
		}()
	}
	runner, err := load.NewRunner(cfg, circ, rec, progress)
	if err != nil {
		return set.ExitCode(err)
	}
	fmt.Fprintf(env.Stderr, "gatling: %d users over %v, each for %v with %v pause, against %s; report in %s\n",
		cfg.Users, cfg.Ramp, cfg.Duration, cfg.Pause, cfg.BaseURL, dir)
	cpu0 := cpuTime()
	host0, hostErr := hoststat.Read()
	host0At := time.Now()
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
	if s.Host, err = hostUsage(host0, host0At, hostErr); err != nil {
		fmt.Fprintf(env.Stderr, "gatling: the host's CPU use is left out of the report: %v\n", err)
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

func msTextShort(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fms", *p)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// hostUsage is the host's CPU use from the reading taken before the run
// (first, taken at firstAt, or the error of taking it) to now.
func hostUsage(first hoststat.Sample, firstAt time.Time, firstErr error) (*hoststat.Usage, error) {
	if firstErr != nil {
		return nil, firstErr
	}
	last, err := hoststat.Read()
	if err != nil {
		return nil, err
	}
	u, err := hoststat.Between(first, last, time.Since(firstAt))
	if err != nil {
		return nil, err
	}
	u.BusyPercent, u.StealPercent, u.ContextSwitchesPerS = round2(u.BusyPercent), round2(u.StealPercent), math.Round(u.ContextSwitchesPerS)
	return &u, nil
}

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
