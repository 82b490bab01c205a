// Command probe is what the e2e tests run inside a container on a stack network, to see the
// stack as a neighbour does:
//
//	probe amqp-login            log in to the broker at $AMQP_URL (from the environment, never
//	                            an argument); prints "ok" or "refused: …"
//	probe http METHOD URL       one request; prints the status code
//
// Exit status 0 when the probe ran (whatever it found), 1 when it could not, 2 on bad usage.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && args[0] == "amqp-login":
		url := os.Getenv("AMQP_URL")
		if url == "" {
			fmt.Fprintln(stderr, "probe: AMQP_URL is not set")
			return 2
		}
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			fmt.Fprintln(stdout, "refused:", err)
			return 0
		}
		_ = conn.Close()
		fmt.Fprintln(stdout, "ok")
		return 0
	case len(args) == 3 && args[0] == "http":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, args[1], args[2], nil)
		if err != nil {
			fmt.Fprintln(stderr, "probe:", err)
			return 2
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(stderr, "probe:", err)
			return 1
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		fmt.Fprintln(stdout, resp.StatusCode)
		return 0
	}
	fmt.Fprintln(stderr, "usage: probe amqp-login | probe http METHOD URL")
	return 2
}
