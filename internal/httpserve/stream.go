package httpserve

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// StreamConfig bounds a long-lived answer (server-sent events).
type StreamConfig struct {
	// WriteWait bounds each write and flush: a reader that stops reading is
	// dropped after it. Default 10 s.
	WriteWait time.Duration
	// Idle ends a stream on which nothing was written for this long: a stream
	// handler sends keepalives more often. Default 60 s.
	Idle time.Duration
}

// Defaults of StreamConfig.
const (
	StreamWriteWait = 10 * time.Second
	StreamIdle      = 60 * time.Second
)

// Why a stream's request context ends (context.Cause).
var (
	ErrStreamIdle   = errors.New("stream idle: nothing written within the idle limit")
	ErrShuttingDown = errors.New("server shutting down")
	errStreamDone   = errors.New("stream handler returned")
)

// Streaming serves the requests whose URL path is one of paths as streams:
// the server's WriteTimeout is lifted for them, each write and flush gets
// cfg.WriteWait instead, and their request context ends after cfg.Idle
// without a write and when the server starts shutting down, so a stream never
// hangs forever nor holds a shutdown for its whole grace. Other routes keep
// WriteTimeout.
func Streaming(cfg StreamConfig, paths ...string) Option {
	if cfg.WriteWait <= 0 {
		cfg.WriteWait = StreamWriteWait
	}
	if cfg.Idle <= 0 {
		cfg.Idle = StreamIdle
	}
	return func(srv *http.Server) {
		ctx, cancel := context.WithCancelCause(context.Background())
		st := &streams{next: srv.Handler, cfg: cfg, paths: map[string]bool{}, down: ctx}
		for _, p := range paths {
			st.paths[p] = true
		}
		srv.Handler = st
		srv.RegisterOnShutdown(func() { cancel(ErrShuttingDown) })
	}
}

type streams struct {
	next  http.Handler
	cfg   StreamConfig
	paths map[string]bool
	down  context.Context // ends when the server starts shutting down
}

func (st *streams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !st.paths[r.URL.Path] {
		st.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	// No write is late yet, so the server's WriteTimeout can still be lifted.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(errStreamDone)
	stopDown := context.AfterFunc(st.down, func() { cancel(context.Cause(st.down)) })
	defer stopDown()
	idle := time.AfterFunc(st.cfg.Idle, func() { cancel(ErrStreamIdle) })
	defer idle.Stop()
	sw := &streamWriter{ResponseWriter: w, rc: rc, ctx: ctx, wait: st.cfg.WriteWait, wrote: func() { idle.Reset(st.cfg.Idle) }}
	st.next.ServeHTTP(sw, r.WithContext(ctx))
	sw.arm() // the server flushes the end of the answer after the handler
}

// streamWriter arms the write deadline before every write and flush. A
// deadline armed before an idle gap has passed by the next write; it is
// replaced then, before anything is written (an HTTP/1 connection's deadline
// is its socket's).
type streamWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	ctx   context.Context // the stream's: ends with the client, the idle limit or shutdown
	wait  time.Duration
	wrote func()
}

func (w *streamWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.wait)) }

func (w *streamWriter) Write(b []byte) (int, error) {
	w.arm()
	n, err := w.ResponseWriter.Write(b)
	if err == nil {
		w.wrote()
	}
	return n, err
}

// FlushError is what http.ResponseController.Flush calls.
func (w *streamWriter) FlushError() error {
	w.arm()
	return w.rc.Flush()
}

// Flush is for handlers that assert http.Flusher.
func (w *streamWriter) Flush() { _ = w.FlushError() }

// CloseNotify is for stream handlers written before request contexts, which
// wait on http.CloseNotifier instead (hystrix-go's stream handler asserts it
// unchecked): it fires when the stream's context ends, so such a handler also
// stops at the idle limit and at shutdown, not only when the client leaves.
func (w *streamWriter) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	context.AfterFunc(w.ctx, func() { ch <- true })
	return ch
}

// Unwrap lets http.ResponseController reach the connection.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
