package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecordsPostsInOrder(t *testing.T) {
	rc := &recorder{}
	for i, body := range []string{`{"type":"task-added"}`, `not json`, `{"type":"task-removed"}`} {
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		req.Header.Set("X-Swarmwatcher-Delivery", "7")
		req.Header.Set("webhook-id", "msg_1")
		req.Header.Set("webhook-timestamp", "1800000000")
		req.Header.Set("webhook-signature", "v1,abc=")
		w := httptest.NewRecorder()
		rc.hook(w, req)
		want := http.StatusNoContent
		if i == 1 {
			want = http.StatusBadRequest
		}
		if w.Code != want {
			t.Fatalf("POST %q: status %d, want %d", body, w.Code, want)
		}
	}
	w := httptest.NewRecorder()
	rc.hook(w, httptest.NewRequest(http.MethodGet, "/hook", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /hook: status %d", w.Code)
	}
	w = httptest.NewRecorder()
	rc.received(w, httptest.NewRequest(http.MethodGet, "/received", nil))
	var recs []record
	if err := json.Unmarshal(w.Body.Bytes(), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || !strings.Contains(string(recs[0].Body), "task-added") ||
		!strings.Contains(string(recs[1].Body), "task-removed") || recs[0].Delivery != "7" || recs[0].ReceivedAt == "" ||
		string(recs[0].Raw) != `{"type":"task-added"}` || recs[0].ID != "msg_1" || recs[0].Timestamp != "1800000000" || recs[0].Signature != "v1,abc=" {
		t.Fatalf("received = %+v", recs)
	}
}
