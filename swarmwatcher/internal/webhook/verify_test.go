package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// verifyIndependently runs testdata/verify_signature.py (Python's hmac and
// hashlib, no Go) over deliveries and returns its verdict.
func verifyIndependently(t *testing.T, secret string, deliveries []map[string]string) (string, error) {
	t.Helper()
	in, _ := json.Marshal(map[string]any{"secret": secret, "deliveries": deliveries})
	cmd := exec.Command("python3", "testdata/verify_signature.py")
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.CombinedOutput()
	if _, missing := err.(*exec.Error); missing {
		t.Fatalf("python3 is needed for the independent signature check (Debian: apt-get install python3): %v", err)
	}
	return strings.TrimSpace(string(out)), err
}

// Every signed POST the dispatcher makes verifies with an implementation that
// shares no code with it; a tampered body does not.
func TestSignaturesVerifyWithAnIndependentImplementation(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a 32 byte key for the e2e tests!"))
	key, err := ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t, nil)
	d, _ := run(t, Config{URLs: []string{rc.srv.URL}, Secret: key, Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	for i := range 3 {
		d.Send(chg("health-changed", "goblog_accountservice", i+1))
	}
	eventually(t, "three deliveries", func() bool { return len(rc.received()) == 3 })
	var deliveries []map[string]string
	rc.mu.Lock()
	for i, h := range rc.hdrs {
		deliveries = append(deliveries, map[string]string{
			"id": h.Get("webhook-id"), "timestamp": h.Get("webhook-timestamp"), "signature": h.Get("webhook-signature"),
			"body_b64": base64.StdEncoding.EncodeToString(rc.bodies[i]),
		})
	}
	tampered := append(bytes.Clone(rc.bodies[1]), ' ')
	rc.mu.Unlock()
	if out, err := verifyIndependently(t, secret, deliveries); err != nil || out != "verified 3" {
		t.Fatalf("independent check: %s (%v)", out, err)
	}
	deliveries[1]["body_b64"] = base64.StdEncoding.EncodeToString(tampered)
	if out, err := verifyIndependently(t, secret, deliveries); err == nil {
		t.Fatalf("a tampered body verified: %s", out)
	}
}
