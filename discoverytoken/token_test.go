package discoverytoken

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// bodyTime is validBody's timestamp, and the receiver's clock in these tests.
var bodyTime = time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)

const validBody = `{"state":"UP","address":"10.0.1.7","port":8181,"service":"accountservice","instanceId":"a1","ttlSeconds":15,"timestamp":"2026-11-22T11:00:00Z"}`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string // substring; empty means valid
	}{
		{name: "valid UP", body: validBody},
		{name: "valid DOWN", body: strings.Replace(validBody, `"UP"`, `"DOWN"`, 1)},
		{name: "IPv6 address", body: strings.Replace(validBody, `10.0.1.7`, `fd00::7`, 1)},
		{name: "unknown fields tolerated", body: strings.Replace(validBody, `{`, `{"zone":"eu","extra":{"a":[1,2]},`, 1)},
		{name: "surrounding whitespace", body: "\n " + validBody + "\n"},
		{name: "fractional timestamp", body: strings.Replace(validBody, `11:00:00Z`, `11:00:00.123456+01:00`, 1)},

		{name: "empty", body: ``, wantErr: "not a JSON object"},
		{name: "null", body: `null`, wantErr: "not a JSON object"},
		{name: "array", body: `[` + validBody + `]`, wantErr: "not a JSON object"},
		{name: "string", body: `"UP"`, wantErr: "not a JSON object"},
		{name: "truncated", body: validBody[:40], wantErr: "unexpected EOF"},
		{name: "trailing garbage", body: validBody + `x`, wantErr: "trailing"},
		{name: "two objects", body: validBody + validBody, wantErr: "trailing"},
		{name: "too large", body: strings.Replace(validBody, `{`, `{"pad":"`+strings.Repeat("x", MaxTokenSize)+`",`, 1), wantErr: "byte limit"},
		{name: "lower-case state", body: strings.Replace(validBody, `"UP"`, `"up"`, 1), wantErr: "state"},
		{name: "unknown state", body: strings.Replace(validBody, `"UP"`, `"STARTING"`, 1), wantErr: "state"},
		{name: "missing state", body: strings.Replace(validBody, `"state":"UP",`, ``, 1), wantErr: "state"},
		{name: "state wrong type", body: strings.Replace(validBody, `"UP"`, `1`, 1), wantErr: "cannot unmarshal"},
		{name: "missing address", body: strings.Replace(validBody, `"address":"10.0.1.7",`, ``, 1), wantErr: "address is missing"},
		{name: "hostname address", body: strings.Replace(validBody, `10.0.1.7`, `accountservice`, 1), wantErr: "not an IP"},
		{name: "address with port", body: strings.Replace(validBody, `10.0.1.7`, `10.0.1.7:8181`, 1), wantErr: "not an IP"},
		{name: "address injection", body: strings.Replace(validBody, `10.0.1.7`, `10.0.1.7/evil?x=`, 1), wantErr: "not an IP"},
		{name: "port zero", body: strings.Replace(validBody, `8181`, `0`, 1), wantErr: "port"},
		{name: "port too big", body: strings.Replace(validBody, `8181`, `65536`, 1), wantErr: "port"},
		{name: "port negative", body: strings.Replace(validBody, `8181`, `-1`, 1), wantErr: "port"},
		{name: "port as string", body: strings.Replace(validBody, `8181`, `"8181"`, 1), wantErr: "cannot unmarshal"},
		{name: "port float", body: strings.Replace(validBody, `8181`, `8181.5`, 1), wantErr: "cannot unmarshal"},
		{name: "port huge", body: strings.Replace(validBody, `8181`, `99999999999999999999999`, 1), wantErr: "cannot unmarshal"},
		{name: "missing service", body: strings.Replace(validBody, `"service":"accountservice",`, ``, 1), wantErr: "service is missing"},
		{name: "service with control char", body: strings.Replace(validBody, `accountservice`, `account\u0000service`, 1), wantErr: "not printable"},
		{name: "service too long", body: strings.Replace(validBody, `accountservice`, strings.Repeat("s", 300), 1), wantErr: "too long"},
		{name: "missing instanceId", body: strings.Replace(validBody, `"instanceId":"a1",`, ``, 1), wantErr: "instanceId is missing"},
		{name: "invalid UTF-8 instanceId", body: strings.Replace(validBody, `"a1"`, "\"a\xff\"", 1), wantErr: "not printable"},
		{name: "ttl zero", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":0`, 1), wantErr: "ttlSeconds"},
		{name: "ttl missing", body: strings.Replace(validBody, `"ttlSeconds":15,`, ``, 1), wantErr: "ttlSeconds"},
		{name: "ttl huge", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":999999999`, 1), wantErr: "ttlSeconds"},
		{name: "timestamp missing", body: strings.Replace(validBody, `,"timestamp":"2026-11-22T11:00:00Z"`, ``, 1), wantErr: "timestamp is missing"},
		{name: "timestamp not RFC 3339", body: strings.Replace(validBody, `2026-11-22T11:00:00Z`, `22/11/2026`, 1), wantErr: "cannot parse"},
		{name: "timestamp null", body: strings.Replace(validBody, `"2026-11-22T11:00:00Z"`, `null`, 1), wantErr: "timestamp is missing"},
		{name: "ttl at the cap", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":300`, 1)},
		{name: "ttl over the cap", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":301`, 1), wantErr: "ttlSeconds"},
		{name: "ttl of a day", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":86400`, 1), wantErr: "ttlSeconds"},
		{name: "ttl negative", body: strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":-1`, 1), wantErr: "ttlSeconds"},
		{name: "deeply nested unknown field", body: strings.Replace(validBody, `{`, `{"x":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`,`, 1), wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse([]byte(tt.body), bodyTime)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: unexpected error %v", err)
				}
				if tok.Service != "accountservice" || tok.Port != 8181 || tok.InstanceID != "a1" || tok.TTL() < 15*time.Second {
					t.Fatalf("Parse = %+v, fields lost", tok)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted %q as %+v", tt.body, tok)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	in := Token{State: StateUp, Address: "10.0.1.7", Port: 8181, Service: "accountservice",
		InstanceID: "a1", TTLSeconds: 15, Timestamp: time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)}
	body, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Parse(body, bodyTime)
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	if _, err := (Token{State: "UP"}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Marshal of an invalid token: err = %v, want ErrMalformed", err)
	}
}

func TestHostPort(t *testing.T) {
	for addr, want := range map[string]string{"10.0.1.7": "10.0.1.7:8181", "fd00::7": "[fd00::7]:8181"} {
		if got := (Token{Address: addr, Port: 8181}).HostPort(); got != want {
			t.Errorf("HostPort(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestTokensAreClaims is the table of issue 13: addresses a stream must never be dialled at,
// timestamps from the future and oversized TTLs are malformed, each of its kind.
func TestTokensAreClaims(t *testing.T) {
	with := func(field, value string) string {
		tok := map[string]string{"address": `"10.0.1.7"`, "ttlSeconds": `15`, "timestamp": `"2026-11-22T11:00:00Z"`}
		tok[field] = value
		return `{"state":"UP","port":8181,"service":"accountservice","instanceId":"a1","address":` + tok["address"] +
			`,"ttlSeconds":` + tok["ttlSeconds"] + `,"timestamp":` + tok["timestamp"] + `}`
	}
	tests := []struct {
		name, body, kind string // kind "" means valid
	}{
		{"private IPv4", with("address", `"10.0.1.7"`), ""},
		{"public IPv4", with("address", `"203.0.113.9"`), ""},
		{"carrier-grade NAT", with("address", `"100.64.0.1"`), ""},
		{"unique local IPv6", with("address", `"fd00::7"`), ""},
		{"global IPv6", with("address", `"2001:db8::1"`), ""},
		{"IPv4-mapped private", with("address", `"::ffff:10.0.1.7"`), ""},

		{"loopback", with("address", `"127.0.0.1"`), KindAddress},
		{"loopback elsewhere in 127/8", with("address", `"127.1.2.3"`), KindAddress},
		{"IPv6 loopback", with("address", `"::1"`), KindAddress},
		{"IPv4-mapped loopback", with("address", `"::ffff:127.0.0.1"`), KindAddress},
		{"unspecified", with("address", `"0.0.0.0"`), KindAddress},
		{"IPv6 unspecified", with("address", `"::"`), KindAddress},
		{"this network 0/8", with("address", `"0.1.2.3"`), KindAddress},
		{"cloud metadata (link-local)", with("address", `"169.254.169.254"`), KindAddress},
		{"IPv4-mapped link-local", with("address", `"::ffff:169.254.169.254"`), KindAddress},
		{"IPv6 link-local", with("address", `"fe80::1"`), KindAddress},
		{"IPv6 link-local with zone", with("address", `"fe80::1%eth0"`), KindAddress},
		{"global IPv6 with zone", with("address", `"2001:db8::1%eth0"`), KindAddress},
		{"all-nodes multicast", with("address", `"ff02::1"`), KindAddress},
		{"IPv6 global multicast", with("address", `"ff0e::1"`), KindAddress},
		{"IPv4 link-local multicast", with("address", `"224.0.0.1"`), KindAddress},
		{"IPv4 multicast", with("address", `"239.1.2.3"`), KindAddress},
		{"broadcast", with("address", `"255.255.255.255"`), KindAddress},
		{"reserved 240/4", with("address", `"240.0.0.1"`), KindAddress},
		{"IPv4-compatible IPv6", with("address", `"::7f00:1"`), KindAddress},
		{"hostname", with("address", `"localhost"`), KindAddress},
		{"URL", with("address", `"http://10.0.1.7/"`), KindAddress},
		{"CIDR", with("address", `"10.0.1.0/24"`), KindAddress},
		{"empty", with("address", `""`), KindAddress},
		{"leading zeros", with("address", `"010.000.001.007"`), KindAddress},

		{"timestamp 30 s ahead (skew allowed)", with("timestamp", `"2026-11-22T11:00:30Z"`), ""},
		{"timestamp an hour behind", with("timestamp", `"2026-11-22T10:00:00Z"`), ""},
		{"timestamp 31 s ahead", with("timestamp", `"2026-11-22T11:00:31Z"`), KindFuture},
		{"timestamp a day ahead", with("timestamp", `"2026-11-23T11:00:00Z"`), KindFuture},
		{"timestamp 100 years ahead", with("timestamp", `"2126-11-22T11:00:00Z"`), KindFuture},
		{"timestamp ahead by zone trickery", with("timestamp", `"2026-11-22T11:00:00-01:00"`), KindFuture},
		{"year 9999", with("timestamp", `"9999-12-31T23:59:59Z"`), KindFuture},

		{"ttl 1", with("ttlSeconds", `1`), ""},
		{"ttl 300", with("ttlSeconds", `300`), ""},
		{"ttl 301", with("ttlSeconds", `301`), KindTTL},
		{"ttl 24 h", with("ttlSeconds", `86400`), KindTTL},
		{"ttl 0", with("ttlSeconds", `0`), KindTTL},
		{"ttl overflowing a duration", with("ttlSeconds", `9223372036`), KindTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body), bodyTime)
			if got := MalformedKind(err); got != tt.kind {
				t.Fatalf("Parse(%s): kind %q (err %v), want %q", tt.body, got, err, tt.kind)
			}
			if tt.kind != "" && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
		})
	}
}

func TestValidateAtUsesTheReceiversClock(t *testing.T) {
	tok, err := Parse([]byte(validBody), bodyTime)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ValidateAt(bodyTime.Add(-MaxClockSkew)); err != nil {
		t.Fatalf("exactly MaxClockSkew ahead: %v", err)
	}
	if err := tok.ValidateAt(bodyTime.Add(-MaxClockSkew - time.Millisecond)); MalformedKind(err) != KindFuture {
		t.Fatalf("just over MaxClockSkew ahead: err %v, want kind %s", err, KindFuture)
	}
	if err := tok.Validate(); err != nil {
		t.Fatalf("Validate (no clock) of a token from the future: %v", err)
	}
}

// FuzzParse checks that Parse never panics, that every error it returns is a MalformedError of
// a known kind, and that whatever it accepts passes every check of the contract (the address
// one again, independently) and survives a Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(strings.Replace(validBody, `"UP"`, `"DOWN"`, 1)))
	f.Add([]byte(strings.Replace(validBody, `10.0.1.7`, `fd00::7`, 1)))
	f.Add([]byte(strings.Replace(validBody, `10.0.1.7`, `fe80::1%eth0`, 1)))
	f.Add([]byte(strings.Replace(validBody, `10.0.1.7`, `::ffff:169.254.169.254`, 1)))
	f.Add([]byte(strings.Replace(validBody, `2026-11-22T11:00:00Z`, `2026-11-22T11:00:30.999999999Z`, 1)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"state":"UP","port":1e400}`))
	f.Add([]byte(`{"timestamp":"9999-99-99T99:99:99Z"}`))
	f.Add([]byte("{\"service\":\"\xff\xfe\"}"))
	kinds := map[string]bool{KindTooLarge: true, KindNotJSON: true, KindState: true, KindAddress: true, KindPort: true,
		KindService: true, KindInstanceID: true, KindTTL: true, KindTimestamp: true, KindFuture: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := Parse(body, bodyTime)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || !kinds[MalformedKind(err)] {
				t.Fatalf("error %v: not a MalformedError of a known kind (%q)", err, MalformedKind(err))
			}
			return
		}
		if err := tok.ValidateAt(bodyTime); err != nil {
			t.Fatalf("Parse accepted an invalid token: %v", err)
		}
		a, perr := netip.ParseAddr(tok.Address)
		a = a.Unmap()
		if perr != nil || a.Zone() != "" || a.IsLoopback() || a.IsUnspecified() || a.IsLinkLocalUnicast() ||
			a.IsMulticast() || a.IsLinkLocalMulticast() || !a.IsGlobalUnicast() {
			t.Fatalf("Parse accepted address %q", tok.Address)
		}
		if tok.Timestamp.Sub(bodyTime) > MaxClockSkew || tok.TTL() > MaxTTL || tok.TTLSeconds < 1 {
			t.Fatalf("Parse accepted timestamp %v / ttl %d", tok.Timestamp, tok.TTLSeconds)
		}
		again, err := tok.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed token: %v", err)
		}
		back, err := Parse(again, bodyTime)
		if err != nil {
			t.Fatalf("re-Parse: %v", err)
		}
		if !back.Timestamp.Equal(tok.Timestamp) || back.Address != tok.Address || back.InstanceID != tok.InstanceID {
			t.Fatalf("round trip changed the token: %+v → %+v", tok, back)
		}
	})
}
