package breaker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goblog/goblog/accountservice/internal/quote"
)

type fakeQuotes struct {
	delay time.Duration
	err   error
	calls atomic.Int32
}

func (f *fakeQuotes) Fetch(ctx context.Context) (quote.Quote, error) {
	f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return quote.Quote{}, ctx.Err()
	}
	if f.err != nil {
		return quote.Quote{}, f.err
	}
	return quote.Quote{Text: "real", IPAddress: "q/10.0.1.9:8080", Language: "en"}, nil
}

func TestBreaker(t *testing.T) {
	tests := []struct {
		name string
		fake *fakeQuotes
		want string
		open bool // the circuit opens: fewer than 30 calls reach quotes-service
	}{
		{"answers pass through", &fakeQuotes{}, "real", false},
		{"errors give the fallback, then the circuit opens", &fakeQuotes{err: errors.New("503")}, quote.Fallback.Text, true},
		{"slow calls give the fallback after the timeout", &fakeQuotes{delay: time.Second}, quote.Fallback.Text, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.fake, Config{Timeout: 50 * time.Millisecond, RequestVolume: 20})
			call := func(i int) {
				q, err := b.Fetch(context.Background())
				if err != nil {
					t.Fatalf("call %d: error %v; the breaker must never fail", i, err)
				}
				if q.Text != tt.want {
					t.Fatalf("call %d: quote %q, want %q", i, q.Text, tt.want)
				}
			}
			for i := range 20 {
				call(i)
			}
			// Outcomes are counted as calls end: call 21 finds the window at the volume
			// threshold and opens the circuit.
			for i := 20; i < 30; i++ {
				call(i)
			}
			got := tt.fake.calls.Load()
			if tt.open && got != 20 {
				t.Errorf("quotes-service called %d times of 30, want 20: the circuit open after 20 failures", got)
			}
			if !tt.open && got != 30 {
				t.Errorf("quotes-service called %d times of 30, want all", got)
			}
		})
	}
}

// TestStreamRaceAndStop runs calls and stream readers at once (go test -race), checks the
// stream's content, and that ServeMetrics' goroutines end when it stops.
func TestStreamRaceAndStop(t *testing.T) {
	before := runtime.NumGoroutine()
	b := New(&fakeQuotes{}, Config{Timeout: 50 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.ServeMetrics(ctx, ln, nil, nil) }()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = b.Fetch(context.Background())
				}
			}
		}()
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for range 2 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/hystrix.stream")
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var cmd map[string]any
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.Contains(data, `"HystrixCommand"`) {
				if err := json.Unmarshal([]byte(data), &cmd); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		resp.Body.Close()
		if cmd["name"] != Command || cmd["reportingHosts"] != 1.0 {
			t.Fatalf("stream sample = %v", cmd)
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("ServeMetrics: %v", err)
	}
	// Nothing of the breaker runs on its own goroutine: every one the stream started must
	// be gone (the HTTP client's idle connections aside).
	client.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after stop, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
