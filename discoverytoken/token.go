package discoverytoken

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Exchange is the durable fanout exchange that carries discovery tokens.
const Exchange = "discovery"

// MaxTokenSize is the largest token body Parse accepts, in bytes. A real token is about 200.
const MaxTokenSize = 4096

// State is the lifecycle state a token announces.
type State string

// The two states of the contract. They keep the meaning Turbine's AMQP discovery plugin
// gives them: UP adds or refreshes an instance, DOWN removes it.
const (
	StateUp   State = "UP"
	StateDown State = "DOWN"
)

// Limits on individual fields, so a hostile token cannot blow up the registry.
const (
	maxNameLen = 255
	maxTTL     = 24 * time.Hour
)

// ErrMalformed is wrapped by every error Parse returns for a body that is not a valid token.
var ErrMalformed = errors.New("malformed discovery token")

// Token is one discovery token: which instance of which service is UP or DOWN, and where its
// metrics stream can be reached.
type Token struct {
	State      State     `json:"state"`
	Address    string    `json:"address"`
	Port       int       `json:"port"`
	Service    string    `json:"service"`
	InstanceID string    `json:"instanceId"`
	TTLSeconds int       `json:"ttlSeconds"`
	Timestamp  time.Time `json:"timestamp"`
}

// TTL is the token's time to live as a duration.
func (t Token) TTL() time.Duration { return time.Duration(t.TTLSeconds) * time.Second }

// HostPort is address:port, with brackets around an IPv6 address.
func (t Token) HostPort() string {
	addr, err := netip.ParseAddr(t.Address)
	if err != nil {
		return fmt.Sprintf("%s:%d", t.Address, t.Port)
	}
	return netip.AddrPortFrom(addr, uint16(t.Port)).String()
}

// Validate reports the first problem that makes t an invalid token, or nil.
func (t Token) Validate() error {
	switch {
	case t.State != StateUp && t.State != StateDown:
		return fmt.Errorf("%w: state %q is not UP or DOWN", ErrMalformed, t.State)
	case t.Address == "":
		return fmt.Errorf("%w: address is missing", ErrMalformed)
	case t.Port < 1 || t.Port > 65535:
		return fmt.Errorf("%w: port %d is out of range", ErrMalformed, t.Port)
	case t.Service == "":
		return fmt.Errorf("%w: service is missing", ErrMalformed)
	case len(t.Service) > maxNameLen || !printable(t.Service):
		return fmt.Errorf("%w: service name is too long or not printable", ErrMalformed)
	case t.InstanceID == "":
		return fmt.Errorf("%w: instanceId is missing", ErrMalformed)
	case len(t.InstanceID) > maxNameLen || !printable(t.InstanceID):
		return fmt.Errorf("%w: instanceId is too long or not printable", ErrMalformed)
	case t.TTLSeconds < 1 || t.TTL() > maxTTL:
		return fmt.Errorf("%w: ttlSeconds %d is out of range", ErrMalformed, t.TTLSeconds)
	case t.Timestamp.IsZero():
		return fmt.Errorf("%w: timestamp is missing", ErrMalformed)
	}
	if _, err := netip.ParseAddr(t.Address); err != nil {
		return fmt.Errorf("%w: address %q is not an IP address", ErrMalformed, t.Address)
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// Parse decodes and validates one token body. Unknown fields are tolerated; the body must be
// one JSON object of at most MaxTokenSize bytes with every field of the contract valid.
// Every error wraps ErrMalformed.
func Parse(body []byte) (Token, error) {
	if len(body) > MaxTokenSize {
		return Token{}, fmt.Errorf("%w: %d bytes is over the %d byte limit", ErrMalformed, len(body), MaxTokenSize)
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return Token{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var t Token
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&t); err != nil {
		return Token{}, fmt.Errorf("%w: %s", ErrMalformed, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return Token{}, fmt.Errorf("%w: trailing data after the JSON object", ErrMalformed)
	}
	if err := t.Validate(); err != nil {
		return Token{}, err
	}
	return t, nil
}

// Marshal encodes t after validating it.
func (t Token) Marshal() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}
