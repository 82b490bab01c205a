package turbine

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config holds turbine's tunable bounds and intervals. main fills it from flags (see
// DefaultConfig for each default); packages receive it whole.
type Config struct {
	// StreamPath is the metrics stream path on every instance.
	StreamPath string
	// EmitInterval is how often /turbine.stream sends the aggregate; the aggregate is
	// computed once per interval and cluster, and shared by every client.
	EmitInterval time.Duration

	// WatcherURL is the swarmwatcher whose task list verifies the tokens' claims.
	WatcherURL string
	// Stack is the stack prefix of swarm service names: a token of service "x" is checked
	// against every swarm service whose logical name is "x" (the watcher's ?logical=), or,
	// with a watcher that predates tenants, against "<Stack>_x" alone.
	Stack string
	// VerifyInterval is how often unverified instances are checked again (and the watcher's
	// answer is cached for as long).
	VerifyInterval time.Duration
	// WatcherTimeout bounds one query to the watcher.
	WatcherTimeout time.Duration

	// MaxStreams caps the instance streams running at once.
	MaxStreams int
	// MaxConcurrentDials caps the streams connecting at once.
	MaxConcurrentDials int
	// DialTimeout bounds connecting to an instance and its response headers.
	DialTimeout time.Duration
	// IdleTimeout drops a stream that sent nothing, not even a ping, for this long.
	IdleTimeout time.Duration
	// MaxLine caps one line of an instance stream, in bytes.
	MaxLine int
	// MaxKeysPerHost caps the distinct (type, name) samples one instance may report.
	MaxKeysPerHost int
	// MaxBytesPerHost caps the bytes of the latest samples kept for one instance.
	MaxBytesPerHost int
	// MinBackoff and MaxBackoff bound the reconnect delay of a stream.
	MinBackoff, MaxBackoff time.Duration

	// MaxClients caps the /turbine.stream clients; more get 503.
	MaxClients int
	// MaxClusters caps the distinct ?cluster= aggregates computed per tick.
	MaxClusters int
	// WriteTimeout bounds writing one JSON answer or one round of a stream.
	WriteTimeout time.Duration
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		StreamPath:         "/hystrix.stream",
		EmitInterval:       time.Second,
		WatcherURL:         "http://swarmwatcher:6969",
		Stack:              "goblog",
		VerifyInterval:     time.Second,
		WatcherTimeout:     2 * time.Second,
		MaxStreams:         256,
		MaxConcurrentDials: 16,
		DialTimeout:        3 * time.Second,
		IdleTimeout:        15 * time.Second,
		MaxLine:            64 << 10,
		MaxKeysPerHost:     200,
		MaxBytesPerHost:    1 << 20,
		MinBackoff:         200 * time.Millisecond,
		MaxBackoff:         5 * time.Second,
		MaxClients:         64,
		MaxClusters:        32,
		WriteTimeout:       10 * time.Second,
	}
}

// Validate reports every setting turbine cannot run with; it never clamps.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	atLeast := func(name string, n, min int) {
		if n < min {
			errs = append(errs, fmt.Errorf("%s %d: must be at least %d", name, n, min))
		}
	}
	if c.StreamPath == "" || c.StreamPath[0] != '/' {
		errs = append(errs, fmt.Errorf("stream-path %q: must start with /", c.StreamPath))
	}
	if c.EmitInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("emit-interval %s: must be at least 100ms", c.EmitInterval))
	}
	if u, err := url.Parse(c.WatcherURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("watcher-url %q: want http(s)://host[:port]", c.WatcherURL))
	}
	if c.Stack == "" {
		errs = append(errs, errors.New("stack: empty"))
	}
	positive("verify-interval", c.VerifyInterval)
	positive("watcher-timeout", c.WatcherTimeout)
	positive("dial-timeout", c.DialTimeout)
	positive("idle-timeout", c.IdleTimeout)
	positive("min-backoff", c.MinBackoff)
	positive("write-timeout", c.WriteTimeout)
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("max-backoff %s: below min-backoff %s", c.MaxBackoff, c.MinBackoff))
	}
	atLeast("max-streams", c.MaxStreams, 1)
	atLeast("max-concurrent-dials", c.MaxConcurrentDials, 1)
	atLeast("max-line", c.MaxLine, 4<<10)
	atLeast("max-keys-per-host", c.MaxKeysPerHost, 1)
	atLeast("max-bytes-per-host", c.MaxBytesPerHost, c.MaxLine)
	atLeast("max-clients", c.MaxClients, 1)
	atLeast("max-clusters", c.MaxClusters, 1)
	return errors.Join(errs...)
}
