//go:build integration

package discoverytoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// gatedSink holds every Apply until the gate opens, so tokens pile up in the broker's queue.
type gatedSink struct {
	*Registry
	gate chan struct{}
	mu   sync.Mutex
	ids  []string
}

func (s *gatedSink) Apply(t Token) []Event {
	select {
	case <-s.gate:
	case <-time.After(30 * time.Second):
	}
	s.mu.Lock()
	s.ids = append(s.ids, t.InstanceID)
	s.mu.Unlock()
	return s.Registry.Apply(t)
}

func (s *gatedSink) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// confirmedChannel is a channel in confirm mode for publishing raw bodies.
func confirmedChannel(t *testing.T, u string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return ch
}

func publishConfirmed(t *testing.T, ch *amqp.Channel, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, Exchange, "", false, false, amqp.Publishing{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("publish not confirmed: %v %v", ok, err)
	}
}

// TestQueueMaxLengthDropsHead: while the consumer is stuck on one token, the broker keeps only
// the newest MaxQueueLength tokens of its queue; the oldest are dropped, not the newest.
func TestQueueMaxLengthDropsHead(t *testing.T) {
	u := brokerURL(t)
	var g group
	sink := &gatedSink{Registry: NewRegistry(RegistryConfig{}), gate: make(chan struct{})}
	c, err := NewConsumer(ConsumerConfig{URL: u, Sink: sink, Prefetch: 1, MaxQueueLength: 10, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g.start(t, c.Run)
	eventually(t, 10*time.Second, "consumer never subscribed", c.Subscribed)

	ch := confirmedChannel(t, u)
	prefix := uniqueIDs("ml", 1)[0]
	for i := range 100 {
		tk := tok(StateUp, fmt.Sprintf("%s-%03d", prefix, i), 0)
		tk.Timestamp = time.Now()
		body, _ := tk.Marshal()
		publishConfirmed(t, ch, body)
	}
	close(sink.gate)
	// The first token was in flight (prefetch 1) when the rest arrived; of those 99, the
	// queue kept the newest 10.
	eventually(t, 10*time.Second, "the queued tokens did not arrive", func() bool { return len(sink.seen()) >= 11 })
	time.Sleep(300 * time.Millisecond) // anything beyond the bound would show up now
	got := sink.seen()
	want := []string{fmt.Sprintf("%s-%03d", prefix, 0)}
	for i := 90; i < 100; i++ {
		want = append(want, fmt.Sprintf("%s-%03d", prefix, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("consumer got %d tokens %v…, want the in-flight one and the newest 10", len(got), got[:min(len(got), 12)])
	}
	if st := c.Stats(); st.Received != 11 {
		t.Fatalf("received %d, want 11", st.Received)
	}
}

// TestBrokerOutageEvictsNobody: with the broker away for longer than the instances' TTL, the
// registry (told by the consumer that it is unsubscribed) evicts nobody, and once it is back
// every instance heartbeats again without having been removed.
func TestBrokerOutageEvictsNobody(t *testing.T) {
	u := brokerURL(t)
	var g group
	var mu sync.Mutex
	var removed []string
	reg := NewRegistry(RegistryConfig{OnEvent: func(e Event) {
		if e.Type == EventRemoved {
			mu.Lock()
			removed = append(removed, e.Instance.InstanceID+":"+e.Reason)
			mu.Unlock()
		}
	}})
	c, err := NewConsumer(ConsumerConfig{URL: u, Sink: reg, MaxBackoff: 500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g.start(t, c.Run)
	g.start(t, func(ctx context.Context) error { return reg.RunExpiry(ctx, 50*time.Millisecond) })
	eventually(t, 10*time.Second, "consumer never subscribed", c.Subscribed)
	ids := uniqueIDs("outage", 2) // fewer than the mass-silence minimum: only the subscription rule can save them
	for _, id := range ids {
		startPublisher(t, &g, u, id, 200*time.Millisecond, 2*time.Second)
	}
	eventually(t, 10*time.Second, "registry not whole before the outage", func() bool { return hasAll(reg, ids...) })

	rabbitmqctl(t, "stop_app")
	t.Cleanup(func() { rabbitmqctl(t, "start_app") }) // also when the test fails with the broker stopped
	eventually(t, 10*time.Second, "the registry was not told the subscription is down", func() bool { return !reg.Stats().Subscribed })
	time.Sleep(4 * time.Second) // twice the TTL
	st := reg.Stats()
	rabbitmqctl(t, "start_app")
	if st.Live != 2 || st.Protected != 2 {
		t.Fatalf("during the outage: %+v, want both kept and protected", st)
	}
	eventually(t, 60*time.Second, "heartbeats did not return", func() bool {
		s := reg.Stats()
		return s.Subscribed && s.Protected == 0 && s.Live == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if len(removed) != 0 {
		t.Fatalf("removed %v over a broker outage", removed)
	}
}

// TestRestrictedUsers: the stack's least-privilege broker users. The publisher may only write
// to the exchange; the consumer may configure only server-named queues (amq.gen-…), write to
// them (to bind) and read from them and the exchange. Neither may declare the exchange, so
// both rely on the passive declare.
func TestRestrictedUsers(t *testing.T) {
	u := brokerURL(t)
	confirmedChannel(t, u) // the exchange exists (as the deployment declares it)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	tag := hex.EncodeToString(suffix)
	pubUser, conUser, password := "it-pub-"+tag, "it-con-"+tag, "pw-"+tag
	for user, perms := range map[string][3]string{
		pubUser: {"^$", "^discovery$", "^$"},
		conUser: {`^amq\.gen-.*`, `^amq\.gen-.*`, `^(discovery|amq\.gen-.*)$`},
	} {
		rabbitmqctl(t, "add_user", user, password)
		t.Cleanup(func() { rabbitmqctl(t, "delete_user", user) })
		rabbitmqctl(t, "set_permissions", "-p", "/", user, perms[0], perms[1], perms[2])
	}
	as := func(user string) string {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		p.User = url.UserPassword(user, password)
		return p.String()
	}

	var g group
	c := startConsumer(t, &g, as(conUser))
	id := uniqueIDs("restricted", 1)[0]
	p, _ := startPublisher(t, &g, as(pubUser), id, 200*time.Millisecond, 10*time.Second)
	eventually(t, 10*time.Second, "publisher with write-only permission did not connect", p.Connected)
	eventually(t, 10*time.Second, "token from the restricted publisher did not reach the restricted consumer", func() bool { return hasAll(c.reg, id) })

	// And the restriction is real: the publisher's user cannot declare the exchange.
	conn, err := amqp.Dial(as(pubUser))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err == nil {
		t.Fatal("the write-only user could declare the exchange: the test proves nothing")
	}
}

// TestOversizedMessages: messages over MaxTokenSize are received, rejected as too large and
// counted, and the subscription survives them. (The queue's byte bound does not stop one big
// message reaching an idle consumer: the bound on a single message is the broker's
// max_message_size.)
func TestOversizedMessages(t *testing.T) {
	u := brokerURL(t)
	var g group
	reg := NewRegistry(RegistryConfig{})
	c, err := NewConsumer(ConsumerConfig{URL: u, Sink: reg, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	g.start(t, c.Run)
	eventually(t, 10*time.Second, "consumer never subscribed", c.Subscribed)
	ch := confirmedChannel(t, u)
	before := c.Stats()
	publishConfirmed(t, ch, make([]byte, MaxTokenSize+1))
	publishConfirmed(t, ch, make([]byte, 2<<20))
	good := tok(StateUp, uniqueIDs("after-big", 1)[0], 0)
	good.Timestamp = time.Now()
	body, _ := good.Marshal()
	publishConfirmed(t, ch, body)
	eventually(t, 10*time.Second, "the valid token after the big ones was not applied", func() bool { return reg.Len() == 1 })
	st := c.Stats()
	if got := st.MalformedByKind[KindTooLarge] - before.MalformedByKind[KindTooLarge]; got != 2 {
		t.Fatalf("too-large count grew by %d, want 2", got)
	}
	if !st.Subscribed || st.Subscribes != before.Subscribes {
		t.Fatalf("the big messages cost the subscription: %+v", st)
	}
}
