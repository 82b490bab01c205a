package check

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goblog/goblog/internal/nettest"
)

func TestRun(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"200 is healthy", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }, ""},
		{"204 is healthy", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }, ""},
		{"500 is not", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, "500"},
		{"503 is not", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, "503"},
		{"a redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "302"},
		{"a hang ends at the timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done(): // the checker gave up and closed the connection
			}
		}, "within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), srv.URL, 200*time.Millisecond) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("check hung past its timeout")
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("want healthy, got %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
			}
		})
	}
}

func TestAcceptedButSilentConnectionTimesOut(t *testing.T) {
	silent, _ := nettest.SilentListener(t) // accepts and never answers
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), "http://"+silent+"/health", 100*time.Millisecond)
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a silent server is not healthy")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("check hung past its timeout")
	}
}

func TestRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if err := Run(context.Background(), "http://"+addr+"/health", time.Second); err == nil {
		t.Fatal("a refused connection is not healthy")
	}
}
