// Package discoverytoken is goblog's token library: services announce themselves with
// discovery tokens on the durable fanout exchange "discovery", and consumers keep a registry
// of the live instances. It is a library only; turbine (a component of its own) imports it.
//
// A [Token] is the JSON body of one message (see "Discovery tokens" in CONTRACTS.md). It is a
// claim by whoever could publish, and [Parse] treats it so: the address must be a unicast
// address a stream may be opened to (no loopback, unspecified, link-local, multicast or
// zone), the timestamp no more than [MaxClockSkew] ahead of the receiver's clock, ttlSeconds
// within 1 … 300; anything else is a [MalformedError] of a kind, counted per kind.
//
// A [Publisher] sends UP when its service is ready and then every interval, and DOWN on
// graceful shutdown; a [Consumer] reads every token through its own exclusive, bounded
// (x-max-length, drop-head) queue bound to the exchange, so any number of consumers each see
// every token, and hands them to a [Registry]. Both reach the broker the same way (broker.go):
// with a deadline, declaring the exchange only if it is missing, so least-privilege users
// (a publisher that may only write to the exchange, a consumer that may only configure
// server-named queues) work; neither ever logs the broker URL unredacted ([RedactURL]).
//
// The [Registry] adds an instance once, refreshes it on heartbeats and removes it on DOWN or
// after its TTL of silence, reporting each change as an [Event] (returned by Apply and
// Expire, and handed to OnEvent after its lock is released). It is bounded (instances
// overall and per service, remembered DOWNs), refuses a token that would move a held
// instance to another address, and practises self-preservation ([SelfPreservation]): it
// evicts nobody while the consumer says the subscription is down ([Registry.SetSubscribed])
// nor for one TTL after, and keeps instances that fall silent en masse (Protected) instead of
// emptying itself. [NewCollector] exports its counters and the consumer's to Prometheus.
//
// Both sides reconnect with internal/backoff when the broker goes away.
package discoverytoken
