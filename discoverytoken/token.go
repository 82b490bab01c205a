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

// Bounds of the contract. A token is a claim made by whoever can publish on the exchange;
// these keep one claim from steering a consumer or outliving its sender by much.
const (
	// MaxTTL is the largest ttlSeconds a token may carry.
	MaxTTL = 300 * time.Second
	// MaxClockSkew is how far ahead of the receiver's clock a timestamp may be. A token
	// further in the future is malformed: accepted, it would make the instance's real
	// heartbeats look stale.
	MaxClockSkew = 30 * time.Second

	maxNameLen = 255
)

// ErrMalformed is wrapped by every error Parse and Validate return for a token that breaks
// the contract.
var ErrMalformed = errors.New("malformed discovery token")

// The kinds of malformed token, as MalformedError.Kind reports them. A fixed, small set, so a
// consumer can count and log per kind without a flood of garbage growing its maps.
const (
	KindTooLarge   = "too-large"   // body over MaxTokenSize
	KindNotJSON    = "not-json"    // not one JSON object, or a field of the wrong JSON type
	KindState      = "state"       // state is not UP or DOWN
	KindAddress    = "address"     // missing, unparsable, or not a unicast address a stream may be dialled at
	KindPort       = "port"        // outside 1 … 65535
	KindService    = "service"     // missing, too long or not printable
	KindInstanceID = "instance-id" // missing, too long or not printable
	KindTTL        = "ttl"         // ttlSeconds outside 1 … 300
	KindTimestamp  = "timestamp"   // missing
	KindFuture     = "future"      // timestamp more than MaxClockSkew ahead of the receiver
)

// MalformedError says why a token is malformed. It wraps ErrMalformed.
type MalformedError struct {
	Kind   string // one of the Kind constants
	Detail string
}

func (e *MalformedError) Error() string { return ErrMalformed.Error() + ": " + e.Detail }

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(kind, format string, args ...any) error {
	return &MalformedError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// MalformedKind returns the kind of a malformed-token error, or "" for any other error.
func MalformedKind(err error) string {
	var me *MalformedError
	if errors.As(err, &me) {
		return me.Kind
	}
	return ""
}

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

// Ranges that IsGlobalUnicast lets through but no instance can be reached at: "this network"
// (0/8, which Linux dials as the local host), the reserved 240/4, and the deprecated
// IPv4-compatible IPv6 addresses (::/96).
var (
	reservedV4This   = netip.MustParsePrefix("0.0.0.0/8")
	reservedV4Future = netip.MustParsePrefix("240.0.0.0/4")
	reservedV6Compat = netip.MustParsePrefix("::/96")
)

// CheckAddress reports why s is not an address a discovery token may announce, or nil.
// It must be a plain IPv4 or IPv6 unicast address that a stream could be opened to across
// the network: loopback, unspecified (0.0.0.0, ::), link-local unicast (169.254/16 — the cloud
// metadata service lives there — and fe80::/10), multicast (link-local or not), the IPv4
// broadcast address, the reserved ranges above and any address with a zone (fe80::1%eth0) are refused. An IPv4-mapped
// IPv6 address is judged as the IPv4 address it maps.
func CheckAddress(s string) error {
	if s == "" {
		return malformed(KindAddress, "address is missing")
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return malformed(KindAddress, "address %q is not an IP address", s)
	}
	if addr.Zone() != "" {
		return malformed(KindAddress, "address %q has a zone", s)
	}
	a := addr.Unmap()
	switch {
	case a.IsLoopback():
		return malformed(KindAddress, "address %s is a loopback address", s)
	case a.IsUnspecified():
		return malformed(KindAddress, "address %s is unspecified", s)
	case a.IsLinkLocalUnicast():
		return malformed(KindAddress, "address %s is link-local", s)
	case a.IsMulticast():
		return malformed(KindAddress, "address %s is multicast", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return malformed(KindAddress, "address %s is the broadcast address", s)
	case reservedV4This.Contains(a), reservedV4Future.Contains(a), reservedV6Compat.Contains(a):
		return malformed(KindAddress, "address %s is in a reserved range", s)
	case !a.IsGlobalUnicast():
		return malformed(KindAddress, "address %s is not a unicast address", s)
	}
	return nil
}

// Validate reports the first problem that makes t break the contract regardless of the
// receiver's clock, or nil. Receivers use ValidateAt, which also bounds the timestamp.
func (t Token) Validate() error {
	switch {
	case t.State != StateUp && t.State != StateDown:
		return malformed(KindState, "state %q is not UP or DOWN", t.State)
	case t.Port < 1 || t.Port > 65535:
		return malformed(KindPort, "port %d is out of range", t.Port)
	case t.Service == "":
		return malformed(KindService, "service is missing")
	case len(t.Service) > maxNameLen || !printable(t.Service):
		return malformed(KindService, "service name is too long or not printable")
	case t.InstanceID == "":
		return malformed(KindInstanceID, "instanceId is missing")
	case len(t.InstanceID) > maxNameLen || !printable(t.InstanceID):
		return malformed(KindInstanceID, "instanceId is too long or not printable")
	case t.TTLSeconds < 1 || t.TTL() > MaxTTL:
		return malformed(KindTTL, "ttlSeconds %d is outside 1 … %d", t.TTLSeconds, int(MaxTTL/time.Second))
	case t.Timestamp.IsZero():
		return malformed(KindTimestamp, "timestamp is missing")
	}
	return CheckAddress(t.Address)
}

// ValidateAt is Validate plus the receiver's check of the timestamp: no more than
// MaxClockSkew ahead of now (the receiver's clock).
func (t Token) ValidateAt(now time.Time) error {
	if err := t.Validate(); err != nil {
		return err
	}
	if ahead := t.Timestamp.Sub(now); ahead > MaxClockSkew {
		return malformed(KindFuture, "timestamp %s is %s ahead of this clock (at most %s allowed)",
			t.Timestamp.UTC().Format(time.RFC3339), ahead.Truncate(time.Second), MaxClockSkew)
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

// Parse decodes one token body and validates it against the receiver's clock now (see
// ValidateAt). Unknown fields are tolerated; the body must be one JSON object of at most
// MaxTokenSize bytes with every field of the contract valid. Every error is a
// *MalformedError, which wraps ErrMalformed.
func Parse(body []byte, now time.Time) (Token, error) {
	if len(body) > MaxTokenSize {
		return Token{}, malformed(KindTooLarge, "%d bytes is over the %d byte limit", len(body), MaxTokenSize)
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
		return Token{}, malformed(KindNotJSON, "not a JSON object")
	}
	var t Token
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&t); err != nil {
		return Token{}, malformed(KindNotJSON, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return Token{}, malformed(KindNotJSON, "trailing data after the JSON object")
	}
	if err := t.ValidateAt(now); err != nil {
		return Token{}, err
	}
	return t, nil
}

// Marshal encodes t after validating it (Validate: a sender need not check its own clock).
func (t Token) Marshal() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}
