package discoverytoken

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goblog/goblog/internal/syncbuf"
)

// fakeAcker records what the consumer did with each delivery.
type fakeAcker struct {
	mu                    sync.Mutex
	acks, rejects, requeu int
}

func (f *fakeAcker) Ack(uint64, bool) error { f.mu.Lock(); f.acks++; f.mu.Unlock(); return nil }
func (f *fakeAcker) Nack(uint64, bool, bool) error {
	panic("the consumer never nacks")
}
func (f *fakeAcker) Reject(_ uint64, requeue bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejects++
	if requeue {
		f.requeu++
	}
	return nil
}

func TestConsumerCountsMalformedPerKindAndLogsEachKindOnce(t *testing.T) {
	clock := newFakeClock()
	reg := NewRegistry(RegistryConfig{Now: clock.Now})
	var logs syncbuf.Buffer
	c, err := NewConsumer(ConsumerConfig{URL: "amqp://u:p@broker:5672/", Sink: reg, Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ack := &fakeAcker{}
	deliver := func(body string) { c.handle(amqp.Delivery{Acknowledger: ack, Body: []byte(body)}, c.cfg.Logger) }
	bad := map[string]string{
		KindNotJSON:   `{}x`,
		KindAddress:   strings.Replace(validBody, `10.0.1.7`, `169.254.169.254`, 1),
		KindFuture:    strings.Replace(validBody, `2026-11-22T11:00:00Z`, `2126-11-22T11:00:00Z`, 1),
		KindTTL:       strings.Replace(validBody, `"ttlSeconds":15`, `"ttlSeconds":86400`, 1),
		KindTooLarge:  `{"x":"` + strings.Repeat("x", MaxTokenSize) + `"}`,
		KindTimestamp: strings.Replace(validBody, `,"timestamp":"2026-11-22T11:00:00Z"`, ``, 1),
	}
	before := c.Stats()
	for range 1000 {
		for _, body := range bad {
			deliver(body)
		}
	}
	deliver(validBody)
	st := c.Stats()
	if got := st.Malformed - before.Malformed; got != uint64(1000*len(bad)) {
		t.Fatalf("malformed grew by %d, want %d", got, 1000*len(bad))
	}
	for kind := range bad {
		if st.MalformedByKind[kind] != 1000 {
			t.Errorf("kind %s counted %d times, want 1000 (%v)", kind, st.MalformedByKind[kind], st.MalformedByKind)
		}
		if n := strings.Count(logs.String(), "kind="+kind+" "); n != 1 {
			t.Errorf("kind %s logged %d times, want once", kind, n)
		}
	}
	if ack.rejects != 1000*len(bad) || ack.requeu != 0 || ack.acks != 1 {
		t.Fatalf("acks %d, rejects %d (requeued %d): want malformed rejected without requeue, the valid one acked", ack.acks, ack.rejects, ack.requeu)
	}
	if reg.Len() != 1 {
		t.Fatalf("the valid token did not reach the registry")
	}
	// Stats hands out a copy of the per-kind counts.
	st.MalformedByKind[KindAddress] = 0
	if c.Stats().MalformedByKind[KindAddress] != 1000 {
		t.Fatal("Stats handed out the consumer's own map")
	}
}

func TestBrokerURLNeverInErrors(t *testing.T) {
	const secret = "s3cr3t-pa55"
	for _, u := range []string{
		"amqp://user:" + secret + "@broker:notaport/",
		"amqp://user:" + secret + "@bro ker/",
		"http://user:" + secret + "@broker/",
		"amqp://user:" + secret + "@[::1/",
	} {
		_, cerr := NewConsumer(ConsumerConfig{URL: u, Sink: NewRegistry(RegistryConfig{})})
		_, perr := NewPublisher(PublisherConfig{URL: u, Service: "s", Address: "10.0.1.7", Port: 1, InstanceID: "i"})
		for _, err := range []error{cerr, perr} {
			if err == nil {
				t.Fatalf("%q accepted", u)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		}
	}
	if got := RedactURL("amqp://user:" + secret + "@broker:5672/vhost"); strings.Contains(got, secret) || !strings.Contains(got, "user:redacted@broker") {
		t.Fatalf("RedactURL = %q", got)
	}
	if got := RedactURL("amqp://user:" + secret + "@broker:bad/"); strings.Contains(got, secret) {
		t.Fatalf("RedactURL of an unparsable URL = %q", got)
	}
}

func TestConsumerConfigValidate(t *testing.T) {
	reg := NewRegistry(RegistryConfig{})
	for _, cfg := range []ConsumerConfig{
		{Sink: reg},
		{URL: "amqp://broker/"},
		{URL: "amqp://broker/", Sink: reg, MaxQueueLength: -1},
		{URL: "amqp://broker/", Sink: reg, Prefetch: 70000},
		{URL: "amqp://broker/", Sink: reg, Heartbeat: -time.Second},
	} {
		if _, err := NewConsumer(cfg); err == nil {
			t.Errorf("NewConsumer(%+v) accepted", cfg)
		}
	}
}

func TestPublisherRefusesWhatConsumersWouldRefuse(t *testing.T) {
	for _, cfg := range []PublisherConfig{
		{Address: "127.0.0.1"}, {Address: "0.0.0.0"}, {Address: "fe80::1%eth0"}, {TTL: 301 * time.Second},
		{Interval: -time.Second}, {TTL: -time.Second},
	} {
		cfg.URL, cfg.Service, cfg.Port, cfg.InstanceID = "amqp://broker/", "s", 8181, "i"
		if cfg.Address == "" {
			cfg.Address = "10.0.1.7"
		}
		if _, err := NewPublisher(cfg); err == nil {
			t.Errorf("NewPublisher(%+v) accepted", cfg)
		}
	}
}
