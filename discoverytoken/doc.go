// Package discoverytoken is the AMQP discovery path of goblog: services announce themselves
// with discovery tokens on the durable fanout exchange "discovery", and consumers keep a
// registry of the live instances.
//
// A [Token] is the JSON body of one message (see the wire contract in CONTRACTS.md).
// A [Publisher] sends UP when its service is ready and then every interval, and DOWN on
// graceful shutdown; a [Consumer] reads every token through its own exclusive queue bound
// to the exchange (so any number of consumers each see every token) and hands them to a
// [Registry], which adds an instance once, refreshes it on heartbeats, removes it on DOWN or
// after its TTL of silence, and reports each change as an [Event].
//
// Both sides reconnect with backoff when the broker goes away.
package discoverytoken
