// Package jsonhttp writes JSON answers and JSON error bodies.
package jsonhttp

import (
	"encoding/json"
	"net/http"
)

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"encode response"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
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
