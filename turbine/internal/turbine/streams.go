package turbine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/discoverytoken"
	"github.com/goblog/goblog/internal/backoff"
	"github.com/goblog/goblog/internal/sse"
	"github.com/goblog/goblog/turbine/api"
)

// Streams holds one metrics stream per live, verified instance, feeding the Aggregator.
//
// An instance a token announced is only a claim: Streams dials it only after its Verifier
// reported the address as a running task of the service, checks again before every
// reconnect, and dials nothing new while the Verifier cannot answer (streams already
// connected stay). Streams are capped in number (MaxStreams) and in concurrent dials
// (MaxConcurrentDials); each stream is capped in line length, keys and bytes, and cut
// when it breaks one of them.
//
// Add and Remove are quick and never block (they are called from registry events); Run
// does the verifying and dialling.
type Streams struct {
	cfg      Config
	agg      *Aggregator
	verifier Verifier
	log      *slog.Logger
	client   *http.Client
	dialSem  chan struct{}
	wake     chan struct{}

	mu     sync.Mutex
	insts  map[string]*instance
	active int
	wg     sync.WaitGroup

	badLines                               atomic.Uint64
	dials, unverified, watcherDown, capped atomic.Uint64
	dialWaits, cutLine, cutKeys, cutBytes  atomic.Uint64
}

// instance is one registered instance and its stream, if one runs. Its fields other than
// dials are guarded by Streams.mu.
type instance struct {
	inst     discoverytoken.Instance
	verified bool
	tenant   string // as the verifier last said
	capped   bool
	st       *stream
	dials    atomic.Uint64
}

type stream struct {
	host      *Host
	cancel    context.CancelFunc
	connected atomic.Bool
}

// InstanceStatus is what Streams knows of one instance.
type InstanceStatus struct {
	Connected bool
	Verified  bool
	Tenant    string // the tenant the verifier reported ("" for a plain instance)
	Dials     uint64
}

// NewStreams returns Streams feeding agg, dialling only what v verifies. Call Run.
func NewStreams(cfg Config, agg *Aggregator, v Verifier, log *slog.Logger) *Streams {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		ResponseHeaderTimeout: cfg.DialTimeout,
		MaxIdleConnsPerHost:   1,
		DisableCompression:    true,
	}
	return &Streams{
		cfg: cfg, agg: agg, verifier: v, log: log,
		// No overall Timeout: a stream lives as long as its instance. The idle watchdog and
		// the instance's context end it.
		client:  &http.Client{Transport: tr},
		dialSem: make(chan struct{}, cfg.MaxConcurrentDials),
		wake:    make(chan struct{}, 1),
		insts:   map[string]*instance{},
	}
}

// HandleEvent applies a registry event: an added instance may get a stream, a removed one
// loses it and its contribution to the aggregate.
func (s *Streams) HandleEvent(ev discoverytoken.Event) {
	switch ev.Type {
	case discoverytoken.EventAdded:
		s.Add(ev.Instance)
	case discoverytoken.EventRemoved:
		s.Remove(ev.Instance.InstanceID)
	}
}

// Add registers an instance; Run verifies and dials it. A second Add of the same ID
// replaces the first (and its stream).
func (s *Streams) Add(inst discoverytoken.Instance) {
	s.mu.Lock()
	if old, ok := s.insts[inst.InstanceID]; ok && old.st != nil {
		old.st.cancel()
		s.agg.RemoveHost(old.st.host)
	}
	s.insts[inst.InstanceID] = &instance{inst: inst}
	s.mu.Unlock()
	s.wakeUp()
}

// wakeUp makes Run reconcile soon.
func (s *Streams) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Remove closes the stream of an instance and takes its data out of the aggregate now.
func (s *Streams) Remove(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.insts[instanceID]; ok {
		if in.st != nil {
			in.st.cancel()
			s.agg.RemoveHost(in.st.host)
		}
		delete(s.insts, instanceID)
	}
}

// Run verifies waiting instances every VerifyInterval (and soon after an Add) and starts
// their streams, until ctx ends; then it waits for every stream to end and returns nil.
func (s *Streams) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.VerifyInterval)
	defer t.Stop()
	defer s.wg.Wait()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// reconcile starts a stream for every waiting instance the verifier confirms.
func (s *Streams) reconcile(ctx context.Context) {
	s.mu.Lock()
	var waiting []*instance
	for _, in := range s.insts {
		if in.st == nil {
			waiting = append(waiting, in)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(waiting, func(a, b *instance) int { return cmpString(a.inst.InstanceID, b.inst.InstanceID) })
	for _, in := range waiting {
		if ctx.Err() != nil {
			return
		}
		pl, err := s.verifier.RunningTask(ctx, in.inst.Service, in.inst.Address)
		if err != nil {
			// The source of truth is away: dial nothing new this round.
			s.watcherDown.Add(1)
			s.log.Debug("watcher unreachable; not dialling new instances", "err", err)
			return
		}
		s.mu.Lock()
		if s.insts[in.inst.InstanceID] != in || in.st != nil {
			s.mu.Unlock()
			continue // removed or replaced meanwhile
		}
		in.verified, in.tenant = pl.Running, pl.Tenant
		if !pl.Running {
			s.mu.Unlock()
			s.unverified.Add(1)
			continue
		}
		if s.active >= s.cfg.MaxStreams {
			if !in.capped {
				in.capped = true
				s.capped.Add(1)
				s.log.Warn("stream cap reached; instance waits for a free slot", "instanceId", in.inst.InstanceID, "maxStreams", s.cfg.MaxStreams)
			}
			s.mu.Unlock()
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		st := &stream{host: s.agg.AddHost(in.inst.InstanceID, in.inst.Service, in.tenant), cancel: cancel}
		in.st, in.capped = st, false
		s.active++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.run(sctx, in, st)
		}()
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// run keeps one instance's stream connected while ctx lives and the instance stays
// verified. When it returns, the instance waits for reconcile again.
func (s *Streams) run(ctx context.Context, in *instance, st *stream) {
	url := "http://" + in.inst.HostPort() + s.cfg.StreamPath
	log := s.log.With("instanceId", in.inst.InstanceID, "url", url)
	defer func() {
		st.cancel()
		s.agg.RemoveHost(st.host)
		s.mu.Lock()
		if in.st == st {
			in.st = nil
		}
		s.active--
		s.mu.Unlock()
	}()
	b := backoff.New(s.cfg.MinBackoff, s.cfg.MaxBackoff)
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			// Every reconnect is a new dial: the claim is checked again.
			pl, err := s.verifier.RunningTask(ctx, in.inst.Service, in.inst.Address)
			if err != nil || !pl.Running {
				if err != nil {
					s.watcherDown.Add(1)
				} else {
					s.unverified.Add(1)
					s.mu.Lock()
					in.verified = false
					s.mu.Unlock()
				}
				log.Info("not reconnecting: address not verified", "err", err)
				return
			}
			if pl.Tenant != st.host.tenant {
				// The service's tenant label changed: reconcile starts a new stream (and
				// aggregator host) under the watcher's tenant.
				log.Info("tenant changed; restarting the stream", "was", st.host.tenant, "now", pl.Tenant)
				s.mu.Lock()
				in.tenant = pl.Tenant
				s.mu.Unlock()
				s.wakeUp()
				return
			}
		}
		connected, err := s.connect(ctx, url, in, st)
		st.connected.Store(false)
		s.agg.ClearHost(st.host)
		if ctx.Err() != nil {
			return
		}
		if connected {
			b.Reset()
		}
		log.Debug("metrics stream dropped, retrying", "err", err)
		if !b.Wait(ctx) {
			return
		}
	}
}

// connect dials once and feeds samples to the aggregator until the stream ends. It reports
// whether the stream was connected at all.
func (s *Streams) connect(ctx context.Context, url string, in *instance, st *stream) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case s.dialSem <- struct{}{}:
	default:
		s.dialWaits.Add(1)
		select {
		case s.dialSem <- struct{}{}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	s.dials.Add(1)
	in.dials.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		<-s.dialSem
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.client.Do(req)
	<-s.dialSem
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	st.connected.Store(true)

	// The idle watchdog: every line read pushes the deadline back.
	idle := time.AfterFunc(s.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	return true, s.consume(resp.Body, st.host, cancel, func() { idle.Reset(s.cfg.IdleTimeout) })
}

// Errors that cut a stream.
var (
	errLineTooLong  = errors.New("stream line over the limit")
	errEventTooLong = errors.New("stream event over the per-host byte budget")
)

// consume reads server-sent events from r into host h until r ends or breaks a bound.
// cancel aborts the read (it closes r's connection); onLine is called for every line.
func (s *Streams) consume(r io.Reader, h *Host, cancel func(), onLine func()) error {
	// An event may span many data lines; the byte budget bounds one event as well, so a
	// peer that never ends its event cannot grow the reader's buffer.
	cr := &countingReader{r: r}
	var eventStart int64
	tooBig := false
	rd := sse.NewReader(cr, s.cfg.MaxLine)
	for {
		ev, err := rd.Next(func() {
			onLine()
			if !tooBig && cr.n.Load()-eventStart > int64(s.cfg.MaxBytesPerHost) {
				tooBig = true
				cancel()
			}
		})
		if tooBig {
			s.cutBytes.Add(1)
			return errEventTooLong
		}
		if errors.Is(err, bufio.ErrTooLong) {
			s.cutLine.Add(1)
			return errLineTooLong
		}
		if err != nil {
			return err
		}
		eventStart = cr.n.Load()
		sample, err := ParseSample(ev.Data)
		if err != nil {
			s.badLines.Add(1)
			continue
		}
		switch err := s.agg.Update(h, sample, len(ev.Data)); {
		case errors.Is(err, ErrTooManyKeys):
			s.cutKeys.Add(1)
			return err
		case errors.Is(err, ErrTooManyBytes):
			s.cutBytes.Add(1)
			return err
		case err != nil:
			return err
		}
	}
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Status reports, per instance ID, what Streams knows of it.
func (s *Streams) Status() map[string]InstanceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]InstanceStatus, len(s.insts))
	for id, in := range s.insts {
		out[id] = InstanceStatus{Connected: in.st != nil && in.st.connected.Load(), Verified: in.verified, Tenant: in.tenant, Dials: in.dials.Load()}
	}
	return out
}

// Connected reports, per instance ID, whether its stream is connected right now.
func (s *Streams) Connected() map[string]bool {
	out := map[string]bool{}
	for id, st := range s.Status() {
		out[id] = st.Connected
	}
	return out
}

// BadLines is the number of stream events that were not valid samples.
func (s *Streams) BadLines() uint64 { return s.badLines.Load() }

// Stats returns the streams' counters and how often each bound was hit.
func (s *Streams) Stats() api.StreamStats {
	s.mu.Lock()
	active, connected := s.active, 0
	for _, in := range s.insts {
		if in.st != nil && in.st.connected.Load() {
			connected++
		}
	}
	s.mu.Unlock()
	return api.StreamStats{
		Active: active, Connected: connected, Dials: s.dials.Load(), Unverified: s.unverified.Load(),
		WatcherDown: s.watcherDown.Load(), CappedStreams: s.capped.Load(), DialWaits: s.dialWaits.Load(),
		CutLineTooLong: s.cutLine.Load(), CutTooManyKeys: s.cutKeys.Load(), CutTooManyBytes: s.cutBytes.Load(),
	}
}
