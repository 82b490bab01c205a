// Command probe is what the e2e tests run inside a container on a stack network, to see the
// stack as a neighbour does:
//
//	probe -check amqp-login                   log in to the broker at -amqp-url (give it as
//	                                          AMQP_URL in the environment, not as an argument);
//	                                          prints "ok" or "refused: …"
//	probe -check http -method M -url URL      one request; prints the status code
//	      [-body]                             and then the body (at most 1 MiB)
//
// Exit status 0 when the probe ran (whatever it found), 1 when it could not, 2 on bad settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goblog/goblog/internal/conf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var check, amqpURL, method, url string
	var timeout time.Duration
	var body bool
	s := conf.New("probe", "Looks at the stack from a container on one of its networks (e2e tests).")
	s.Stdout, s.Stderr = stdout, stderr
	s.Enum(&check, "check", "amqp-login", []string{"amqp-login", "http"}, "what to probe")
	s.String(&amqpURL, "amqp-url", "", "the broker, for -check amqp-login")
	s.String(&method, "method", http.MethodGet, "request method, for -check http")
	s.String(&url, "url", "", "request URL, for -check http")
	s.Duration(&timeout, "timeout", 10*time.Second, "deadline of the probe")
	s.Bool(&body, "body", false, "print the answer's body after the status code (at most 1 MiB), for -check http")
	if done, err := s.Parse(args); done || err != nil {
		return s.ExitCode(err)
	}
	switch check {
	case "amqp-login":
		if amqpURL == "" {
			return s.ExitCode(errors.New("-amqp-url (AMQP_URL) is empty"))
		}
		conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(timeout)})
		if err != nil {
			fmt.Fprintln(stdout, "refused:", err)
			return 0
		}
		_ = conn.Close()
		fmt.Fprintln(stdout, "ok")
		return 0
	default:
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil || url == "" {
			return s.ExitCode(fmt.Errorf("-method %q -url %q: %v", method, url, err))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(stderr, "probe:", err)
			return 1
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			fmt.Fprintln(stderr, "probe: body:", err)
			return 1
		}
		fmt.Fprintln(stdout, resp.StatusCode)
		if body {
			_, _ = stdout.Write(b)
		}
		return 0
	}
}
