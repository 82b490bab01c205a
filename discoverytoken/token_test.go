package discoverytoken

import (
	"errors"
	"strings"
	"testing"
	"time"
)

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
		{name: "deeply nested unknown field", body: strings.Replace(validBody, `{`, `{"x":`+strings.Repeat("[", 1000)+strings.Repeat("]", 1000)+`,`, 1), wantErr: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse([]byte(tt.body))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: unexpected error %v", err)
				}
				if tok.Service != "accountservice" || tok.Port != 8181 || tok.InstanceID != "a1" || tok.TTL() != 15*time.Second {
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
	out, err := Parse(body)
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

// FuzzParse checks that Parse never panics, and that whatever it accepts is valid and
// survives a Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validBody))
	f.Add([]byte(strings.Replace(validBody, `"UP"`, `"DOWN"`, 1)))
	f.Add([]byte(strings.Replace(validBody, `10.0.1.7`, `fd00::7`, 1)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"state":"UP","port":1e400}`))
	f.Add([]byte(`{"timestamp":"9999-99-99T99:99:99Z"}`))
	f.Add([]byte("{\"service\":\"\xff\xfe\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := Parse(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := tok.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid token: %v", err)
		}
		again, err := tok.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed token: %v", err)
		}
		back, err := Parse(again)
		if err != nil {
			t.Fatalf("re-Parse: %v", err)
		}
		if !back.Timestamp.Equal(tok.Timestamp) || back.Address != tok.Address || back.InstanceID != tok.InstanceID {
			t.Fatalf("round trip changed the token: %+v → %+v", tok, back)
		}
	})
}
