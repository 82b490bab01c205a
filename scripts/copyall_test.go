package scripts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// fakeDocker plays an engine in swarm mode for ./copyall.sh: state lives in $FAKE_STATE
// (secrets/<name> holds a secret's value; swarm-created marks the node label). Every call is
// logged by fakeBin.add; stack deploy also records the environment the stack file reads.
const fakeDocker = `
st=$FAKE_STATE
mkdir -p "$st/secrets"
case "$1" in
info)
	case "$*" in
	*LocalNodeState*) if [[ -e $st/no-swarm ]]; then echo inactive; else echo active; fi ;;
	*ControlAvailable*) echo true ;;
	*NodeID*) echo node1id ;;
	*Name*) echo host1 ;;
	*Labels*) ;;
	esac ;;
image)
	[[ $2 == inspect ]] || exit 0
	case "$*" in
	*'{{.Id}}'*) echo sha256:0123456789abcdef ;;
	*'{{.Size}}'*) echo 1000000 ;;
	*goblog/rabbitmq*) [[ -e $st/rabbit-image ]] || exit 1 ;;
	esac ;;
secret)
	case $2 in
	inspect) [[ -e $st/secrets/$3 ]] ;;
	create) name=${*: -2:1}; cat >"$st/secrets/$name" ;;
	rm) rm "$st/secrets/$3" ;;
	esac ;;
swarm)
	case $2 in
	init) rm -f "$st/no-swarm" ;;
	leave) touch "$st/no-swarm"; rm -f "$st/swarm-created" ;;
	esac ;;
node)
	case $2 in
	update) touch "$st/swarm-created" ;;
	inspect) [[ -e $st/swarm-created ]] && echo copyall.sh ;;
	esac ;;
stack)
	case $2 in
	deploy) env | grep -E '^GOBLOG_(TESTABILITY|BROKER_PUBLISH|DOCKER_GID|RABBITMQ_CONF_HASH|TAG_SOCKETPROXY)=' | sort >"$st/deploy-env"
		echo "$*" >"$st/deploy-args" ;;
	ls) if [[ -e $st/deploy-args ]]; then echo goblog; fi ;; # exits 0 with no stack, as the real one
	rm) rm -f "$st/deploy-args" ;;
	esac ;;
service) exit 1 ;;
network) exit 1 ;;
ps) [[ -e $st/broker-running ]] && echo c1 ;;
exec) [[ $2 == c1 ]] && cat "$st/secrets/goblog_broker_definitions" ;;
build|tag|rmi) ;;
esac
`

// fakeGo builds nothing: it makes an executable for every ./x/cmd/<name> it is asked to build.
const fakeGo = `
out=''
for a in "$@"; do case $a in -o) next=1 ;; *) if [[ -n ${next:-} ]]; then out=$a; next=''; fi ;; esac; done
for a in "$@"; do case $a in ./*/cmd/*) printf '#!/bin/sh\nexit 0\n' >"$out/${a##*/}"; chmod +x "$out/${a##*/}" ;; esac; done
`

type copyallRig struct {
	*fakeBin
	state, home string
}

func newCopyallRig(t *testing.T) *copyallRig {
	t.Helper()
	f := newFakeBin(t, "zgrep", "gzip", "expr")
	r := &copyallRig{fakeBin: f, state: t.TempDir(), home: t.TempDir()}
	f.add(t, "docker", fakeDocker)
	f.add(t, "go", fakeGo)
	f.add(t, "id", asRoot)
	f.add(t, "modprobe", "exit 1")
	return r
}

func (r *copyallRig) copyall(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	env = append([]string{"FAKE_STATE=" + r.state, "XDG_CONFIG_HOME=" + filepath.Join(r.home, "config")}, env...)
	return r.run(t, env, "copyall.sh", args...)
}

func (r *copyallRig) brokerEnv(t *testing.T) (map[string]string, os.FileMode) {
	t.Helper()
	p := filepath.Join(r.home, "config", "goblog", "broker.env")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("broker.env: %v", err)
	}
	b, _ := os.ReadFile(p)
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m, fi.Mode().Perm()
}

func (r *copyallRig) file(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.state, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A missing package stops ./copyall.sh before it builds anything, with the command to run.
func TestCopyallChecksPrerequisitesFirst(t *testing.T) {
	r := newCopyallRig(t)
	r.add(t, "id", asUser) // not root; no debootstrap on PATH; no broker image
	r.add(t, "apt-get", aptWorks)
	code, out := r.copyall(t, nil)
	if code != 1 || !strings.Contains(out, "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends debootstrap'") ||
		!strings.Contains(out, "nothing was built") {
		t.Fatalf("exit %d; want 1 with the install command; output:\n%s", code, out)
	}
	if c := r.calls(t); strings.Contains(c, "go build") || strings.Contains(c, "docker build") || strings.Contains(c, "apt-get") {
		t.Fatalf("something ran before the check failed:\n%s", c)
	}
	// As root with apt, it installs the package first, then builds.
	r.add(t, "id", asRoot)
	_, out = r.copyall(t, nil)
	c := r.calls(t)
	inst, build := strings.Index(c, "apt-get install"), strings.Index(c, "go build")
	if !strings.Contains(out, "installing debootstrap") || inst < 0 || build < inst {
		t.Fatalf("as root: want apt-get install before go build; output:\n%s\ncalls:\n%s", out, c)
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestCopyallDeploysWithItsOwnCredentials(t *testing.T) {
	r := newCopyallRig(t)
	if err := os.WriteFile(filepath.Join(r.state, "rabbit-image"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := r.copyall(t, nil)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// Default: no testability, broker not published, the proxy with the socket's group.
	env := r.file(t, "deploy-env")
	if !strings.Contains(env, "GOBLOG_TESTABILITY=false\n") || strings.Contains(env, "GOBLOG_BROKER_PUBLISH") ||
		!regexp.MustCompile(`GOBLOG_DOCKER_GID=\d+\n`).MatchString(env) || !regexp.MustCompile(`GOBLOG_RABBITMQ_CONF_HASH=[0-9a-f]{12}\n`).MatchString(env) {
		t.Fatalf("deploy environment:\n%s", env)
	}
	if args := r.file(t, "deploy-args"); strings.Contains(args, "publish.yml") {
		t.Fatalf("default deploy publishes the broker: %s", args)
	}

	creds, mode := r.brokerEnv(t)
	if mode != 0o600 {
		t.Fatalf("broker.env mode %o, want 600", mode)
	}
	for _, k := range []string{"GOBLOG_AMQP_PUBLISHER_USER", "GOBLOG_AMQP_ADMIN_USER", "GOBLOG_AMQP_CONSUMER_USER"} {
		if creds[k] == "" || creds[k] == "guest" {
			t.Fatalf("%s = %q", k, creds[k])
		}
	}
	for _, k := range []string{"GOBLOG_AMQP_PUBLISHER_PASSWORD", "GOBLOG_AMQP_ADMIN_PASSWORD", "GOBLOG_AMQP_CONSUMER_PASSWORD"} {
		if !hex32.MatchString(creds[k]) {
			t.Fatalf("%s is not 128 random bits in hex", k)
		}
		if strings.Contains(out, creds[k]) || strings.Contains(r.calls(t), creds[k]) {
			t.Fatalf("%s was printed or passed as an argument", k)
		}
	}
	// The secrets hold the URLs and the broker's definitions with exactly these permissions.
	if got, want := r.file(t, "secrets/goblog_amqp_publisher_url"), "amqp://"+creds["GOBLOG_AMQP_PUBLISHER_USER"]+":"+creds["GOBLOG_AMQP_PUBLISHER_PASSWORD"]+"@rabbitmq:5672/"; got != want {
		t.Fatalf("publisher URL secret %q", got)
	}
	if got := r.file(t, "secrets/goblog_amqp_consumer_url"); !strings.HasPrefix(got, "amqp://"+creds["GOBLOG_AMQP_CONSUMER_USER"]+":"+creds["GOBLOG_AMQP_CONSUMER_PASSWORD"]+"@") {
		t.Fatalf("consumer URL secret %q", got)
	}
	var defs struct {
		Users []struct {
			Name, Password string
			Tags           []string
		}
		Permissions []struct{ User, Vhost, Configure, Write, Read string }
		Exchanges   []struct {
			Name, Type string
			Durable    bool
		}
	}
	if err := json.Unmarshal([]byte(r.file(t, "secrets/goblog_broker_definitions")), &defs); err != nil {
		t.Fatalf("definitions are not JSON: %v", err)
	}
	perms := map[string]string{}
	for _, p := range defs.Permissions {
		perms[p.User] = p.Configure + " | " + p.Write + " | " + p.Read
	}
	want := map[string]string{
		creds["GOBLOG_AMQP_PUBLISHER_USER"]: `^$ | ^discovery$ | ^$`,
		creds["GOBLOG_AMQP_CONSUMER_USER"]:  `^amq\.gen-.* | ^amq\.gen-.* | ^(discovery|amq\.gen-.*)$`,
		creds["GOBLOG_AMQP_ADMIN_USER"]:     `.* | .* | .*`,
	}
	if len(perms) != 3 || len(defs.Users) != 3 {
		t.Fatalf("users %+v permissions %v", defs.Users, perms)
	}
	for u, w := range want {
		if perms[u] != w {
			t.Errorf("permissions of %s: %q, want %q", u, perms[u], w)
		}
	}
	for _, u := range defs.Users {
		if u.Name == "guest" {
			t.Error("the definitions have a guest user")
		}
	}
	if len(defs.Exchanges) != 1 || defs.Exchanges[0].Name != "discovery" || defs.Exchanges[0].Type != "fanout" || !defs.Exchanges[0].Durable {
		t.Errorf("exchanges %+v", defs.Exchanges)
	}

	// A re-run keeps them: no secret made again, broker.env as it was.
	creates := strings.Count(r.calls(t), "docker secret create")
	code, out = r.copyall(t, []string{"GOBLOG_TESTABILITY=true", "GOBLOG_BROKER_PUBLISH=true"})
	if code != 0 {
		t.Fatalf("re-run: exit %d:\n%s", code, out)
	}
	if n := strings.Count(r.calls(t), "docker secret create"); n != creates {
		t.Fatalf("re-run created %d secrets", n-creates)
	}
	if again, _ := r.brokerEnv(t); again["GOBLOG_AMQP_ADMIN_PASSWORD"] != creds["GOBLOG_AMQP_ADMIN_PASSWORD"] {
		t.Fatal("re-run changed broker.env")
	}
	if env := r.file(t, "deploy-env"); !strings.Contains(env, "GOBLOG_TESTABILITY=true\n") {
		t.Fatalf("GOBLOG_TESTABILITY=true not passed on:\n%s", env)
	}
	if args := r.file(t, "deploy-args"); !strings.Contains(args, "-c docker-stack.yml -c rabbitmq/publish.yml") {
		t.Fatalf("GOBLOG_BROKER_PUBLISH=true: deploy args %s", args)
	}

	// broker.env lost: written again from the running broker, with the same users.
	envPath := filepath.Join(r.home, "config", "goblog", "broker.env")
	if err := os.Remove(envPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.state, "broker-running"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out = r.copyall(t, nil); code != 0 || !strings.Contains(out, "written again from the running broker") {
		t.Fatalf("broker.env lost: exit %d:\n%s", code, out)
	}
	if again, _ := r.brokerEnv(t); len(again) != len(creds) || again["GOBLOG_AMQP_CONSUMER_PASSWORD"] != creds["GOBLOG_AMQP_CONSUMER_PASSWORD"] ||
		again["GOBLOG_AMQP_PUBLISHER_USER"] != creds["GOBLOG_AMQP_PUBLISHER_USER"] || again["GOBLOG_AMQP_ADMIN_PASSWORD"] != creds["GOBLOG_AMQP_ADMIN_PASSWORD"] {
		t.Fatal("broker.env written again differs from the swarm's credentials")
	}

	// A new swarm (no secrets) gets the same credentials from broker.env.
	if err := os.RemoveAll(filepath.Join(r.state, "secrets")); err != nil {
		t.Fatal(err)
	}
	if code, out = r.copyall(t, nil); code != 0 {
		t.Fatalf("new swarm: exit %d:\n%s", code, out)
	}
	if !strings.Contains(r.file(t, "secrets/goblog_amqp_publisher_url"), creds["GOBLOG_AMQP_PUBLISHER_PASSWORD"]) {
		t.Fatal("a new swarm got other credentials than broker.env's")
	}
}

func TestCopyallRejectsBadSettings(t *testing.T) {
	r := newCopyallRig(t)
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{env: []string{"GOBLOG_TESTABILITY=yes"}, want: "GOBLOG_TESTABILITY must be true or false, not 'yes'"},
		{env: []string{"GOBLOG_BROKER_PUBLISH=1"}, want: "GOBLOG_BROKER_PUBLISH must be true or false"},
		{args: []string{"--purge"}, want: "--purge and --keep-swarm go with --down"},
		{args: []string{"--endpoint-mode", "ipvs"}, want: "--endpoint-mode must be vip or dnsrr"},
	} {
		if code, out := r.copyall(t, tc.env, tc.args...); code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("%v %v: exit %d, output %q; want 2 and %q", tc.env, tc.args, code, out, tc.want)
		}
	}
	if c := r.calls(t); strings.Contains(c, "go ") || strings.Contains(c, "docker build") {
		t.Fatalf("a rejected run built something:\n%s", c)
	}
}

func TestCopyallDown(t *testing.T) {
	r := newCopyallRig(t)
	for _, f := range []string{"rabbit-image", "no-swarm"} {
		if err := os.WriteFile(filepath.Join(r.state, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := r.copyall(t, nil); code != 0 || !strings.Contains(out, "./copyall.sh --down undoes it") {
		t.Fatalf("deploy into a new swarm: exit %d:\n%s", code, out)
	}
	// --down --keep-swarm: stack gone, secrets and swarm kept.
	code, out := r.copyall(t, nil, "--down", "--keep-swarm")
	if code != 0 || !strings.Contains(r.calls(t), "docker stack rm goblog") || strings.Contains(r.calls(t), "swarm leave") {
		t.Fatalf("--down --keep-swarm: exit %d:\n%s\ncalls:\n%s", code, out, r.calls(t))
	}
	if _, err := os.Stat(filepath.Join(r.state, "secrets", "goblog_broker_definitions")); err != nil {
		t.Fatal("--down without --purge removed the broker's secrets")
	}
	// --down --purge: the swarm copyall.sh created is left, secrets and broker.env removed.
	code, out = r.copyall(t, nil, "--down", "--purge")
	if code != 0 || !strings.Contains(r.calls(t), "docker swarm leave --force") || !strings.Contains(r.calls(t), "docker secret rm goblog_broker_definitions") {
		t.Fatalf("--down --purge: exit %d:\n%s\ncalls:\n%s", code, out, r.calls(t))
	}
	if _, err := os.Stat(filepath.Join(r.home, "config", "goblog", "broker.env")); !os.IsNotExist(err) {
		t.Fatalf("broker.env after --purge: %v", err)
	}
	// A swarm copyall.sh did not create is never left.
	r2 := newCopyallRig(t)
	if err := os.WriteFile(filepath.Join(r2.state, "rabbit-image"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := r2.copyall(t, nil); code != 0 {
		t.Fatalf("deploy: %d\n%s", code, out)
	}
	if code, out := r2.copyall(t, nil, "--down"); code != 0 || strings.Contains(r2.calls(t), "swarm leave") || !strings.Contains(out, "not created by copyall.sh") {
		t.Fatalf("--down on a swarm copyall.sh did not create: exit %d:\n%s", code, out)
	}
}
