//go:build integration

package discoverytoken

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// These tests need a real RabbitMQ. ./test.sh integration starts one on loopback
// (rabbitmq/loopback.sh) and sets GOBLOG_AMQP_URL and GOBLOG_RABBITMQCTL.

func brokerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("GOBLOG_AMQP_URL")
	if u == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("GOBLOG_AMQP_URL is not set: CI must run these through ./test.sh integration")
		}
		tb.Skip("GOBLOG_AMQP_URL is not set: run ./test.sh integration (starts a loopback RabbitMQ)")
	}
	return u
}

// rabbitmqctl runs rabbitmqctl against the test broker.
func rabbitmqctl(tb testing.TB, args ...string) {
	tb.Helper()
	cmdline := strings.Fields(os.Getenv("GOBLOG_RABBITMQCTL"))
	if len(cmdline) == 0 {
		tb.Fatal("GOBLOG_RABBITMQCTL is not set: run ./test.sh integration")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmdline[0], append(cmdline[1:], args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

func testLogger(tb testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
	}
	return nil
}

// eventually polls cond every 20 ms until it holds or the deadline passes.
func eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// group runs Run(ctx) functions and waits for them on cleanup, so no goroutine outlives a test.
type group struct {
	wg sync.WaitGroup
}

func (g *group) start(tb testing.TB, run func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(done)
		if err := run(ctx); err != nil {
			tb.Errorf("Run: %v", err)
		}
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("Run did not return within 10 s of cancel")
		}
	})
	return cancel
}

type testConsumer struct {
	*Consumer
	reg *Registry
}

func startConsumer(tb testing.TB, g *group, url string) testConsumer {
	reg := NewRegistry(RegistryConfig{})
	c, err := NewConsumer(ConsumerConfig{URL: url, Sink: reg, MaxBackoff: 500 * time.Millisecond, Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	g.start(tb, c.Run)
	eventually(tb, 10*time.Second, "consumer never subscribed", c.Subscribed)
	return testConsumer{c, reg}
}

func startPublisher(tb testing.TB, g *group, url, id string, interval, ttl time.Duration) (*Publisher, context.CancelFunc) {
	p, err := NewPublisher(PublisherConfig{
		URL: url, Service: "accountservice", Address: "10.9.0.1", Port: 8181, InstanceID: id,
		Interval: interval, TTL: ttl, MaxBackoff: 500 * time.Millisecond, Logger: testLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p, g.start(tb, p.Run)
}

func hasAll(reg *Registry, ids ...string) bool {
	live := map[string]bool{}
	for _, in := range reg.Instances() {
		live[in.InstanceID] = true
	}
	for _, id := range ids {
		if !live[id] {
			return false
		}
	}
	return len(live) == len(ids)
}

func uniqueIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), i)
	}
	return ids
}

func TestTwoConsumersSeeEveryToken(t *testing.T) {
	url := brokerURL(t)
	var g group
	c1, c2 := startConsumer(t, &g, url), startConsumer(t, &g, url)
	ids := uniqueIDs("two", 5)
	stops := map[string]context.CancelFunc{}
	for _, id := range ids {
		_, stops[id] = startPublisher(t, &g, url, id, 200*time.Millisecond, 10*time.Second)
	}
	for i, c := range []testConsumer{c1, c2} {
		eventually(t, 10*time.Second, fmt.Sprintf("consumer %d does not list all 5 instances", i+1), func() bool { return hasAll(c.reg, ids...) })
	}
	// One DOWN reaches both consumers too.
	stops[ids[0]]()
	for i, c := range []testConsumer{c1, c2} {
		eventually(t, 5*time.Second, fmt.Sprintf("consumer %d still lists the instance that said DOWN", i+1), func() bool { return hasAll(c.reg, ids[1:]...) })
	}
	if s1, s2 := c1.reg.Stats(), c2.reg.Stats(); s1.Added != 5 || s2.Added != 5 {
		t.Fatalf("heartbeats re-added instances: consumer stats %+v and %+v, want Added 5", s1, s2)
	}
}

// recovery checks that after the broker dropped everyone, both sides come back: the consumer
// re-subscribes, the publishers reconnect and heartbeat again, and the registry is whole.
func recovery(t *testing.T, disrupt func()) {
	url := brokerURL(t)
	var g group
	c := startConsumer(t, &g, url)
	ids := uniqueIDs("rec", 3)
	pubs := make([]*Publisher, len(ids))
	for i, id := range ids {
		pubs[i], _ = startPublisher(t, &g, url, id, 200*time.Millisecond, 30*time.Second)
	}
	eventually(t, 10*time.Second, "registry not whole before the disruption", func() bool { return hasAll(c.reg, ids...) })

	subscribes := c.Stats().Subscribes
	disrupt()
	eventually(t, 60*time.Second, "consumer did not re-subscribe", func() bool {
		return c.Subscribed() && c.Stats().Subscribes > subscribes
	})
	after := time.Now()
	// Every publisher's heartbeat arrives on the new subscription.
	eventually(t, 30*time.Second, "publishers' heartbeats did not resume", func() bool {
		for _, in := range c.reg.Instances() {
			if !in.LastSeen.After(after) {
				return false
			}
		}
		return hasAll(c.reg, ids...)
	})
	for i, p := range pubs {
		if !p.Connected() {
			t.Errorf("publisher %d is not connected after recovery", i)
		}
	}
	// And something new is seen, too.
	late := uniqueIDs("late", 1)[0]
	startPublisher(t, &g, url, late, 200*time.Millisecond, 30*time.Second)
	eventually(t, 10*time.Second, "a publisher started after recovery was not seen", func() bool { return hasAll(c.reg, append(ids, late)...) })
}

func TestRecoveryAfterCloseAllConnections(t *testing.T) {
	recovery(t, func() { rabbitmqctl(t, "close_all_connections", "integration test") })
}

func TestRecoveryAfterBrokerRestart(t *testing.T) {
	recovery(t, func() {
		rabbitmqctl(t, "stop_app")
		time.Sleep(time.Second) // both sides are disconnected and retrying now
		rabbitmqctl(t, "start_app")
	})
}

func TestMalformedTokensDroppedAndCounted(t *testing.T) {
	url := brokerURL(t)
	var g group
	c := startConsumer(t, &g, url)

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	hostile := [][]byte{
		[]byte(``), []byte(`null`), []byte(`{}`), []byte(`{"state":"UP"}`), []byte("\xff\xfe"),
		[]byte(strings.Repeat("{", 5000)), []byte(strings.Replace(validBody, `10.0.1.7`, `evil.example`, 1)),
		[]byte(strings.Replace(validBody, `10.0.1.7`, `169.254.169.254`, 1)),
		[]byte(strings.Replace(validBody, `10.0.1.7`, `fe80::1%eth0`, 1)),
		[]byte(strings.Replace(validBody, `2026-11-22T11:00:00Z`, `2126-11-22T11:00:00Z`, 1)),
		[]byte(strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":86400`, 1)),
	}
	const n = 1000
	for i := range n {
		if err := ch.PublishWithContext(context.Background(), Exchange, "", false, false, amqp.Publishing{Body: hostile[i%len(hostile)]}); err != nil {
			t.Fatal(err)
		}
	}
	good := tok(StateUp, uniqueIDs("good", 1)[0], 0)
	good.Timestamp = time.Now()
	body, _ := good.Marshal()
	if err := ch.PublishWithContext(context.Background(), Exchange, "", false, false, amqp.Publishing{Body: body}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the valid token after the garbage was not applied", func() bool { return c.reg.Len() == 1 })
	time.Sleep(300 * time.Millisecond) // a requeue would show up as more deliveries now
	st := c.Stats()
	if st.Malformed != n || st.Received != n+1 {
		t.Fatalf("stats %+v, want %d malformed of %d received (rejected without requeue)", st, n, n+1)
	}
	if !st.Subscribed || st.Subscribes != 1 {
		t.Fatalf("consumer lost its subscription over the garbage: %+v", st)
	}
	for _, kind := range []string{KindNotJSON, KindState, KindAddress} {
		if st.MalformedByKind[kind] == 0 {
			t.Errorf("no malformed token of kind %s counted: %v", kind, st.MalformedByKind)
		}
	}
}

// BenchmarkFirstTokenVisible measures from a publisher's start (dial included) to its
// instance being visible in a consumer's registry.
func BenchmarkFirstTokenVisible(b *testing.B) {
	url := brokerURL(b)
	var g group
	added := make(chan string, 16)
	reg := NewRegistry(RegistryConfig{OnEvent: func(e Event) {
		if e.Type == EventAdded {
			added <- e.Instance.InstanceID
		}
	}})
	c, _ := NewConsumer(ConsumerConfig{URL: url, Sink: reg})
	g.start(b, c.Run)
	eventually(b, 10*time.Second, "consumer never subscribed", c.Subscribed)
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("first-%d-%d", time.Now().UnixNano(), i)
		_, stop := startPublisher(b, &g, url, id, time.Minute, 2*time.Minute)
		for got := range added {
			if got == id {
				break
			}
		}
		b.StopTimer()
		stop()
		b.StartTimer()
	}
}

// BenchmarkDownToRemoval measures from a publisher's shutdown (its context cancelled, as on
// SIGTERM) to its instance's removal from a consumer's registry.
func BenchmarkDownToRemoval(b *testing.B) {
	url := brokerURL(b)
	var g group
	var removedID atomic.Value
	removed := make(chan string, 16)
	reg := NewRegistry(RegistryConfig{OnEvent: func(e Event) {
		if e.Type == EventRemoved {
			removedID.Store(e.Instance.InstanceID)
			removed <- e.Instance.InstanceID
		}
	}})
	c, _ := NewConsumer(ConsumerConfig{URL: url, Sink: reg})
	g.start(b, c.Run)
	eventually(b, 10*time.Second, "consumer never subscribed", c.Subscribed)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("down-%d-%d", time.Now().UnixNano(), i)
		p, stop := startPublisher(b, &g, url, id, time.Minute, 2*time.Minute)
		eventually(b, 10*time.Second, "publisher not connected", p.Connected)
		eventually(b, 10*time.Second, "instance not visible", func() bool { return hasAll(reg, id) })
		b.StartTimer()
		stop()
		for got := range removed {
			if got == id {
				break
			}
		}
	}
}

// BenchmarkConsumerThroughput measures how many tokens per second one consumer parses,
// applies to its registry and acknowledges.
func BenchmarkConsumerThroughput(b *testing.B) {
	url := brokerURL(b)
	var g group
	reg := NewRegistry(RegistryConfig{})
	c, _ := NewConsumer(ConsumerConfig{URL: url, Sink: reg})
	g.start(b, c.Run)
	eventually(b, 10*time.Second, "consumer never subscribed", c.Subscribed)

	conn, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	bodies := make([][]byte, 100)
	for i := range bodies {
		t := tok(StateUp, fmt.Sprintf("tp-%d", i), 0)
		t.Timestamp = time.Now()
		bodies[i], _ = t.Marshal()
	}
	start := c.Stats().Received
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		if err := ch.PublishWithContext(context.Background(), Exchange, "", false, false, amqp.Publishing{Body: bodies[i%len(bodies)]}); err != nil {
			b.Fatal(err)
		}
	}
	eventually(b, time.Minute, "consumer did not receive every token", func() bool { return c.Stats().Received-start >= uint64(b.N) })
	b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "tokens/s")
}
