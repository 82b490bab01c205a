// Package jsonhttp writes JSON answers and JSON error bodies: the one JSON
// response helper of every goblog server.
package jsonhttp

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
)

// maxPooled is the largest buffer kept for reuse: the hot answers (an
// account, a quote) are far smaller; a large one (the watcher's view of a big
// swarm) is left to the garbage collector rather than held by the pool.
const maxPooled = 4 << 10

// encoder is a pooled buffer with its JSON encoder, so an answer on a hot path
// allocates no buffer of its own.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

var contentType = []string{"application/json"}

// Write sends v as JSON (one line, newline-terminated) with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	e := encoders.Get().(*encoder)
	defer func() {
		if e.buf.Cap() <= maxPooled {
			e.buf.Reset()
			encoders.Put(e)
		}
	}()
	if err := e.enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(status)
	_, _ = w.Write(e.buf.Bytes())
}

// Error is the body of every JSON error answer.
type Error struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// WriteError sends {"status":N,"error":msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	Write(w, status, Error{Status: status, Error: msg})
}
