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
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
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
		http.Error(w, `{"error":"POST only"}`, http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || !json.Valid(body) {
		http.Error(w, `{"error":"want a JSON body"}`, http.StatusBadRequest)
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
	out, err := json.Marshal(rc.recs)
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, `{"error":"marshal"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	rc := &recorder{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", rc.hook)
	mux.HandleFunc("GET /received", rc.received)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"UP"}`)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("hookrecorder listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
}
