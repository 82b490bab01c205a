package cmdtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binaries maps each main package (its import path below the module) to a
// variable it reads and a malformed value of it, and the name it goes by when
// that is not its folder's.
var binaries = map[string]struct{ env, bad, prog string }{
	"accountservice/cmd/accountservice": {env: "QUOTE_STRENGTH", bad: "11"},
	"deploy/cmd/stackwait":              {env: "TIMEOUT", bad: "soon"},
	"e2e/probe":                         {env: "CHECK", bad: "bogus"},
	"e2e/hookrecorder":                  {env: "LISTEN", bad: "8080"},
	"edge/cmd/edge":                     {env: "EDGE_DISCOVERY", bad: "dns"},
	"gatling":                           {env: "USERS", bad: "many"},
	"gatling/cmd/benchreport":           {env: "LOG_LEVEL", bad: "loud"},
	"gatling/cmd/gatling-runner":        {env: "USERS", bad: "many", prog: "gatling"}, // the gatling command, in an image
	"gatling/cmd/hello":                 {env: "PORT", bad: "x"},
	"healthchecker/cmd/healthchecker":   {env: "HEALTHCHECKER_TIMEOUT", bad: "soon"},
	"quotes-service/cmd/quotes-service": {env: "SHUTDOWN_GRACE", bad: "10"},
	"socketproxy/cmd/socketproxy":       {env: "MAX_IN_FLIGHT", bad: "many"},
	"swarmwatcher/cmd/swarmwatcher":     {env: "PROBE_INTERVAL", bad: "1"},
	"turbine/cmd/turbine":               {env: "EMIT_INTERVAL", bad: "1"},
}

// goTool runs the go command in the module root.
func goTool(t *testing.T, root string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// run runs bin with args and exactly the environment env (a binary must not
// pick up the test's own variables), bounded so that a binary that starts
// serving instead of exiting fails the test instead of hanging it.
func run(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not exit (it must exit at once)", filepath.Base(bin), strings.Join(args, " "))
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return code, out.String(), errOut.String()
}

func TestEveryBinaryConfiguresItselfTheOneWay(t *testing.T) {
	root := filepath.Dir(goTool(t, ".", nil, "env", "GOMOD"))
	module := goTool(t, root, nil, "list", "-m")
	var mains []string
	for _, p := range strings.Fields(goTool(t, root, nil, "list", "-f", `{{if eq .Name "main"}}{{.ImportPath}}{{end}}`, "./...")) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
		if _, ok := binaries[rel]; !ok {
			t.Errorf("binary %s is not in this test's table: add it to binaries with a variable it reads", rel)
		}
		mains = append(mains, "./"+rel)
	}
	if t.Failed() {
		return
	}

	// One build, with ./copyall.sh's flags, asking for the VCS stamp: a
	// GOFLAGS=-buildvcs=false in the machine's go env (this project's machines
	// have one) would drop it without a word. Go stamps from a checkout whose
	// .git is a directory, not from a git worktree (whose .git is a file) nor
	// from an export: there the version says "devel".
	head := ""
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && fi.IsDir() {
		out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatalf("git rev-parse HEAD in the checkout %s: %v", root, err)
		}
		head = strings.TrimSpace(string(out))
	}
	vcs := "-buildvcs=auto"
	if head != "" {
		vcs = "-buildvcs=true"
	}
	dir := t.TempDir()
	goTool(t, root, []string{"CGO_ENABLED=0"}, append([]string{"build", vcs, "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}, mains...)...)
	// Only what every process has; nothing of the test's own environment.
	base := []string{"HOME=" + dir}

	for _, m := range mains {
		rel := strings.TrimPrefix(m, "./")
		bin := filepath.Join(dir, path.Base(rel))
		name := path.Base(rel)
		if p := binaries[rel].prog; p != "" {
			name = p
		}
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(t, bin, base, "-h")
			if code != 0 || !strings.Contains(out, "Usage") {
				t.Fatalf("-h: exit %d, want 0 and the usage on stdout; stdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			want := binaries[rel]
			if !strings.Contains(out, "["+want.env+"]") || !strings.Contains(out, "LOG_LEVEL]") {
				t.Errorf("-h: the usage does not name %s and LOG_LEVEL:\n%s", want.env, out)
			}

			code, out, errOut = run(t, bin, append(base, want.env+"="+want.bad))
			if code != 2 || !strings.Contains(errOut, want.env) {
				t.Errorf("%s=%s: exit %d, want 2 and the variable named on stderr; stderr:\n%s", want.env, want.bad, code, errOut)
			}
			if code, _, errOut = run(t, bin, append(base, "LOG_LEVEL=loud", "HEALTHCHECKER_LOG_LEVEL=loud")); code != 2 || !strings.Contains(errOut, "LOG_LEVEL") {
				t.Errorf("LOG_LEVEL=loud: exit %d, want 2 naming it; stderr:\n%s", code, errOut)
			}

			code, out, errOut = run(t, bin, base, "-version")
			if code != 0 || !strings.HasPrefix(out, name+" ") {
				t.Fatalf("-version: exit %d, printed %q (stderr %q)", code, out, errOut)
			}
			// In a checkout the version is the commit's; elsewhere "devel".
			if head != "" && !strings.Contains(out, head[:12]) {
				t.Errorf("-version = %q, want the checkout's commit %s", strings.TrimSpace(out), head[:12])
			}
			if head == "" && !strings.Contains(out, "devel") {
				t.Errorf("-version = %q in a worktree or an export, want devel", strings.TrimSpace(out))
			}
		})
	}
}
