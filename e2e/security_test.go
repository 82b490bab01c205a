//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// brokerCreds reads the broker.env ./copyall.sh wrote for the deploying user.
func brokerCreds(t *testing.T) map[string]string {
	t.Helper()
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	p := filepath.Join(dir, "goblog", "broker.env")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("broker.env: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %o, want 600", p, fi.Mode().Perm())
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	for _, k := range []string{"GOBLOG_AMQP_PUBLISHER_USER", "GOBLOG_AMQP_PUBLISHER_PASSWORD", "GOBLOG_AMQP_ADMIN_USER", "GOBLOG_AMQP_ADMIN_PASSWORD"} {
		if m[k] == "" {
			t.Fatalf("%s has no %s", p, k)
		}
	}
	return m
}

// brokerHost is where TestMain's deploy (GOBLOG_BROKER_PUBLISH=true) publishes the broker.
var brokerHost = envOr("GOBLOG_BROKER_HOST", "127.0.0.1")

func amqpURL(user, pass string) string {
	return (&url.URL{Scheme: "amqp", User: url.UserPassword(user, pass), Host: brokerHost + ":5672", Path: "/"}).String()
}

func dialAMQP(u string) (*amqp.Connection, error) {
	return amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
}

// probeImage builds e2e/probe into a FROM scratch image once per run.
var (
	probeOnce  sync.Once
	probeErr   error
	probeImage = "goblog/e2e-probe:e2e"
)

func buildProbe(t *testing.T) {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "goblog-probe")
		if err != nil {
			probeErr = err
			return
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", filepath.Join(dir, "probe"), "github.com/goblog/goblog/e2e/probe")
		build.Dir = RepoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("build probe: %v\n%s", err, out)
			return
		}
		df := "FROM scratch\nCOPY probe /\nUSER 65534:65534\nENTRYPOINT [\"/probe\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			probeErr = err
			return
		}
		if out, err := DockerErr("build", "-q", "-t", probeImage, dir); err != nil {
			probeErr = fmt.Errorf("docker build probe: %v\n%s", err, out)
		}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
}

// probe runs e2e/probe in a container on network; env is passed by name from this process
// (never on the command line).
func probe(t *testing.T, network string, env map[string]string, args ...string) string {
	t.Helper()
	buildProbe(t)
	cmdArgs := []string{"run", "--rm", "--network", network}
	for k := range env {
		cmdArgs = append(cmdArgs, "-e", k)
	}
	cmdArgs = append(append(cmdArgs, probeImage), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", cmdArgs...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("probe %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("probe %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// The broker has no guest: refused from the host (the port TestMain published) and from a
// container on the stack network; the users copyall.sh made log in from both.
func TestBrokerRefusesGuest(t *testing.T) {
	creds := brokerCreds(t)
	admin := amqpURL(creds["GOBLOG_AMQP_ADMIN_USER"], creds["GOBLOG_AMQP_ADMIN_PASSWORD"])
	// First: that port is this stack's broker (its administrator logs in), so a refusal below
	// is the broker's answer, not some other listener's.
	conn, err := dialAMQP(admin)
	if err != nil {
		t.Fatalf("the administrator from broker.env cannot log in at %s:5672: %v", brokerHost, err)
	}
	conn.Close()
	_, err = dialAMQP(amqpURL("guest", "guest"))
	var aerr *amqp.Error
	if err == nil || !(errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused || strings.Contains(err.Error(), "username or password not allowed")) {
		t.Fatalf("guest/guest from the host: %v, want the broker's refusal", err)
	}
	t.Logf("from the host: guest refused (%v)", err)

	netName := Stack + "_net"
	if got := probe(t, netName, map[string]string{"AMQP_URL": "amqp://guest:guest@rabbitmq:5672/"}, "-check", "amqp-login"); !strings.HasPrefix(got, "refused:") {
		t.Fatalf("guest/guest from a container on %s: %q, want refused", netName, got)
	} else {
		t.Logf("from %s: guest %s", netName, got)
	}
	pub := "amqp://" + creds["GOBLOG_AMQP_PUBLISHER_USER"] + ":" + creds["GOBLOG_AMQP_PUBLISHER_PASSWORD"] + "@rabbitmq:5672/"
	if got := probe(t, netName, map[string]string{"AMQP_URL": pub}, "-check", "amqp-login"); got != "ok" {
		t.Fatalf("the publisher from a container on %s: %q, want ok", netName, got)
	}
}

// amqpOp runs op on a fresh channel of conn and reports whether the broker refused it.
func amqpOp(t *testing.T, conn *amqp.Connection, op func(ch *amqp.Channel) error) error {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	return op(ch)
}

func refused(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused
}

// The publisher may only write to the discovery exchange; the consumer only has its own
// server-named queue bound to discovery.
func TestBrokerUsersHaveOnlyTheirPermissions(t *testing.T) {
	creds := brokerCreds(t)
	if creds["GOBLOG_AMQP_CONSUMER_USER"] == "" {
		t.Fatal("broker.env has no GOBLOG_AMQP_CONSUMER_USER")
	}
	pub, err := dialAMQP(amqpURL(creds["GOBLOG_AMQP_PUBLISHER_USER"], creds["GOBLOG_AMQP_PUBLISHER_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	con, err := dialAMQP(amqpURL(creds["GOBLOG_AMQP_CONSUMER_USER"], creds["GOBLOG_AMQP_CONSUMER_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()

	publish := func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Not a token (turbine counts it malformed): what matters is whether the broker takes it.
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "discovery", "", false, false, amqp.Publishing{Body: []byte("e2e permission probe")})
		if err != nil {
			return err
		}
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-dc.Done():
			return nil
		case e := <-closed:
			return e
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	serverNamedBoundQueue := func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return err
		}
		if err := ch.QueueBind(q.Name, "", "discovery", false, nil); err != nil {
			return err
		}
		_, err = ch.Consume(q.Name, "", true, true, false, false, nil)
		return err
	}
	for _, tc := range []struct {
		who     string
		conn    *amqp.Connection
		what    string
		op      func(ch *amqp.Channel) error
		refused bool
	}{
		{"publisher", pub, "publish to discovery", publish, false},
		{"publisher", pub, "declare an exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("e2e-elsewhere", "fanout", false, true, false, false, nil)
		}, true},
		{"publisher", pub, "redeclare discovery", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("discovery", "fanout", true, false, false, false, nil)
		}, true},
		{"publisher", pub, "declare a queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("", false, true, true, false, nil)
			return err
		}, true},
		{"publisher", pub, "delete discovery", func(ch *amqp.Channel) error { return ch.ExchangeDelete("discovery", false, false) }, true},
		{"consumer", con, "own queue bound to discovery, consumed", serverNamedBoundQueue, false},
		{"consumer", con, "publish to discovery", publish, true},
		{"consumer", con, "declare a named queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("e2e-named", false, true, true, false, nil)
			return err
		}, true},
		{"consumer", con, "declare an exchange", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare("e2e-elsewhere", "fanout", false, true, false, false, nil)
		}, true},
	} {
		t.Run(tc.who+" "+tc.what, func(t *testing.T) {
			err := amqpOp(t, tc.conn, tc.op)
			if tc.refused && !refused(err) {
				t.Fatalf("%s may %s: %v, want ACCESS_REFUSED", tc.who, tc.what, err)
			}
			if !tc.refused && err != nil {
				t.Fatalf("%s cannot %s: %v", tc.who, tc.what, err)
			}
		})
	}
}

// accountservice and turbine connect with their own users, and turbine sees accountservice's
// tokens.
func TestServicesUseTheirBrokerUsers(t *testing.T) {
	creds := brokerCreds(t)
	c := NewClient()
	var users []string
	WaitFor(t, 2*time.Minute, "the broker's connections include the publisher and the consumer", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+brokerHost+":15672/api/connections", nil)
		req.SetBasicAuth(creds["GOBLOG_AMQP_ADMIN_USER"], creds["GOBLOG_AMQP_ADMIN_PASSWORD"])
		resp, err := c.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var conns []struct {
			User string `json:"user"`
			Name string `json:"name"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&conns); err != nil {
			return false, fmt.Sprintf("%d %v", resp.StatusCode, err)
		}
		users = users[:0]
		for _, cn := range conns {
			users = append(users, cn.User)
		}
		return slices.Contains(users, creds["GOBLOG_AMQP_PUBLISHER_USER"]) && slices.Contains(users, creds["GOBLOG_AMQP_CONSUMER_USER"]),
			fmt.Sprintf("connected users %v", users)
	})
	if slices.Contains(users, "guest") {
		t.Fatalf("a guest connection: %v", users)
	}
	waitTurbineMatchesTasks(t, c, 2*time.Minute)
}

// serviceSpec is the part of `docker service inspect` these checks read.
type serviceSpec struct {
	Spec struct {
		TaskTemplate struct {
			ContainerSpec struct {
				Env            []string
				User           string
				ReadOnly       bool
				CapabilityDrop []string
				Mounts         []struct{ Source, Target string }
				Secrets        []struct{ SecretName string }
				Healthcheck    struct{ Interval time.Duration }
			}
		}
		EndpointSpec struct {
			Ports []struct{ TargetPort, PublishedPort int }
		}
	}
}

func inspectService(t *testing.T, name string) serviceSpec {
	t.Helper()
	var out []serviceSpec
	if err := json.Unmarshal([]byte(Docker(t, "service", "inspect", Service(name))), &out); err != nil || len(out) != 1 {
		t.Fatalf("service inspect %s: %v", name, err)
	}
	return out[0]
}

// What the engine runs is what copyall.sh was asked for (TestMain: testability on, broker
// published) and least privilege holds: only the proxy holds the socket.
func TestDeployedSettings(t *testing.T) {
	for _, name := range []string{"accountservice", "edge"} {
		if env := inspectService(t, name).Spec.TaskTemplate.ContainerSpec.Env; !slices.Contains(env, "TESTABILITY=true") {
			t.Errorf("%s env %v: TestMain deployed with GOBLOG_TESTABILITY=true", name, env)
		}
	}
	for _, name := range []string{"edge", "accountservice", "quotes-service", "swarmwatcher", "socketproxy", "rabbitmq", "turbine"} {
		cs := inspectService(t, name).Spec.TaskTemplate.ContainerSpec
		for _, e := range cs.Env {
			if strings.Contains(e, "guest") || strings.HasPrefix(e, "AMQP_URL=") {
				t.Errorf("%s has %q in its environment (credentials come as secrets)", name, strings.SplitN(e, "=", 2)[0])
			}
		}
		for _, m := range cs.Mounts {
			if strings.Contains(m.Source, "docker.sock") && name != "socketproxy" {
				t.Errorf("%s mounts the Docker socket", name)
			}
		}
	}
	rabbit := inspectService(t, "rabbitmq")
	var published []int
	for _, p := range rabbit.Spec.EndpointSpec.Ports {
		published = append(published, p.PublishedPort)
	}
	if !slices.Contains(published, 5672) || !slices.Contains(published, 15672) {
		t.Errorf("broker published ports %v: TestMain deployed with GOBLOG_BROKER_PUBLISH=true", published)
	}

	w := inspectService(t, "swarmwatcher").Spec.TaskTemplate.ContainerSpec
	if strings.HasPrefix(w.User, "0") || w.User == "" || !w.ReadOnly || !slices.Contains(w.Env, "DOCKER_HOST=tcp://socketproxy:2375") || len(w.Mounts) != 0 {
		t.Errorf("swarmwatcher: user %q, read-only %v, env %v, mounts %v", w.User, w.ReadOnly, w.Env, w.Mounts)
	}
	if !slices.Contains(w.CapabilityDrop, "ALL") && !slices.Contains(w.CapabilityDrop, "CAP_ALL") {
		t.Errorf("swarmwatcher: capabilities dropped %v, want ALL", w.CapabilityDrop)
	}
	p := inspectService(t, "socketproxy").Spec.TaskTemplate.ContainerSpec
	if u, g, _ := strings.Cut(p.User, ":"); u == "0" || g == "" || g == "0" {
		t.Errorf("socketproxy runs as %q, want a non-root user with the socket's group", p.User)
	}
	t.Logf("swarmwatcher: user %s, read-only %v, capabilities dropped %v; socketproxy: user %s", w.User, w.ReadOnly, w.CapabilityDrop, p.User)
}

// The proxy lets the watcher read, and refuses writes and secrets-bearing reads to anyone on
// its network; the watcher, behind it, still sees the stack.
func TestSocketProxyIsReadOnly(t *testing.T) {
	netName := Stack + "_docker-api"
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/v1.41/info", "200"},
		{"GET", "/v1.41/services", "200"},
		{"GET", "/v1.41/swarm", "403"},
		{"POST", "/v1.41/swarm/leave?force=1", "403"},
		{"DELETE", "/v1.41/services/" + Service("edge"), "403"},
		{"POST", "/v1.41/containers/create", "403"},
		{"GET", "/v1.41/secrets", "403"},
	} {
		if got := probe(t, netName, nil, "-check", "http", "-method", tc.method, "-url", "http://socketproxy:2375"+tc.path); got != tc.want {
			t.Errorf("%s %s through the proxy: %s, want %s", tc.method, tc.path, got, tc.want)
		}
	}
	var svcs []struct {
		Name string `json:"name"`
	}
	WaitFor(t, time.Minute, "the watcher lists the stack's services through the proxy", func() (bool, string) {
		code, body, err := CallErr(NewClient(), http.MethodGet, WatcherURL+"/api/services")
		if err != nil || code != 200 {
			return false, fmt.Sprintf("%d %v", code, err)
		}
		if err := json.Unmarshal(body, &svcs); err != nil {
			return false, err.Error()
		}
		names := []string{}
		for _, s := range svcs {
			names = append(names, s.Name)
		}
		return slices.Contains(names, Service("socketproxy")) && slices.Contains(names, Service("edge")), fmt.Sprint(names)
	})
}
