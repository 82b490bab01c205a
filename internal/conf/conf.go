// Package conf is the one way a goblog binary reads its settings: typed
// command-line flags, each with an environment variable named by one rule.
//
// The rule: flag -some-name is also set by the variable SOME_NAME (upper
// case, '-' becomes '_'). A flag given on the command line wins over the
// variable. An empty variable counts as unset. NAME_FILE, when NAME is unset,
// names a file whose content (trailing newline trimmed) is the value, the way
// Docker secrets are handed to a process. A malformed value, or one a check
// given with the flag rejects (conf.AtLeast, conf.Between, ...), is an error
// that names the variable (or the flag, when given as one); -h prints the usage
// to stdout and -version the build's version, and the caller exits 0. -h and
// -version have no variable: a VERSION in a container's environment must not
// turn a service into a program that prints its version and exits.
//
// A binary that runs inside other binaries' containers (healthchecker, run by
// every image's HEALTHCHECK, inherits the service's environment, PATH
// included) sets EnvPrefix, so that its -path is HEALTHCHECKER_PATH, not PATH.
//
// Every Set also has -log-level (debug, info, warn, error) and -log-format
// (json, text), so every binary logs the same way:
//
//	func load(args []string) (Config, *conf.Set, bool, error) {
//		var c Config
//		s := conf.New("edge", "Proxies every request to accountservice.")
//		s.String(&c.Listen, "listen", ":6767", "address to serve on", conf.HostPort)
//		s.Duration(&c.Timeout, "timeout", 5*time.Second, "deadline of one upstream call", conf.AtLeast(time.Millisecond))
//		done, err := s.Parse(args)
//		return c, s, done, err
//	}
//
//	func main() { conf.Main(load, run) } // run(ctx, cfg, log) error
//
// Main exits 0 after -h or -version and 2 on a bad setting; then it runs run
// with a context that ends on SIGTERM or SIGINT and the logger, and exits 1
// when run fails. Tests call load.
package conf

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxFileValue bounds a value read through NAME_FILE.
const maxFileValue = 64 << 10

// Set holds one binary's flags.
type Set struct {
	name, summary string
	fs            *flag.FlagSet

	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads a NAME_FILE; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Stdout receives -h and -version; Stderr the errors. nil means os.Stdout, os.Stderr.
	Stdout, Stderr io.Writer
	// EnvPrefix goes in front of every variable name of this Set (see the
	// package comment); empty for almost every binary.
	EnvPrefix string

	// checks holds, per flag, the checks given with it, run on the value
	// the flag ends up with.
	checks map[string]func() error
	// noEnv names the flags that no variable sets.
	noEnv map[string]bool

	version   bool
	logLevel  slog.Level
	logFormat string
}

// New returns a Set for the binary name, whose usage starts with summary.
func New(name, summary string) *Set {
	s := &Set{name: name, summary: summary, fs: flag.NewFlagSet(name, flag.ContinueOnError),
		checks: map[string]func() error{}, noEnv: map[string]bool{"version": true}}
	s.fs.SetOutput(io.Discard)
	s.fs.BoolVar(&s.version, "version", false, "print the version and exit")
	s.fs.TextVar(&s.logLevel, "log-level", slog.LevelInfo, "least `level` logged: debug, info, warn or error")
	s.Enum(&s.logFormat, "log-format", "json", []string{"json", "text"}, "log format")
	return s
}

// EnvName is the variable that sets flag name: upper case, '-' becomes '_'.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envName is the variable of flag name in this Set ("" for none).
func (s *Set) envName(flagName string) string {
	if s.noEnv[flagName] {
		return ""
	}
	return s.EnvPrefix + EnvName(flagName)
}

// String defines a string flag.
func (s *Set) String(p *string, name, def, usage string, checks ...func(string) error) {
	s.fs.StringVar(p, name, def, usage)
	check(s, name, p, checks)
}

// Bool defines a boolean flag (true/false, 1/0).
func (s *Set) Bool(p *bool, name string, def bool, usage string) { s.fs.BoolVar(p, name, def, usage) }

// Int defines an integer flag.
func (s *Set) Int(p *int, name string, def int, usage string, checks ...func(int) error) {
	s.fs.IntVar(p, name, def, usage)
	check(s, name, p, checks)
}

// Float64 defines a floating-point flag.
func (s *Set) Float64(p *float64, name string, def float64, usage string, checks ...func(float64) error) {
	s.fs.Float64Var(p, name, def, usage)
	check(s, name, p, checks)
}

// Duration defines a duration flag (like 500ms, 2s, 1m30s).
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string, checks ...func(time.Duration) error) {
	s.fs.DurationVar(p, name, def, usage)
	check(s, name, p, checks)
}

// URL defines a flag holding an absolute URL (scheme://host...), whose scheme
// is one of schemes when any are given. An empty value is malformed: a URL
// that may be left out is a String with a check of its own.
func (s *Set) URL(p *string, name, def, usage string, schemes ...string) {
	s.String(p, name, def, usage, func(v string) error { return CheckURL(v, schemes...) })
}

// Enum defines a string flag that must be one of allowed.
func (s *Set) Enum(p *string, name, def string, allowed []string, usage string) {
	*p = def
	s.fs.Func(name, fmt.Sprintf("%s: %s (default %q)", usage, strings.Join(allowed, ", "), def), func(v string) error {
		if !slices.Contains(allowed, v) {
			return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
		}
		*p = v
		return nil
	})
}

// check registers checks of flag name, run by Parse on the final value.
func check[T any](s *Set, name string, p *T, checks []func(T) error) {
	if len(checks) == 0 {
		return
	}
	s.checks[name] = func() error {
		for _, c := range checks {
			if err := c(*p); err != nil {
				return err
			}
		}
		return nil
	}
}

// List defines a comma-separated list flag; blank items are dropped.
func (s *Set) List(p *[]string, name string, def []string, usage string) {
	*p = def
	s.fs.Func(name, usage+" (comma-separated)", func(v string) error {
		var out []string
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		*p = out
		return nil
	})
}

// Func defines a flag parsed by set, for types of the binary's own.
func (s *Set) Func(name, usage string, set func(string) error) { s.fs.Func(name, usage, set) }

// Parse reads args, then the environment for every flag not given in args.
// done is true when -h or -version was handled (the caller exits 0). An
// error names the flag or the variable at fault; every malformed variable is
// reported, not only the first.
func (s *Set) Parse(args []string) (done bool, err error) {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.Usage(s.stdout())
			return true, nil
		}
		return false, err
	}
	if s.fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments: %s", strings.Join(s.fs.Args(), " "))
	}
	// -version answers whatever the rest says, as -h does: it is how one
	// learns which build refuses a setting.
	if s.version {
		fmt.Fprintln(s.stdout(), s.name, Version())
		return true, nil
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	s.fs.VisitAll(func(f *flag.Flag) {
		from, raw := "-"+f.Name, strconv.Quote(f.Value.String())
		if !given[f.Name] {
			env := s.envName(f.Name)
			if env == "" {
				return
			}
			v, src, err := s.lookup(env)
			if err != nil {
				errs = append(errs, err)
				return
			}
			if src == "" {
				from = "-" + f.Name + " (default)"
			} else {
				from, raw = src, strconv.Quote(v)
				if strings.HasSuffix(src, "_FILE") {
					raw = "(the file's content, not shown)" // a secret, most likely
				}
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", from, raw, explain(f, err)))
					return
				}
			}
		}
		if c := s.checks[f.Name]; c != nil {
			if err := c(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", from, raw, err))
			}
		}
	})
	return false, errors.Join(errs...)
}

// lookup returns the value of env, or of the file env_FILE names, and where it
// came from ("" when neither is set).
func (s *Set) lookup(env string) (value, from string, err error) {
	lookupEnv := s.LookupEnv
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if v, ok := lookupEnv(env); ok && v != "" {
		return v, env, nil
	}
	path, ok := lookupEnv(env + "_FILE")
	if !ok || path == "" {
		return "", "", nil
	}
	readFile := s.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	b, err := readFile(path)
	if err != nil {
		return "", "", fmt.Errorf("%s_FILE: %w", env, err)
	}
	if len(b) > maxFileValue {
		return "", "", fmt.Errorf("%s_FILE: %s is larger than %d bytes", env, path, maxFileValue)
	}
	return strings.TrimRight(string(b), "\r\n"), env + "_FILE", nil
}

// explain replaces the flag package's bare "parse error" with what was wanted.
func explain(f *flag.Flag, err error) error {
	if ne := (*strconv.NumError)(nil); errors.As(err, &ne) {
		err = ne.Err
	}
	if err.Error() != "parse error" && !errors.Is(err, strconv.ErrSyntax) {
		return err
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return errors.New("not a boolean (true or false)")
	}
	switch typ, _ := flag.UnquoteUsage(f); typ {
	case "duration":
		return errors.New("not a duration (like 500ms, 2s or 1m30s)")
	case "int", "uint":
		return errors.New("not a whole number")
	case "float":
		return errors.New("not a number")
	}
	return err
}

// Usage writes the usage: the summary, then every flag with its variable and default.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", s.name)
	if s.summary != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(s.summary))
	}
	fmt.Fprintln(w, "Flags (each also set by the variable in brackets; a flag given here wins;")
	fmt.Fprintln(w, "an empty variable is unset; NAME_FILE reads NAME's value from a file):")
	s.fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  -" + f.Name
		if typ != "" {
			line += " " + typ
		}
		if env := s.envName(f.Name); env != "" {
			line += "  [" + env + "]"
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(usage, "(default") {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// AtLeast is a check: the value must be min or more.
func AtLeast[T cmp.Ordered](min T) func(T) error {
	return func(v T) error {
		if v < min {
			return fmt.Errorf("must be at least %v", min)
		}
		return nil
	}
}

// Between is a check: the value must be lo … hi, both included.
func Between[T cmp.Ordered](lo, hi T) func(T) error {
	return func(v T) error {
		if v < lo || v > hi {
			return fmt.Errorf("must be %v … %v", lo, hi)
		}
		return nil
	}
}

// NotEmpty is a check: the string must not be empty.
func NotEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// HostPort is a check: the value must be a listen or dial address, host:port
// with an empty host allowed (":6767").
func HostPort(v string) error {
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		return errors.New("want host:port, like :6767 or 127.0.0.1:6767")
	}
	return nil
}

// CheckURL reports whether v is an absolute URL with a host, and with one of
// schemes when any are given.
func CheckURL(v string, schemes ...string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return errors.New("want an absolute URL, scheme://host[:port][/path]")
	}
	if len(schemes) > 0 && !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("want a URL of scheme %s", strings.Join(schemes, " or "))
	}
	return nil
}

// ExitCode is the status a main exits with after Parse: 0 when -h or
// -version was handled (err nil), else 2, after writing err to Stderr.
func (s *Set) ExitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(s.stderr(), "%s: %v\nRun '%s -h' for usage.\n", s.name, err, s.name)
	return 2
}

// Main is the whole main of a binary whose load defines its flags on a Set
// and parses args (the command line): it exits 0 after -h or -version, 2 on a
// bad setting, else with the status of Run calling run with the configuration.
func Main[C any](load func(args []string) (C, *Set, bool, error), run func(ctx context.Context, cfg C, log *slog.Logger) error) {
	cfg, s, done, err := load(os.Args[1:])
	if done || err != nil {
		os.Exit(s.ExitCode(err))
	}
	os.Exit(s.Run(func(ctx context.Context, log *slog.Logger) error { return run(ctx, cfg, log) }))
}

// Run is the rest of a main after Parse: it calls run with a context that
// ends on SIGTERM or SIGINT and with the Logger (on Stderr, "service" set to
// the binary's name), and returns the exit status: 0 when run returned nil,
// else 1 after logging the error.
func (s *Set) Run(run func(ctx context.Context, log *slog.Logger) error) int {
	log := s.Logger(s.stderr()).With("service", s.name)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error(s.name+" stopped", "err", err)
		return 1
	}
	return 0
}

// LogLevel is the parsed -log-level.
func (s *Set) LogLevel() slog.Level { return s.logLevel }

// Logger returns a slog.Logger writing to w in the parsed -log-format at the
// parsed -log-level.
func (s *Set) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: s.logLevel}
	if s.logFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func (s *Set) stdout() io.Writer {
	if s.Stdout != nil {
		return s.Stdout
	}
	return os.Stdout
}

func (s *Set) stderr() io.Writer {
	if s.Stderr != nil {
		return s.Stderr
	}
	return os.Stderr
}

// Version describes the build from its VCS stamp: the commit (12 digits),
// its time, and "modified" when the tree had uncommitted changes; "devel"
// when the binary carries no stamp (go run, or a build outside a checkout).
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	var rev, at string
	var modified bool
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			modified = kv.Value == "true"
		}
	}
	if rev == "" {
		return "devel (" + info.GoVersion + ")"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := rev
	if at != "" {
		v += " " + at
	}
	if modified {
		v += " modified"
	}
	return v + " (" + info.GoVersion + ")"
}
