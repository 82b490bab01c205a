//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type account struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ServedBy string `json:"servedBy"`
	Quote    struct {
		Quote     string `json:"quote"`
		IPAddress string `json:"ipAddress"`
		Language  string `json:"language"`
	} `json:"quote"`
}

type apiError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

func TestAccountThroughTheEdge(t *testing.T) {
	c := NewClient()
	var a account
	if code := Call(t, c, http.MethodGet, EdgeURL+"/accounts/10000", &a); code != http.StatusOK {
		t.Fatalf("GET /accounts/10000: %d", code)
	}
	if a.ID != "10000" || a.Name != "Person_0" || a.ServedBy == "" || a.Quote.Quote == "" || a.Quote.IPAddress == "" {
		t.Fatalf("incomplete account: %+v", a)
	}
	tasks := RunningTasks(t, "accountservice")
	if len(tasks) != 1 || tasks[0].IP != a.ServedBy {
		t.Fatalf("servedBy %s is not the engine's address of the task (%+v)", a.ServedBy, tasks)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/accounts/10100", http.StatusNotFound},
		{"/accounts/abc", http.StatusBadRequest},
		{"/accounts/99999999999999999999999999999999", http.StatusBadRequest},
		{"/no/such/route", http.StatusNotFound},
	} {
		var e apiError
		if code := Call(t, c, http.MethodGet, EdgeURL+tc.path, &e); code != tc.want || e.Error == "" {
			t.Errorf("GET %s: %d %+v, want %d with a JSON error", tc.path, code, e, tc.want)
		}
	}
	var h map[string]string
	if code := Call(t, c, http.MethodGet, EdgeURL+"/health", &h); code != http.StatusOK || h["status"] != "UP" {
		t.Errorf("accountservice health through the edge: %d %v", code, h)
	}
	if code := Call(t, c, http.MethodGet, EdgeURL+"/-/health", &h); code != http.StatusOK {
		t.Errorf("edge health: %d", code)
	}
}

// TestScalingSpreadsRequests is the README walk-through: 3 accountservice and
// 2 quotes-service tasks, 60 requests through the edge.
func TestScalingSpreadsRequests(t *testing.T) {
	took := KeepReplicas(t, "accountservice", 3)
	t.Logf("figure: accountservice 1→3, all healthy and in DNS after %s", took.Round(time.Millisecond))
	took = KeepReplicas(t, "quotes-service", 2)
	t.Logf("figure: quotes-service 1→2, all healthy and in DNS after %s", took.Round(time.Millisecond))

	engineIPs := map[string]bool{}
	for _, task := range RunningTasks(t, "accountservice") {
		engineIPs[task.IP] = true
	}
	quoteIPs := map[string]bool{}
	for _, task := range RunningTasks(t, "quotes-service") {
		quoteIPs[task.IP] = true
	}

	c := NewClient()
	servedBy := map[string]int{}
	quotes := map[string]int{}
	for i := 0; i < 60; i++ {
		var a account
		if code := Call(t, c, http.MethodGet, EdgeURL+"/accounts/10000", &a); code != http.StatusOK {
			t.Fatalf("request %d: %d", i, code)
		}
		servedBy[a.ServedBy]++
		quotes[a.Quote.IPAddress]++
	}
	t.Logf("servedBy: %v", servedBy)
	t.Logf("quote ipAddress: %v", quotes)
	if len(servedBy) != 3 {
		t.Errorf("want 3 distinct servedBy, got %v", servedBy)
	}
	for ip := range servedBy {
		if !engineIPs[ip] {
			t.Errorf("servedBy %s is not one of the engine's task addresses %v", ip, engineIPs)
		}
	}
	if len(quotes) != 2 {
		t.Errorf("want 2 distinct quote ipAddress, got %v", quotes)
	}
	for addr := range quotes {
		// "<hostname>/<ip>:8080"
		_, hostPort, _ := strings.Cut(addr, "/")
		ip, _, _ := net.SplitHostPort(hostPort)
		if !quoteIPs[ip] {
			t.Errorf("quote ipAddress %q names none of the engine's quotes-service tasks %v", addr, quoteIPs)
		}
	}
}

// TestUnhealthyTaskIsReplaced flips one instance unhealthy through the edge
// and checks that swarm replaces exactly that task.
func TestUnhealthyTaskIsReplaced(t *testing.T) {
	KeepReplicas(t, "accountservice", 3)
	before := RunningTasks(t, "accountservice")

	var flipped struct {
		ServedBy string `json:"servedBy"`
		Healthy  bool   `json:"healthy"`
	}
	c := NewClient()
	if code := Call(t, c, http.MethodPut, EdgeURL+"/testability/healthy/false", &flipped); code != http.StatusOK || flipped.ServedBy == "" {
		t.Fatalf("PUT /testability/healthy/false: %d %+v", code, flipped)
	}
	var victim Task
	for _, task := range before {
		if task.IP == flipped.ServedBy {
			victim = task
		}
	}
	if victim.ID == "" {
		t.Fatalf("the instance that answered (%s) is not among the running tasks %+v", flipped.ServedBy, before)
	}
	start := time.Now()
	WaitFor(t, 2*time.Minute, "task "+victim.ID[:12]+" replaced", func() (bool, string) {
		now := RunningTasks(t, "accountservice")
		ids := map[string]bool{}
		for _, task := range now {
			ids[task.ID] = true
		}
		ok, _ := Converged(Service("accountservice"))
		return !ids[victim.ID] && len(now) == 3 && ok, fmt.Sprintf("%d running, victim still running: %v", len(now), ids[victim.ID])
	})
	t.Logf("figure: unhealthy task replaced and 3 healthy again %s after the flip", time.Since(start).Round(time.Millisecond))
	after := RunningTasks(t, "accountservice")
	kept := 0
	for _, b := range before {
		for _, a := range after {
			if a.ID == b.ID {
				kept++
			}
		}
	}
	if kept != 2 {
		t.Fatalf("swarm must replace exactly the flipped task: %d of the other 2 tasks survived", kept)
	}
}

// TestSIGTERMLosesNoAcceptedRequest stops one accountservice task with SIGTERM
// under load: in-flight requests finish, new ones go to the other tasks.
func TestSIGTERMLosesNoAcceptedRequest(t *testing.T) {
	KeepReplicas(t, "accountservice", 3)
	tasks := RunningTasks(t, "accountservice")
	victim := tasks[0]

	var ok, failed atomic.Int64
	var mu sync.Mutex
	failures := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := NewClient()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := CallErr(c, http.MethodGet, EdgeURL+"/accounts/10001")
				if err == nil && code == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				failures[fmt.Sprintf("%d %v", code, err)]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	Docker(t, "kill", "--signal", "TERM", victim.ContainerID)
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	keys := make([]string, 0, len(failures))
	for k := range failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("figure: %d requests OK, %d failed while task %s (%s) stopped on SIGTERM %v", ok.Load(), failed.Load(), victim.ID[:12], victim.IP, keys)
	if failed.Load() != 0 {
		t.Fatalf("%d requests lost during SIGTERM: %v", failed.Load(), failures)
	}
	if ok.Load() < 50 {
		t.Fatalf("only %d requests made; the load did not run", ok.Load())
	}
	WaitFor(t, 2*time.Minute, "accountservice back to 3 healthy", func() (bool, string) { return Converged(Service("accountservice")) })
}
