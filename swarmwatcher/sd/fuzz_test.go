package sd

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/goblog/goblog/internal/sse"
)

// FuzzApply feeds an arbitrary event stream, as the watcher (or anything
// that answers in its place) might send it, through the SSE reader and
// Instancer.apply: no panic, the model stays bounded, and the published set
// holds only host:port pairs with a port in range.
func FuzzApply(f *testing.F) {
	f.Add([]byte("event: snapshot\ndata: [{\"name\":\"goblog_accountservice\",\"tasks\":[{\"id\":\"a\",\"address\":\"10.0.1.7\",\"port\":6767,\"health\":\"passing\"}]}]\n\n" +
		"event: task-added\ndata: {\"type\":\"task-added\",\"service\":\"goblog_accountservice\",\"task\":{\"id\":\"b\",\"address\":\"10.0.1.8\",\"port\":6767,\"health\":\"passing\"}}\n\n" +
		"event: status\ndata: {\"stale\":true,\"error\":\"x\"}\n\n"))
	f.Add([]byte("event: health-changed\ndata: {\"service\":\"s\"}\n\nevent: snapshot\ndata: null\n\n"))
	f.Add([]byte("event: snapshot\ndata: []\n\nevent: service-removed\ndata: {\"service\":\"goblog_accountservice\"}\n\n"))
	f.Add([]byte("event: task-removed\ndata: {\"service\":\"goblog_accountservice\",\"task\":{\"id\":\"a\",\"port\":99999}}\n\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		in := &Instancer{
			cfg:   Config{Service: "accountservice"},
			log:   slog.New(slog.DiscardHandler),
			ready: make(chan struct{}),
			pools: map[string]*pool{"": newPool()},
		}
		r := sse.NewReader(bytes.NewReader(stream), 1<<16)
		got := false
		for range 1000 {
			ev, err := r.Next(nil)
			if err != nil {
				break
			}
			if in.apply(ev, &got) != nil {
				break // an unreadable snapshot ends the connection
			}
			if len(in.services) > maxServices {
				t.Fatalf("%d services in the model", len(in.services))
			}
			for name, tasks := range in.services {
				if len(tasks) > maxTasks {
					t.Fatalf("%d tasks in %s", len(tasks), name)
				}
			}
			sets := [][]string{in.State().Instances}
			for _, name := range in.Tenants() {
				sets = append(sets, in.stateOf(name).Instances)
			}
			if len(in.Tenants()) > MaxTenants {
				t.Fatalf("%d tenants followed", len(in.Tenants()))
			}
			for _, inst := range slices.Concat(sets...) {
				host, port, err := net.SplitHostPort(inst)
				n, perr := strconv.Atoi(port)
				_, aerr := netip.ParseAddr(host)
				if err != nil || perr != nil || aerr != nil || n < 1 || n > 65535 {
					t.Fatalf("published instance %q", inst)
				}
			}
		}
	})
}
