package turbine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goblog/goblog/discoverytoken"
)

// StreamsConfig configures Streams.
type StreamsConfig struct {
	// Path is the metrics stream path on every instance. Default /hystrix.stream.
	Path string
	// DialTimeout bounds connecting and the response headers. Default 3 s.
	DialTimeout time.Duration
	// IdleTimeout drops a stream that sent nothing (not even a ping) for this long, so a
	// hung connection is noticed. Default 15 s.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay while the instance lives.
	// Defaults 200 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Streams holds one metrics stream connection per live instance, feeding the Aggregator. Its
// Add and Remove are quick and never block (they are called from registry events).
type Streams struct {
	cfg    StreamsConfig
	agg    *Aggregator
	client *http.Client

	mu      sync.Mutex
	ctx     context.Context
	streams map[string]*stream
	wg      sync.WaitGroup

	badLines atomic.Uint64
}

type stream struct {
	inst      discoverytoken.Instance
	host      *Host
	cancel    context.CancelFunc
	connected atomic.Bool
}

// NewStreams returns Streams feeding agg. Streams run until ctx ends or they are removed;
// call Wait after ctx ends.
func NewStreams(ctx context.Context, cfg StreamsConfig, agg *Aggregator) *Streams {
	if cfg.Path == "" {
		cfg.Path = "/hystrix.stream"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 3 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Second, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout}).DialContext,
		ResponseHeaderTimeout: cfg.DialTimeout,
		MaxIdleConnsPerHost:   1,
	}
	return &Streams{
		cfg: cfg, agg: agg, ctx: ctx, streams: map[string]*stream{},
		// No overall Timeout: a stream lives as long as its instance. The idle watchdog and
		// the instance's context end it.
		client: &http.Client{Transport: tr},
	}
}

// HandleEvent applies a registry event: an added instance gets a stream, a removed one
// loses it and its contribution to the aggregate.
func (s *Streams) HandleEvent(ev discoverytoken.Event) {
	switch ev.Type {
	case discoverytoken.EventAdded:
		s.Add(ev.Instance)
	case discoverytoken.EventRemoved:
		s.Remove(ev.Instance.InstanceID)
	}
}

// Add starts the stream of an instance (once; a second Add of the same ID replaces it).
func (s *Streams) Add(inst discoverytoken.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	if old, ok := s.streams[inst.InstanceID]; ok {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(s.ctx)
	h := s.agg.AddHost(inst.InstanceID)
	st := &stream{inst: inst, host: h, cancel: cancel}
	s.streams[inst.InstanceID] = st
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.agg.RemoveHost(h)
		s.run(ctx, st, h)
	}()
}

// Remove closes the stream of an instance and takes its data out of the aggregate now.
func (s *Streams) Remove(instanceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[instanceID]; ok {
		st.cancel()
		delete(s.streams, instanceID)
		s.agg.RemoveHost(st.host)
	}
}

// Connected reports, per instance ID, whether its stream is connected right now.
func (s *Streams) Connected() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.streams))
	for id, st := range s.streams {
		out[id] = st.connected.Load()
	}
	return out
}

// BadLines is the number of stream lines that were not valid samples.
func (s *Streams) BadLines() uint64 { return s.badLines.Load() }

// Wait returns when every stream goroutine has ended (after the context ended or they
// were all removed).
func (s *Streams) Wait() { s.wg.Wait() }

// run keeps one instance's stream connected until ctx ends.
func (s *Streams) run(ctx context.Context, st *stream, h *Host) {
	url := "http://" + st.inst.HostPort() + s.cfg.Path
	log := s.cfg.Logger.With("instanceId", st.inst.InstanceID, "url", url)
	delay := s.cfg.MinBackoff
	for ctx.Err() == nil {
		err := s.read(ctx, url, st, h, func() { delay = s.cfg.MinBackoff })
		st.connected.Store(false)
		s.agg.ClearHost(h)
		if ctx.Err() != nil {
			return
		}
		log.Debug("metrics stream dropped, retrying", "err", err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, s.cfg.MaxBackoff)
	}
}

// read connects once and feeds samples to the aggregator until the stream ends.
func (s *Streams) read(ctx context.Context, url string, st *stream, h *Host, connected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	st.connected.Store(true)
	connected()

	// The idle watchdog: every line read pushes the deadline back.
	idle := time.AfterFunc(s.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		idle.Reset(s.cfg.IdleTimeout)
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // blank separators, ": ping" comments, event names
		}
		sample, err := ParseSample(bytes.TrimSpace(data))
		if err != nil {
			s.badLines.Add(1)
			continue
		}
		s.agg.Update(h, sample)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended")
}
