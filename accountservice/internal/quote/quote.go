// Package quote calls quotes-service by its logical name, with a deadline, and
// falls back to a fixed quote when the call fails.
package quote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/goblog/goblog/internal/tenant"
)

// Quote is what quotes-service answers.
type Quote struct {
	Text      string `json:"quote"`
	IPAddress string `json:"ipAddress"`
	Language  string `json:"language"`
}

// Fallback is served when quotes-service cannot answer in time (the tutorial's
// circuit-breaker fallback).
var Fallback = Quote{Text: "May the source be with you, always.", IPAddress: "circuit-breaker", Language: "en"}

const maxBody = 64 << 10

// Client fetches quotes. HTTP is exported so tests can intercept it: Fetch
// sends through HTTP.Transport itself (no redirects are followed: the quote
// call has none), so http.Client's per-call bookkeeping stays off the hot path.
type Client struct {
	HTTP    *http.Client
	url     *url.URL // parsed once; each request gets a copy
	timeout time.Duration
}

// NewClient calls baseURL/api/quote?strength=N with rt (nil: a plain
// transport), each call bounded by timeout.
func NewClient(baseURL string, strength int, timeout time.Duration, rt http.RoundTripper) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("quotes URL %q: want scheme://host[:port]", baseURL)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("quote timeout must be positive, got %s", timeout)
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	u = u.JoinPath("api", "quote")
	u.RawQuery = "strength=" + strconv.Itoa(strength)
	// The deadline is the request's context (Fetch): http.Client.Timeout would add
	// a second timer per call.
	// Parsed again from its text: JoinPath leaves "api/quote" without its leading
	// slash when the base has no path, which String mends and a request line
	// built from the URL itself would not.
	if u, err = url.Parse(u.String()); err != nil {
		return nil, fmt.Errorf("quotes URL %q: %w", baseURL, err)
	}
	return &Client{HTTP: &http.Client{Transport: rt}, url: u, timeout: timeout}, nil
}

var acceptJSON = []string{"application/json"}

// bodies are pooled read buffers for answers.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Fetch asks quotes-service for one quote, for the tenant ctx carries (see
// package tenant), if any: it is passed on in the X-Goblog-Tenant header.
// The call is bounded by the client's timeout, or by ctx's deadline when that
// is sooner.
func (c *Client) Fetch(ctx context.Context) (Quote, error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > c.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "", nil)
	if err != nil {
		return Quote{}, fmt.Errorf("quote request: %w", err)
	}
	// A copy of the URL parsed once (NewRequest would parse it per call): a
	// copy, since a transport may change the request's URL.
	u := *c.url
	req.URL, req.Host = &u, u.Host
	req.Header["Accept"] = acceptJSON
	if name, ok := tenant.FromContext(ctx); ok {
		req.Header[tenant.Header] = []string{name} // the tenant travels to the next hop
	}
	rt := c.HTTP.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return Quote{}, fmt.Errorf("quote call: %w", err)
	}
	defer resp.Body.Close()
	buf := bodies.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 8<<10 {
			buf.Reset()
			bodies.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBody)); err != nil {
		return Quote{}, fmt.Errorf("quote body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Quote{}, fmt.Errorf("quote call: status %s", resp.Status)
	}
	var q Quote
	if err := json.Unmarshal(buf.Bytes(), &q); err != nil {
		return Quote{}, fmt.Errorf("quote body: %w", err)
	}
	if q.Text == "" {
		return Quote{}, fmt.Errorf("quote body: empty quote")
	}
	return q, nil
}
