package probe

import (
	"strconv"
	"testing"
	"time"
	"unsafe"
)

func TestRecordKeepsWhatTheWireShows(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for _, r := range []Result{
		{At: at, Outcome: Pass, Code: 200, Latency: 1234567 * time.Nanosecond, BodyBytes: 15},
		{At: at, Outcome: Warn, Code: 429, Latency: time.Millisecond, Err: "HTTP 429"},
		{At: at, Outcome: Fail, Code: 0, Latency: 2 * time.Second, Err: "timeout after 2s"},
		{Outcome: Fail, Err: "canceled"}, // the zero time stays zero
	} {
		got := Compact(r).Result()
		if !got.At.Equal(r.At) || got.At.IsZero() != r.At.IsZero() || got.Outcome != r.Outcome || got.Code != r.Code ||
			got.Err != r.Err || got.Latency.Microseconds() != r.Latency.Microseconds() {
			t.Errorf("%+v came back as %+v", r, got)
		}
	}
	if size := unsafe.Sizeof(Record{}); size > 32 {
		t.Errorf("a Record takes %d bytes, want at most 32", size)
	}
}

func TestRecordSaturates(t *testing.T) {
	got := Compact(Result{Outcome: "odd", Code: 1 << 20, Latency: time.Hour}).Result()
	if got.Outcome != Fail || got.Code != 65535 || got.Latency != (1<<31-1)*time.Microsecond {
		t.Errorf("got %+v", got)
	}
}

func TestRecordSharesErrorTexts(t *testing.T) {
	a := Compact(Result{Outcome: Fail, Err: "HTTP " + strconv.Itoa(503)}).Result().Err
	b := Compact(Result{Outcome: Fail, Err: "HTTP " + strconv.Itoa(503)}).Result().Err
	if unsafe.StringData(a) != unsafe.StringData(b) {
		t.Error("two results with the same error text keep two copies")
	}
}
