package probe

import (
	"math"
	"sync"
	"time"
)

// Record is a Result as a Tracker keeps it in its history, and as the
// watcher's view holds it: 32 bytes where a Result takes 80 (a history of
// 20 results for each of 10,000 tasks, kept by the trackers and copied into
// the view, was 32 MB of the watcher's heap). It keeps what the wire shows
// of a result (api.Check): the time to the nanosecond, the latency to the
// microsecond, the status code and the outcome; the body's length is
// dropped, and an error text is shared with every other result of the
// same text (interned).
type Record struct {
	at      int64  // unix nanoseconds; 0 for the zero time
	err     string // interned
	latency int32  // microseconds, saturated
	code    uint16 // saturated
	outcome uint8  // index in outcomes
}

// outcomes are the Outcomes a Record encodes, by index.
var outcomes = [...]Outcome{Pass, Warn, Fail}

// Compact turns r into a Record. An outcome other than Pass, Warn and Fail
// is kept as Fail.
func Compact(r Result) Record {
	rec := Record{err: intern(r.Err), outcome: 2}
	if !r.At.IsZero() {
		rec.at = r.At.UnixNano()
	}
	rec.latency = int32(min(max(r.Latency.Microseconds(), 0), math.MaxInt32))
	rec.code = uint16(min(max(r.Code, 0), math.MaxUint16))
	for i, o := range outcomes {
		if o == r.Outcome {
			rec.outcome = uint8(i)
		}
	}
	return rec
}

// Result expands the Record (BodyBytes is 0: a Record does not keep it; At
// is in UTC, without a monotonic reading).
func (r Record) Result() Result {
	res := Result{
		Outcome: outcomes[r.outcome],
		Code:    int(r.code),
		Latency: time.Duration(r.latency) * time.Microsecond,
		Err:     r.err,
	}
	if r.at != 0 {
		res.At = time.Unix(0, r.at).UTC()
	}
	return res
}

// maxInterned bounds the error texts shared between Records: a few dozen
// occur ("connection refused", "timeout after 2s", "HTTP 503"); texts
// beyond the bound are kept as they come.
const maxInterned = 512

var interned struct {
	sync.Mutex
	m map[string]string
}

// intern returns the shared copy of s, adding s while there is room.
func intern(s string) string {
	if s == "" {
		return ""
	}
	interned.Lock()
	defer interned.Unlock()
	if v, ok := interned.m[s]; ok {
		return v
	}
	if interned.m == nil {
		interned.m = map[string]string{}
	}
	if len(interned.m) < maxInterned {
		interned.m[s] = s
	}
	return s
}
