package scripts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBin is a folder of fake commands, first on PATH, followed by a folder holding only the
// real tools the scripts need (bash and a few coreutils): never the commands under test.
type fakeBin struct {
	dir, real, log string
}

func newFakeBin(t *testing.T, real ...string) *fakeBin {
	t.Helper()
	root := t.TempDir()
	f := &fakeBin{dir: filepath.Join(root, "fake"), real: filepath.Join(root, "real"), log: filepath.Join(root, "calls.log")}
	for _, d := range []string{f.dir, f.real} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range append([]string{"bash", "dirname", "cat", "date", "tail", "grep", "sed", "tr", "od", "head", "mktemp", "rm", "mkdir", "chmod", "mv", "cut", "sha256sum", "stat", "find", "sort", "seq", "awk", "ln", "cp", "basename", "sleep", "env", "touch"}, real...) {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.Symlink(p, filepath.Join(f.real, name)); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// add writes a fake command whose body is a bash script; every call is logged.
func (f *fakeBin) add(t *testing.T, name, body string) {
	t.Helper()
	script := "#!" + filepath.Join(f.real, "bash") + "\necho \"" + name + " $*\" >>" + f.log + "\n" + body + "\n"
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeBin) path() string { return f.dir + ":" + f.real }

func (f *fakeBin) calls(t *testing.T) string {
	b, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// run runs a script of the repository with the fake PATH; it returns the exit status and stderr.
func (f *fakeBin) run(t *testing.T, env []string, script string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(f.real, "bash"), append([]string{filepath.Join(repoRoot(t), script)}, args...)...)
	cmd.Env = append([]string{"PATH=" + f.path(), "HOME=" + t.TempDir()}, env...)
	cmd.Dir = repoRoot(t)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

const (
	asRoot    = `echo 0`
	asUser    = `echo 1000`
	aptWorks  = `[[ $1 == install ]] && for a in "$@"; do [[ $a == debootstrap ]] && { printf '#!/bin/sh\n' >"$(dirname "$0")/debootstrap"; chmod +x "$(dirname "$0")/debootstrap"; }; done; exit 0`
	aptBroken = `[[ $1 == install ]] && { echo "E: Unable to locate package debootstrap" >&2; exit 100; }; exit 0`
)

func TestPrereqsMissingPackage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		id, apt  string   // fake bodies; apt "" means no apt-get at all
		present  []string // commands (fakes) that are there
		args     []string
		wantCode int
		want     []string // in the output
		wantApt  string   // apt-get calls, in order
	}{
		{
			name: "root with apt installs it", id: asRoot, apt: aptWorks, args: []string{"build"},
			want:    []string{"missing: debootstrap", "installing debootstrap with apt-get", "installed debootstrap"},
			wantApt: "apt-get update -qq\napt-get install -y -qq --no-install-recommends debootstrap\n",
		},
		{
			name: "two stages needing it: one update, the package once", id: asRoot, apt: aptWorks, args: []string{"build", "lab"},
			present: []string{"mkfs.ext4", "qemu-system-x86_64", "qemu-img", "vde_switch", "curl", "shellcheck"},
			want:    []string{"installing debootstrap with"},
			wantApt: "apt-get update -qq\napt-get install -y -qq --no-install-recommends debootstrap\n",
		},
		{
			name: "not root: the one command to run", id: asUser, apt: aptWorks, args: []string{"build"}, wantCode: 1,
			want: []string{"missing: debootstrap (the broker's image", "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends debootstrap'"},
		},
		{
			name: "no apt: the packages to install", id: asRoot, args: []string{"build"}, wantCode: 1,
			want: []string{"no apt-get here; install these Debian packages (or your system's equivalents): debootstrap"},
		},
		{
			name: "install fails: said so", id: asRoot, apt: aptBroken, args: []string{"build"}, wantCode: 1,
			want:    []string{"apt-get install debootstrap failed"},
			wantApt: "apt-get update -qq\napt-get install -y -qq --no-install-recommends debootstrap\n",
		},
		{
			name: "-n never installs", id: asRoot, apt: aptWorks, args: []string{"-n", "build"}, wantCode: 1,
			want: []string{"apt-get update && apt-get install -y --no-install-recommends debootstrap"},
		},
		{
			name: "unknown stage", id: asRoot, apt: aptWorks, args: []string{"deploy"}, wantCode: 2,
			want: []string{"unknown stage: deploy"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeBin(t)
			f.add(t, "id", tc.id)
			if tc.apt != "" {
				f.add(t, "apt-get", tc.apt)
			}
			for _, c := range tc.present {
				f.add(t, c, "")
			}
			code, out := f.run(t, nil, "scripts/prereqs.sh", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			var apt []string
			for _, l := range strings.SplitAfter(f.calls(t), "\n") {
				if strings.HasPrefix(l, "apt-get ") {
					apt = append(apt, l)
				}
			}
			if got := strings.Join(apt, ""); got != tc.wantApt {
				t.Errorf("apt-get calls:\n%s\nwant:\n%s", got, tc.wantApt)
			}
		})
	}
}

func TestPrereqsNothingMissing(t *testing.T) {
	f := newFakeBin(t)
	f.add(t, "id", asRoot)
	f.add(t, "apt-get", aptWorks)
	f.add(t, "debootstrap", "")
	if code, out := f.run(t, nil, "scripts/prereqs.sh", "build"); code != 0 || out != "" {
		t.Fatalf("exit %d, output %q; want 0 and silence", code, out)
	}
	if c := f.calls(t); strings.Contains(c, "apt-get") {
		t.Fatalf("apt-get was called: %s", c)
	}
}

// Every package line names a known stage and a command, and every stage has its packages.
func TestPackageList(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "packages.txt"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]int{}
	for i, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			t.Errorf("line %d: want STAGE PACKAGE COMMAND WHY: %q", i+1, line)
			continue
		}
		switch f[0] {
		case "build", "unit", "integration", "e2e", "lab", "bench":
			stages[f[0]]++
		default:
			t.Errorf("line %d: unknown stage %q", i+1, f[0])
		}
	}
	for _, s := range []string{"build", "unit", "integration", "e2e", "lab", "bench"} {
		if stages[s] == 0 {
			t.Errorf("stage %s has no package", s)
		}
	}
}
