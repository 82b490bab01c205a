package lbclient

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReplayable(t *testing.T) {
	withBody := func(m string, getBody bool) *http.Request {
		r, _ := http.NewRequest(m, "http://x/", strings.NewReader("b"))
		if !getBody {
			r.GetBody = nil
			r.Body = io.NopCloser(strings.NewReader("b"))
		}
		return r
	}
	noBody := func(m string) *http.Request { r, _ := http.NewRequest(m, "http://x/", nil); return r }
	for _, tc := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"GET", noBody(http.MethodGet), true},
		{"HEAD", noBody(http.MethodHead), true},
		{"DELETE", noBody(http.MethodDelete), true},
		{"PUT with a rewindable body", withBody(http.MethodPut, true), true},
		{"PUT with a one-shot body", withBody(http.MethodPut, false), false},
		{"POST", noBody(http.MethodPost), false},
		{"PATCH", withBody(http.MethodPatch, true), false},
	} {
		if got := Replayable(tc.req); got != tc.want {
			t.Errorf("%s: Replayable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
