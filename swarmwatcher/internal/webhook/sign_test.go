package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/goblog/goblog/internal/syncbuf"
	"github.com/goblog/goblog/swarmwatcher/api"
)

// The Standard Webhooks specification's own example: secret, id, timestamp
// and body give this signature.
func TestSignMatchesTheSpecificationsExample(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // key length; -1: error
	}{
		{"", 0},
		{"whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), 32},
		{"a-plain-secret-of-24-byt", 24},
		{"whsec_not base64!", -1},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), -1},
		{"short", -1},
	} {
		key, err := ParseSecret(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("ParseSecret(%q) accepted", tc.in)
			} else if tc.in != "" && strings.Contains(err.Error(), strings.TrimPrefix(tc.in, "whsec_")) {
				t.Errorf("error %q repeats the secret", err)
			}
			continue
		}
		if err != nil || len(key) != tc.want {
			t.Errorf("ParseSecret(%q) = %d bytes, %v; want %d", tc.in, len(key), err, tc.want)
		}
	}
}

func TestSignedDeliveriesCarryTheStandardHeaders(t *testing.T) {
	rc := newReceiver(t, func(call int, w http.ResponseWriter, r *http.Request) {
		if call == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	key := bytes.Repeat([]byte("k"), 32)
	now := time.Unix(1_800_000_000, 0)
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, Secret: key, Sleep: (&sleeps{}).sleep, Now: func() time.Time { return now }})
	d.Send(chg("task-added", "s", 1))
	eventually(t, "two attempts", func() bool { return len(rc.received()) == 2 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	ids := map[string]bool{}
	for _, h := range rc.hdrs {
		id, ts, sig := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
		if id == "" || ts != strconv.FormatInt(now.Unix(), 10) || !strings.HasPrefix(sig, "v1,") {
			t.Fatalf("headers id=%q ts=%q sig=%q", id, ts, sig)
		}
		ids[id] = true
	}
	if len(ids) != 1 {
		t.Errorf("a retry changed webhook-id: %v", ids)
	}
	// The receiver's view: recompute over the raw body it got.
	body := []byte(`{"type":"task-added","service":"s","at":"1"}`)
	h := rc.hdrs[0]
	if got := Sign(key, h.Get("webhook-id"), now.Unix(), body); got != h.Get("webhook-signature") {
		t.Errorf("signature %s does not verify (recomputed %s)", h.Get("webhook-signature"), got)
	}
}

func TestUnsignedWithoutASecret(t *testing.T) {
	rc := newReceiver(t, nil)
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}})
	d.Send(chg("", "s", 1))
	eventually(t, "one delivery", func() bool { return len(rc.received()) == 1 })
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if h := rc.hdrs[0]; h.Get("webhook-id") == "" || h.Get("webhook-signature") != "" || h.Get("webhook-timestamp") != "" {
		t.Errorf("unsigned delivery headers: %v", h)
	}
}

func TestEventsFilterSendsOnlyTheChosenTypes(t *testing.T) {
	events, err := ParseEvents(" health-changed ,task-removed,")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseEvents("health-changed,task-exploded"); err == nil {
		t.Error("an unknown event type was accepted")
	}
	rc := newReceiver(t, nil)
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, Events: events})
	before := testutil.ToFloat64(d.m.filtered)
	d.Send(chg("task-added", "s", 1))
	d.Send(chg("health-changed", "s", 2))
	d.Send(chg("service-created", "s", 3))
	d.Send(chg("task-removed", "s", 4))
	eventually(t, "two deliveries", func() bool { return len(rc.received()) == 2 })
	if got := rc.received(); got[0].N != 2 || got[1].N != 4 {
		t.Errorf("delivered %v, want changes 2 and 4", got)
	}
	if got := testutil.ToFloat64(d.m.filtered) - before; got != 2 {
		t.Errorf("filtered += %v, want 2", got)
	}
	if _, err := New(Config{Events: []api.EventType{"nope"}}); err == nil {
		t.Error("New accepted an unknown event type")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		code   int
		header string
		want   time.Duration
	}{
		{http.StatusTooManyRequests, "7", 7 * time.Second},
		{http.StatusServiceUnavailable, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{http.StatusServiceUnavailable, "99999999", 5 * time.Minute}, // capped
		{http.StatusTooManyRequests, "soon", 100 * time.Millisecond}, // unreadable: the backoff
		{http.StatusInternalServerError, "7", 100 * time.Millisecond},
	} {
		rc := newReceiver(t, func(call int, w http.ResponseWriter, r *http.Request) {
			if call == 1 {
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(tc.code)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		sl := &sleeps{}
		d, _ := run(t, Config{URLs: []string{rc.srv.URL}, MinBackoff: 100 * time.Millisecond, Sleep: sl.sleep, Jitter: fullJitter,
			Now: func() time.Time { return now }})
		d.Send(chg("", "s", 1))
		eventually(t, "the retry", func() bool { return len(rc.received()) == 2 })
		if got := sl.get(); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%d Retry-After %q: waited %v, want %v", tc.code, tc.header, got, tc.want)
		}
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	rc := newReceiver(t, func(call int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.srv.URL, http.StatusTemporaryRedirect)
	})
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, Sleep: (&sleeps{}).sleep})
	d.Send(chg("", "s", 1))
	eventually(t, "a permanent failure", func() bool { return counter(d, d.m.failed, rc.srv.URL) == 1 })
	if n := len(elsewhere.received()); n != 0 {
		t.Errorf("the redirect target got %d deliveries", n)
	}
}

func TestLogsNeverShowCredentialsOrQueryValues(t *testing.T) {
	var logs syncbuf.Buffer
	u, _ := url.Parse("http://127.0.0.1:1/hook?token=s3cr3t&x=y")
	u.User = url.UserPassword("bob", "pa55")
	d, _ := run(t, Config{URLs: []string{u.String()}, MaxAttempts: 2, Sleep: (&sleeps{}).sleep, Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	d.Send(chg("", "s", 1))
	eventually(t, "the failure", func() bool { return counter(d, d.m.failed, u.String()) == 1 })
	out := logs.String()
	if !strings.Contains(out, "127.0.0.1:1/hook") {
		t.Fatalf("logs do not name the receiver:\n%s", out)
	}
	for _, secret := range []string{"s3cr3t", "pa55", "bob", "x=y"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs show %q:\n%s", secret, out)
		}
	}
	if got := redact(u.String()); got != "http://127.0.0.1:1/hook?token=…&x=…" {
		t.Errorf("redact = %s", got)
	}
}

// FuzzParseURLs: whatever WEBHOOK_URLS holds, an accepted URL is an
// absolute http(s) URL with a host, and neither an error nor the redacted
// form ever shows its credentials.
func FuzzParseURLs(f *testing.F) {
	for _, s := range []string{"http://a:1/h,https://b/x?t=1", "http://user:pw@h/x", "ftp://x", "http://[::1]:99999/", "http://h:0/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		urls, err := ParseURLs(s)
		if err != nil {
			return
		}
		for _, raw := range urls {
			u, perr := url.Parse(raw)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
				t.Fatalf("accepted %q", raw)
			}
			r := redact(raw)
			if p, ok := u.User.Password(); ok && len(p) > 3 && strings.Contains(r, p) {
				t.Fatalf("redact(%q) = %q shows the password", raw, r)
			}
			if _, err := http.NewRequestWithContext(context.Background(), http.MethodPost, raw, nil); err != nil {
				t.Fatalf("accepted %q but cannot request it: %v", raw, err)
			}
		}
	})
}
