package sd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/endpoint"
	kitsd "github.com/go-kit/kit/sd"
	"github.com/go-kit/kit/sd/lb"
	kitlog "github.com/go-kit/log"

	"github.com/goblog/goblog/internal/lbclient"
)

// TransportConfig configures a Transport. Zero values take the defaults.
type TransportConfig struct {
	// Base sends each attempt; default a clone of http.DefaultTransport.
	Base http.RoundTripper
	// MaxAttempts per request, the first included. Default 2: a refused
	// connection is retried once, on the next instance.
	MaxAttempts int
	// Timeout bounds a whole request, retries included (the request's own
	// context still applies). Default 30 s.
	Timeout time.Duration
	// Fallback, when set, carries requests while the balancer has no
	// instance and the Instancer (if it reports its State, as *Instancer
	// does) is in error: the discovery backend has not answered yet, or
	// went away before giving any instance. A caller passes its by-name
	// transport so that it works, unbalanced, without the watcher. A backend
	// that answered "no passing instance" is believed: no fallback then.
	Fallback http.RoundTripper
	// Logger receives fallback switches and the go-kit endpointer's
	// messages; nil discards.
	Logger *slog.Logger
}

// Transport is an http.RoundTripper that sends each request to one of an
// Instancer's instances, in go-kit's way: Instancer → Endpointer →
// lb.NewRoundRobin → lb.Retry. It replaces the host of the request URL
// (a logical name such as accountservice:6767) with the chosen "ip:port" and
// keeps the logical name in the Host header. Idempotent requests whose body
// can be sent again (none, or GetBody set) are retried on the next instance
// after a transport error; others are never retried. With no instances, it
// fails at once with lb.ErrNoEndpoints.
//
// Plug it into an http.Client or an httputil.ReverseProxy; Close it when done.
type Transport struct {
	cfg        TransportConfig
	state      func() kitsd.Event // nil when the Instancer does not tell
	relay      *relay
	endpointer *kitsd.DefaultEndpointer
	balancer   lb.Balancer
	falling    atomic.Bool
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport starts balancing over inst. inst stays the caller's to Stop.
func NewTransport(inst kitsd.Instancer, cfg TransportConfig) *Transport {
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.MaxAttempts < 1 {
		cfg.MaxAttempts = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Transport{cfg: cfg}
	switch s := inst.(type) {
	case interface{ State() kitsd.Event }:
		t.state = s.State
	case kitsd.FixedInstancer: // its state is itself
		t.state = func() kitsd.Event { return kitsd.Event{Instances: s} }
	}
	t.relay = newRelay(inst)
	t.endpointer = kitsd.NewEndpointer(t.relay, t.factory, slogAdapter{cfg.Logger})
	t.balancer = lb.NewRoundRobin(t.endpointer)
	// go-kit's Endpointer applies the Instancer's set in a goroutine of its
	// own after NewEndpointer returns; a request sent at once would find no
	// endpoint. Wait (at most a second) until it has.
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case <-t.relay.applied:
	case <-timer.C:
	}
	return t
}

// Close stops following the Instancer (it does not Stop it).
func (t *Transport) Close() { t.endpointer.Close() }

// Instances returns how many instances the balancer currently holds.
func (t *Transport) Instances() int {
	eps, err := t.endpointer.Endpoints()
	if err != nil {
		return 0
	}
	return len(eps)
}

// attempt is what flows through the go-kit endpoint: the caller's request.
type attempt struct{ req *http.Request }

func (t *Transport) factory(instance string) (endpoint.Endpoint, io.Closer, error) {
	return func(ctx context.Context, request any) (any, error) {
		a := request.(attempt)
		// The attempt runs on the request's own context, not ctx: lb.Retry
		// cancels ctx when it returns, which would cut the response body.
		out := a.req.Clone(a.req.Context())
		if out.Host == "" {
			out.Host = a.req.URL.Host
		}
		out.URL.Host = instance
		if a.req.GetBody != nil {
			body, err := a.req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("%s: rewind body: %w", instance, err)
			}
			out.Body = body
		}
		resp, err := t.cfg.Base.RoundTrip(out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", instance, err)
		}
		if ctx.Err() != nil { // lb.Retry gave up on us: nobody will read it
			resp.Body.Close()
			return nil, ctx.Err()
		}
		return resp, nil
	}, nil, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cfg.Fallback != nil && t.state != nil && t.Instances() == 0 {
		if st := t.state(); st.Err != nil {
			if !t.falling.Swap(true) {
				t.cfg.Logger.Warn("no instances from discovery: using the fallback transport", "err", st.Err)
			}
			return t.cfg.Fallback.RoundTrip(req)
		}
	}
	if t.falling.Swap(false) {
		t.cfg.Logger.Info("instances from discovery: balancing over them again")
	}
	retry := lbclient.Replayable(req)
	call := lb.RetryWithCallback(t.cfg.Timeout, t.balancer, func(n int, err error) (bool, error) {
		if errors.Is(err, lb.ErrNoEndpoints) || req.Context().Err() != nil {
			return false, nil
		}
		return retry && n < t.cfg.MaxAttempts, nil
	})
	resp, err := call(req.Context(), attempt{req: req})
	if err != nil {
		var re lb.RetryError
		if errors.As(err, &re) && re.Final != nil {
			err = fmt.Errorf("%w (attempts: %d)", re.Final, len(re.RawErrors))
		}
		return nil, err
	}
	return resp.(*http.Response), nil
}

// slogAdapter lets go-kit's endpointer log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Log(keyvals ...any) error {
	a.l.Debug("go-kit endpointer", keyvals...)
	return nil
}

var _ kitlog.Logger = slogAdapter{}
