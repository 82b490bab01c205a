package quote

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The request line Fetch sends, for a base URL with and without a path: the URL is parsed
// once, and a path JoinPath left without its leading slash would make a malformed request.
func TestFetchSendsTheQuotePath(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"", "/api/quote?strength=4"},
		{"/", "/api/quote?strength=4"},
		{"/quotes", "/quotes/api/quote?strength=4"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := make(chan string, 2)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.RequestURI
				_, _ = w.Write([]byte(`{"quote":"q","ipAddress":"h/10.0.0.1:8080","language":"en"}`))
			}))
			defer srv.Close()
			c, err := NewClient(srv.URL+tc.base, 4, time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ { // the second call must not see what the first changed
				q, err := c.Fetch(context.Background())
				if err != nil || q.Text != "q" {
					t.Fatalf("call %d: %+v, %v", i, q, err)
				}
				if uri := <-got; uri != tc.want {
					t.Fatalf("call %d: request URI %q, want %q", i, uri, tc.want)
				}
			}
		})
	}
}
