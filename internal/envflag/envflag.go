// Package envflag defines command-line flags whose defaults come from
// environment variables, so a binary reads the same setting from either (flags
// win). The usage text names the variable.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// String defines a string flag with an environment fallback.
func String(fs *flag.FlagSet, name, env, def, usage string) *string {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	return fs.String(name, def, usage+" (env "+env+")")
}

// Bool defines a bool flag with an environment fallback. A malformed variable
// is reported through errs rather than silently ignored.
func Bool(fs *flag.FlagSet, name, env string, def bool, usage string, errs *[]error) *bool {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("env %s=%q: not a boolean", env, v))
		} else {
			def = b
		}
	}
	return fs.Bool(name, def, usage+" (env "+env+")")
}

// Int defines an int flag with an environment fallback.
func Int(fs *flag.FlagSet, name, env string, def int, usage string, errs *[]error) *int {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("env %s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	return fs.Int(name, def, usage+" (env "+env+")")
}

// Duration defines a duration flag with an environment fallback.
func Duration(fs *flag.FlagSet, name, env string, def time.Duration, usage string, errs *[]error) *time.Duration {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("env %s=%q: not a duration", env, v))
		} else {
			def = d
		}
	}
	return fs.Duration(name, def, usage+" (env "+env+")")
}
