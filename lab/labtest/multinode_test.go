//go:build lab

package labtest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// TestMultiNode needs a lab of 3 nodes (LAB_NODES=3). It spreads accountservice
// over the nodes with max_replicas_per_node, checks the swarmwatcher shows each
// task's node and probes the tasks on other nodes, then stops one worker and
// checks that swarm reschedules its tasks, that the watcher drops the lost ones
// and shows the new ones passing, and that accountservice keeps answering
// through the routing mesh of a surviving node: every probe request succeeds.
func TestMultiNode(t *testing.T) {
	if nodes < 3 {
		t.Skipf("needs a lab of 3 nodes (LAB_NODES=3); this one has %d", nodes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const replicas, perNode = 4, 2

	hostOf, err := nodeHostnames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := updateService(ctx, accountService, func(s *swarm.ServiceSpec) {
			if s.TaskTemplate.Placement != nil {
				s.TaskTemplate.Placement.MaxReplicas = 0
			}
		}); err != nil {
			t.Errorf("restore %s placement: %v", accountService, err)
		}
		restoreScale(t, accountService)
	})

	var tasks map[string]swarm.Task
	if !t.Run("replicas spread over the nodes", func(t *testing.T) {
		err := updateService(ctx, accountService, func(s *swarm.ServiceSpec) {
			n := uint64(replicas)
			s.Mode.Replicated.Replicas = &n
			if s.TaskTemplate.Placement == nil {
				s.TaskTemplate.Placement = &swarm.Placement{}
			}
			s.TaskTemplate.Placement.MaxReplicas = perNode
		})
		if err != nil {
			t.Fatal(err)
		}
		if tasks, err = waitRunning(t, ctx, accountService, replicas, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		per := perNodeCount(tasks, hostOf)
		t.Logf("accountservice tasks per node: %v", per)
		for i := 1; i <= nodes; i++ {
			if n := per["node"+strconv.Itoa(i)]; n < 1 || n > perNode {
				t.Errorf("node%d runs %d accountservice tasks, want 1 … %d (max_replicas_per_node %d)", i, n, perNode, perNode)
			}
		}
	}) {
		t.FailNow()
	}

	quotes, err := taskIPs(ctx, quotesService)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every node's mesh reaches every replica", func(t *testing.T) {
		for i := 1; i <= nodes; i++ {
			checkRotation(t, ctx, i, tasks, quotes)
		}
	})
	t.Run("the VIP gives each of 4 replicas 25 % ± 2.5 of the requests", func(t *testing.T) {
		checkShares(t, ctx, 1, tasks, 400)
	})
	t.Run("swarmwatcher shows each task's node and probes across nodes", func(t *testing.T) {
		checkWatcher(t, ctx, 1, accountService, quotesService, edgeService)
		checkWatcherNodes(t, ctx, hostOf)
	})

	// Stop a worker that runs accountservice but neither the edge nor the
	// watcher, so what is measured is the loss of accountservice replicas.
	victim, err := pickVictim(ctx, hostOf)
	if err != nil {
		t.Fatal(err)
	}
	survivor := 1
	t.Logf("stopping node%d; probing accountservice through node%d's mesh (127.0.0.1:%d)", victim, survivor, meshPort(survivor, edgePort))
	probe := startProbe(ctx, survivor)
	t.Cleanup(func() {
		if err := script(nil, "lab/node", "start", strconv.Itoa(victim)); err != nil {
			t.Errorf("restart node%d: %v", victim, err)
		}
	})
	stopAt := time.Now()
	if err := script(nil, "lab/node", "stop", strconv.Itoa(victim)); err != nil {
		t.Fatal(err)
	}
	victimHost := "node" + strconv.Itoa(victim)

	t.Run("swarm reschedules the lost tasks", func(t *testing.T) {
		err := eventually(t, victimHost+" is down in the swarm", 5*time.Minute, 2*time.Second, func() error {
			ns, err := engine.NodeList(ctx, swarm.NodeListOptions{})
			if err != nil {
				return err
			}
			for _, n := range ns {
				if n.Description.Hostname == victimHost && n.Status.State != swarm.NodeStateDown {
					return fmt.Errorf("%s is %s", victimHost, n.Status.State)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = eventually(t, "accountservice runs all replicas on the surviving nodes", 10*time.Minute, 2*time.Second, func() error {
			now, err := taskIPs(ctx, accountService)
			if err != nil {
				return err
			}
			per := perNodeCount(now, hostOf)
			if per[victimHost] > 0 || len(now) != replicas {
				return fmt.Errorf("running per node %v, want %d on the survivors", per, replicas)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("rescheduled %.0f s after node%d stopped", time.Since(stopAt).Seconds(), victim)
	})
	t.Run("swarmwatcher drops the lost tasks and shows the new ones passing", func(t *testing.T) {
		checkWatcher(t, ctx, survivor, accountService, quotesService, edgeService)
	})
	t.Run("accountservice kept answering through a surviving node", func(t *testing.T) {
		// The newest requests, after the reschedule, must all succeed.
		time.Sleep(10 * time.Second)
		r := probe.stop()
		t.Logf("probe via node%d: %d requests, %d failed, longest failure run %.1f s, last error %v",
			survivor, r.total, r.failed, r.longestOutage.Seconds(), r.lastErr)
		t.Logf("probe latency: median %.0f ms, p99 %.0f ms, max %.0f ms; %d requests over 1 s",
			ms(r.quantile(0.5)), ms(r.quantile(0.99)), ms(r.quantile(1)), r.slow)
		if r.total == 0 {
			t.Fatal("the probe sent no request")
		}
		// Every request must succeed: a connection to a task on the stopped node
		// fails (refused, reset or a dial timeout) before any answer, and the
		// edge retries it on another lane, which IPVS sends to a live task.
		if r.failed != 0 {
			t.Errorf("%d of %d requests failed while node%d stopped (longest failure run %.1f s, last error %v)",
				r.failed, r.total, victim, r.longestOutage.Seconds(), r.lastErr)
		}
		if r.tailOK < 20 {
			t.Errorf("only the last %d requests succeeded, want at least 20 in a row at the end (last error %v)", r.tailOK, r.lastErr)
		}
	})
}

// nodeHostnames maps node IDs to hostnames (node1 …).
func nodeHostnames(ctx context.Context) (map[string]string, error) {
	ns, err := engine.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	m := make(map[string]string, len(ns))
	for _, n := range ns {
		m[n.ID] = n.Description.Hostname
	}
	return m, nil
}

func perNodeCount(tasks map[string]swarm.Task, hostOf map[string]string) map[string]int {
	per := map[string]int{}
	for _, tk := range tasks {
		per[hostOf[tk.NodeID]]++
	}
	return per
}

// pickVictim returns a worker that runs accountservice but not the edge or the
// swarmwatcher (or, failing that, not the edge).
func pickVictim(ctx context.Context, hostOf map[string]string) (int, error) {
	busy := map[string]int{}
	for _, s := range []string{edgeService, swarmwatcherService} {
		ts, err := runningTasks(ctx, s)
		if err != nil {
			continue // the watcher may not be in the stack
		}
		for _, tk := range ts {
			busy[hostOf[tk.NodeID]] += map[string]int{edgeService: 2, swarmwatcherService: 1}[s]
		}
	}
	acc, err := taskIPs(ctx, accountService)
	if err != nil {
		return 0, err
	}
	per := perNodeCount(acc, hostOf)
	best, bestBusy := 0, 99
	for i := 2; i <= nodes; i++ {
		h := "node" + strconv.Itoa(i)
		if per[h] > 0 && busy[h] < bestBusy {
			best, bestBusy = i, busy[h]
		}
	}
	if best == 0 || bestBusy >= 2 {
		return 0, fmt.Errorf("no worker runs accountservice without the edge (tasks per node %v)", per)
	}
	return best, nil
}

// checkWatcherNodes checks that the watcher names each accountservice task's
// node as the engine does (by hostname or node ID).
func checkWatcherNodes(t *testing.T, ctx context.Context, hostOf map[string]string) {
	err := eventually(t, "swarmwatcher names each task's node", 2*time.Minute, 3*time.Second, func() error {
		var ws []watcherService
		if err := getJSON(ctx, meshURL(1, watcherPort, "/api/services"), &ws); err != nil {
			return err
		}
		eng, err := runningTasks(ctx, accountService)
		if err != nil {
			return err
		}
		node := map[string]string{}
		for _, tk := range eng {
			node[tk.ID] = tk.NodeID
		}
		for _, w := range ws {
			if w.Name != accountService && stack+"_"+w.Name != accountService {
				continue
			}
			for _, tk := range w.Tasks {
				id, ok := node[tk.ID]
				if !ok {
					continue
				}
				if tk.Node != id && tk.Node != hostOf[id] {
					return fmt.Errorf("task %s: watcher says node %q, engine %s (%s)", tk.ID, tk.Node, hostOf[id], id)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type probeResult struct {
	total, failed, tailOK int
	slow                  int // answered after more than a second
	longestOutage         time.Duration
	latencies             []time.Duration // of every request, answered or not
	lastErr               error
}

// quantile is the q-quantile (0 … 1) of the latencies, 0 if none.
func (r probeResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	return l[int(q*float64(len(l)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// checkShares sends n requests through node i's mesh port (one connection
// each) and checks that every accountservice task served 25 % ± 2.5 of them
// (with 4 tasks; 1/len ± 10 % of that in general).
func checkShares(t *testing.T, ctx context.Context, i int, tasks map[string]swarm.Task, n int) {
	served, _, err := walk(ctx, i, n)
	if err != nil {
		t.Fatal(err)
	}
	want := 1 / float64(len(tasks))
	var shares []string
	for _, ip := range keys(tasks) {
		share := float64(served[ip]) / float64(n)
		shares = append(shares, fmt.Sprintf("%s %.1f %%", ip, 100*share))
		if math.Abs(share-want) > want/10 {
			t.Errorf("task %s served %d of %d (%.1f %%), want %.1f %% ± %.1f", ip, served[ip], n, 100*share, 100*want, 10*want)
		}
	}
	t.Logf("shares of %d requests via 127.0.0.1:%d: %s", n, meshPort(i, edgePort), strings.Join(shares, ", "))
	if !sameKeys(served, tasks) {
		t.Errorf("servedBy %v, want exactly the tasks %v", keys(served), keys(tasks))
	}
}

type probe struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	res    probeResult
}

// startProbe GETs an account through node i's mesh port four times a second
// until stopped, one new connection each time.
func startProbe(ctx context.Context, i int) *probe {
	ctx, cancel := context.WithCancel(ctx)
	p := &probe{cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var failingSince time.Time
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			var a account
			t0 := time.Now()
			err := getJSON(rctx, meshURL(i, edgePort, "/accounts/10001"), &a)
			took := time.Since(t0)
			rcancel()
			if ctx.Err() != nil {
				return
			}
			p.res.total++
			p.res.latencies = append(p.res.latencies, took)
			if took > time.Second {
				p.res.slow++
			}
			if err != nil {
				p.res.failed++
				p.res.tailOK = 0
				p.res.lastErr = err
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
				continue
			}
			p.res.tailOK++
			if !failingSince.IsZero() {
				if d := time.Since(failingSince); d > p.res.longestOutage {
					p.res.longestOutage = d
				}
				failingSince = time.Time{}
			}
		}
	}()
	return p
}

func (p *probe) stop() probeResult {
	p.cancel()
	p.wg.Wait()
	return p.res
}
