// Package conf is the one way a goblog binary reads its settings: typed
// command-line flags, each with an environment variable named by one rule.
//
// The rule: flag -some-name is also set by the variable SOME_NAME (upper
// case, '-' becomes '_'). A flag given on the command line wins over the
// variable. An empty variable counts as unset. NAME_FILE, when NAME is unset,
// names a file whose content (trailing newline trimmed) is the value, the way
// Docker secrets are handed to a process. A malformed value is an error that
// names the variable; -h prints the usage to stdout and -version the build's
// version, and the caller exits 0.
//
// Every Set also has -log-level (debug, info, warn, error) and -log-format
// (json, text), so every binary logs the same way:
//
//	s := conf.New("edge", "Proxies every request to accountservice.")
//	s.String(&cfg.Listen, "listen", ":6767", "address to serve on")
//	s.Duration(&cfg.Timeout, "timeout", 5*time.Second, "deadline of one upstream call")
//	if done, err := s.Parse(os.Args[1:]); done || err != nil {
//		os.Exit(s.ExitCode(err))
//	}
//	log := s.Logger(os.Stderr)
package conf

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
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

	version   bool
	logLevel  slog.Level
	logFormat string
}

// New returns a Set for the binary name, whose usage starts with summary.
func New(name, summary string) *Set {
	s := &Set{name: name, summary: summary, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	s.fs.SetOutput(io.Discard)
	s.fs.BoolVar(&s.version, "version", false, "print the version and exit")
	s.fs.TextVar(&s.logLevel, "log-level", slog.LevelInfo, "least level logged: debug, info, warn or error")
	s.Enum(&s.logFormat, "log-format", "json", []string{"json", "text"}, "log format")
	return s
}

// EnvName is the variable that sets flag name: upper case, '-' becomes '_'.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// String defines a string flag.
func (s *Set) String(p *string, name, def, usage string) { s.fs.StringVar(p, name, def, usage) }

// Bool defines a boolean flag (true/false, 1/0).
func (s *Set) Bool(p *bool, name string, def bool, usage string) { s.fs.BoolVar(p, name, def, usage) }

// Int defines an integer flag.
func (s *Set) Int(p *int, name string, def int, usage string) { s.fs.IntVar(p, name, def, usage) }

// Float64 defines a floating-point flag.
func (s *Set) Float64(p *float64, name string, def float64, usage string) {
	s.fs.Float64Var(p, name, def, usage)
}

// Duration defines a duration flag (like 500ms, 2s, 1m30s).
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	s.fs.DurationVar(p, name, def, usage)
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
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	s.fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		v, from, err := s.lookup(EnvName(f.Name))
		if err != nil {
			errs = append(errs, err)
			return
		}
		if from == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %w", from, v, unwrapFlagErr(err)))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	if s.version {
		fmt.Fprintln(s.stdout(), s.name, Version())
		return true, nil
	}
	return false, nil
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

// unwrapFlagErr drops the flag package's "parse error" wording where it adds nothing.
func unwrapFlagErr(err error) error {
	if ne := (*strconv.NumError)(nil); errors.As(err, &ne) {
		return ne.Err
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
		fmt.Fprintf(w, "%s  [%s]\n    \t%s", line, EnvName(f.Name), usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && !strings.Contains(usage, "(default") {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
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
