// Command hookrecorder is the webhook receiver of the end-to-end tests: it
// records every POST /hook body (parsed and raw) with its Standard Webhooks
// headers and the time it arrived, and hands the list back on GET /received;
// the test verifies the signatures with an independent implementation. The discovery e2e test builds it into a scratch
// image and runs it as a container on the stack's attachable network, where
// the swarmwatcher reaches it by name.
package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/goblog/goblog/internal/conf"
	"github.com/goblog/goblog/internal/httpserve"
	"github.com/goblog/goblog/internal/jsonhttp"
)

// maxKept bounds memory: older records are forgotten first.
const maxKept = 10000

type record struct {
	ReceivedAt string          `json:"receivedAt"` // RFC 3339 with nanoseconds
	Delivery   string          `json:"delivery"`   // X-Swarmwatcher-Delivery
	Body       json.RawMessage `json:"body"`
	// Raw is the body exactly as received (base64 in JSON): a signature is
	// over these bytes, which Body's re-encoding may not keep.
	Raw       []byte `json:"raw"`
	ID        string `json:"webhookId,omitempty"`
	Timestamp string `json:"webhookTimestamp,omitempty"`
	Signature string `json:"webhookSignature,omitempty"`
}

type recorder struct {
	mu   sync.Mutex
	recs []record
}

func (rc *recorder) hook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		jsonhttp.WriteError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || !json.Valid(body) {
		jsonhttp.WriteError(w, http.StatusBadRequest, "want a JSON body")
		return
	}
	rec := record{ReceivedAt: time.Now().UTC().Format(time.RFC3339Nano), Delivery: r.Header.Get("X-Swarmwatcher-Delivery"), Body: body,
		Raw: body, ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"), Signature: r.Header.Get("webhook-signature")}
	rc.mu.Lock()
	if len(rc.recs) >= maxKept {
		rc.recs = append(rc.recs[:0], rc.recs[1:]...)
	}
	rc.recs = append(rc.recs, rec)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *recorder) received(w http.ResponseWriter, _ *http.Request) {
	rc.mu.Lock()
	recs := slices.Clone(rc.recs)
	rc.mu.Unlock()
	if recs == nil {
		recs = []record{}
	}
	jsonhttp.Write(w, http.StatusOK, recs)
}

func main() {
	var listen string
	s := conf.New("hookrecorder", "Records every POST /hook body and hands the list back on GET /received (the e2e tests' webhook receiver).")
	s.String(&listen, "listen", ":8080", "address to serve on", conf.HostPort)
	if done, err := s.Parse(os.Args[1:]); done || err != nil {
		os.Exit(s.ExitCode(err))
	}
	rc := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", rc.hook)
	mux.HandleFunc("GET /received", rc.received)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		jsonhttp.Write(w, http.StatusOK, map[string]string{"status": "UP"})
	})
	os.Exit(s.Run(func(ctx context.Context, log *slog.Logger) error {
		return httpserve.Run(ctx, httpserve.New(listen, mux), 5*time.Second, log)
	}))
}
