// Command stackwait waits until a deployed swarm stack has converged (every service runs all
// its replicas, healthy, on the image its spec names, no update in progress), printing progress
// when it changes. ./copyall.sh runs it after `docker stack deploy`. It reads the engine at
// DOCKER_HOST (and the usual DOCKER_* variables) as the docker CLI does.
//
// Exit status: 0 converged; 1 not within -timeout (the latest tasks of each pending service
// are printed, with their errors); 2 bad flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/goblog/goblog/deploy/internal/converge"
	"github.com/goblog/goblog/internal/conf"
)

// Config is everything stackwait reads from flags and environment.
type Config struct {
	Stack       string
	Timeout     time.Duration
	Interval    time.Duration
	CallTimeout time.Duration
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	switch {
	case c.Stack == "":
		return errors.New("-stack is empty")
	case c.Timeout <= 0 || c.Interval <= 0 || c.CallTimeout <= 0:
		return errors.New("-timeout, -interval and -call-timeout must be positive")
	}
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	var cfg Config
	s := conf.New("stackwait", "Waits until a deployed swarm stack has converged.")
	s.Stderr = stderr
	s.String(&cfg.Stack, "stack", "goblog", "the stack to wait for")
	s.Duration(&cfg.Timeout, "timeout", 180*time.Second, "how long to wait")
	s.Duration(&cfg.Interval, "interval", 2*time.Second, "time between two looks")
	s.Duration(&cfg.CallTimeout, "call-timeout", 20*time.Second, "deadline of one engine call")
	if done, err := s.Parse(args); done || err != nil {
		return s.ExitCode(err)
	}
	if err := cfg.Validate(); err != nil {
		return s.ExitCode(err)
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintln(stderr, "stackwait: docker client:", err)
		return 1
	}
	defer docker.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return wait(ctx, docker, cfg, stderr)
}

func wait(ctx context.Context, eng converge.Engine, cfg Config, stderr io.Writer) int {
	say := func(s string) { fmt.Fprintf(stderr, "%s stackwait: %s\n", time.Now().Format("15:04:05"), s) }
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	st, err := converge.Wait(wctx, eng, cfg.Stack, cfg.Interval, cfg.CallTimeout, say)
	if err == nil {
		return 0
	}
	pending := converge.Pending(st)
	for _, svc := range pending {
		say("service " + cfg.Stack + "_" + svc + " did not converge; its latest tasks:")
		dctx, dcancel := context.WithTimeout(context.Background(), cfg.CallTimeout)
		lines, lerr := converge.RecentTasks(dctx, eng, cfg.Stack+"_"+svc, 5)
		dcancel()
		if lerr != nil {
			say("  " + lerr.Error())
		}
		for _, l := range lines {
			fmt.Fprintln(stderr, "  "+l)
		}
	}
	if len(st) == 0 {
		say(fmt.Sprintf("FAILED: stack %s has no service after %s", cfg.Stack, cfg.Timeout))
	} else {
		say(fmt.Sprintf("FAILED: stack %s did not converge within %s (pending: %v)", cfg.Stack, cfg.Timeout, pending))
	}
	return 1
}
