package discoverytoken

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The one way publisher and consumer reach the broker: dial with a deadline, open a channel,
// make sure the exchange exists while needing as little permission as possible.

// checkURL parses an AMQP URL without ever putting it (and its password) in an error.
func checkURL(u string) error {
	if u == "" {
		return errors.New("AMQP URL is empty")
	}
	if _, err := amqp.ParseURI(u); err != nil {
		// net/url's errors quote the whole URL, password included: keep only their reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fmt.Errorf("AMQP URL is malformed: %v (a reserved character in the user name or password must be percent-encoded)", uerr.Err)
		}
		return fmt.Errorf("AMQP URL is malformed: %w", err)
	}
	return nil
}

// RedactURL returns u with its password replaced, for logs and errors. A URL it cannot
// parse comes back as a placeholder: it may hold a password in a place no parser found.
func RedactURL(u string) string {
	uri, err := amqp.ParseURI(u)
	if err != nil {
		return "(unparsable AMQP URL)"
	}
	if uri.Password != "" {
		uri.Password = "redacted"
	}
	return uri.String()
}

// dial opens a connection and a channel. ctx and timeout bound the TCP connect and the AMQP
// handshake; heartbeat is the AMQP heartbeat (a dead peer is noticed after about three).
func dial(ctx context.Context, url string, timeout, heartbeat time.Duration, name string) (*amqp.Connection, *amqp.Channel, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	conn, err := amqp.DialConfig(url, amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bounds the handshake; the library clears it once the connection is open.
			if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		},
		Heartbeat:  heartbeat,
		Properties: amqp.Table{"connection_name": name},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("open channel: %w", err)
	}
	return conn, ch, nil
}

// ensureExchange makes sure the durable fanout exchange exists and returns a usable channel
// (ch, or a new one if a failed declare closed ch). It declares passively first, which needs
// no permission: a publisher that may only write to the exchange and a consumer that may only
// read from it work as long as someone (the deployment, or a user with configure permission)
// declared it. Only when it is missing does it try to declare it, which needs configure
// permission on it.
func ensureExchange(conn *amqp.Connection, ch *amqp.Channel) (*amqp.Channel, error) {
	err := ch.ExchangeDeclarePassive(Exchange, amqp.ExchangeFanout, true, false, false, false, nil)
	if err == nil {
		return ch, nil
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.NotFound {
		return nil, fmt.Errorf("check exchange %s: %w", Exchange, err)
	}
	// The failed passive declare closed ch.
	ch, err = conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(Exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		if errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused {
			return nil, fmt.Errorf("exchange %s does not exist and this user may not declare it: %w", Exchange, err)
		}
		return nil, fmt.Errorf("declare exchange %s: %w", Exchange, err)
	}
	return ch, nil
}
