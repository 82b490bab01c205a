package jsonhttp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteIsMarshalPlusNewline(t *testing.T) {
	for _, v := range []any{
		map[string]any{"id": "10000", "name": "Person_0", "html": "<b>&</b>"},
		Error{Status: 404, Error: "no account 10100"},
		strings.Repeat("x", 3*maxPooled), // larger than what the pool keeps, twice in a row
		strings.Repeat("y", 3*maxPooled),
		[]int{1, 2, 3},
	} {
		rec := httptest.NewRecorder()
		Write(rec, http.StatusTeapot, v)
		want, _ := json.Marshal(v)
		if rec.Code != http.StatusTeapot || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(want)+"\n" {
			t.Fatalf("Write(%.40v) = %d %q %.60q, want 418 application/json %.60q", v, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), string(want)+"\n")
		}
	}
}

func TestWriteRefusesWhatCannotBeEncoded(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, http.StatusOK, map[string]any{"f": func() {}})
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "encode response") {
		t.Fatalf("got %d %q, want 500 naming the encoding failure", rec.Code, rec.Body.String())
	}
	// The failed encoder's buffer must not leak into the next answer.
	rec = httptest.NewRecorder()
	Write(rec, http.StatusOK, 1)
	if rec.Body.String() != "1\n" {
		t.Fatalf("next answer %q, want %q", rec.Body.String(), "1\n")
	}
}
