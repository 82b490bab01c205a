package turbine

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// FuzzParseMerge feeds arbitrary sample lines to the parser and the merge: neither may
// panic, a merged sample must marshal back to JSON and report the hosts merged.
func FuzzParseMerge(f *testing.F) {
	for _, file := range []string{"testdata/host-ok.stream", "testdata/host-failing.stream"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if data, ok := strings.CutPrefix(line, "data:"); ok {
				f.Add([]byte(data))
			}
		}
	}
	f.Add([]byte(`{"type":"HystrixCommand","name":"x","a":{"b":{"c":1e308}},"d":1e308,"isCircuitBreakerOpen":"maybe"}`))
	f.Add([]byte(`{"type":"t","name":"n","reportingHosts":-5,"currentTime":"later"}`))
	ref, err := ParseSample([]byte(`{"type":"HystrixCommand","name":"x","requestCount":3,"a":{"b":2},"isCircuitBreakerOpen":false}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSample(data)
		if err != nil {
			return
		}
		for _, group := range [][]Sample{{s}, {s, s}, {s, ref}} {
			m := merge(group)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("merge of %q does not marshal: %v", data, err)
			}
			var back map[string]any
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("merged JSON does not parse: %v", err)
			}
			if _, ok := back["reportingHosts"]; !ok {
				t.Fatalf("merged sample lacks reportingHosts: %s", b)
			}
		}
	})
}

// FuzzConsume feeds an arbitrary instance stream through the bounded reader into the
// aggregator: no panic, and the host never holds more than its bounds.
func FuzzConsume(f *testing.F) {
	raw, err := os.ReadFile("testdata/host-ok.stream")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("data: {\"type\":\"a\",\"name\":\"b\"}\ndata: x\n\n: c\n\nevent: e\ndata:{}\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		cfg := testConfig()
		cfg.MaxLine, cfg.MaxKeysPerHost, cfg.MaxBytesPerHost = 4<<10, 4, 8<<10
		agg := NewAggregator(cfg.MaxKeysPerHost, cfg.MaxBytesPerHost)
		s := NewStreams(cfg, agg, verifyAll(), nil)
		h := agg.AddHost("h", "x", "")
		_ = s.consume(strings.NewReader(string(stream)), h, func() {}, func() {})
		agg.mu.Lock()
		keys, bytes := len(h.samples), h.bytes
		agg.mu.Unlock()
		if keys > cfg.MaxKeysPerHost || bytes > cfg.MaxBytesPerHost {
			t.Fatalf("host holds %d keys, %d bytes; bounds %d, %d", keys, bytes, cfg.MaxKeysPerHost, cfg.MaxBytesPerHost)
		}
		for _, out := range agg.Snapshot(Cluster{}) {
			if _, err := json.Marshal(out); err != nil {
				t.Fatalf("aggregate does not marshal: %v", err)
			}
		}
	})
}
