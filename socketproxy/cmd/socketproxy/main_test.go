package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-allow-paths") {
		t.Fatalf("-h: exit %d, stdout %q", code, out.String())
	}
}

func TestMalformedVariableNamed(t *testing.T) {
	t.Setenv("MAX_IN_FLIGHT", "many")
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "MAX_IN_FLIGHT") {
		t.Fatalf("exit %d, stderr %q; want 2 naming MAX_IN_FLIGHT", code, errb.String())
	}
}

func TestPrintSocketGID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "docker.sock")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid))
	var out, errb bytes.Buffer
	if code := run([]string{"-print-socket-gid", "-docker-socket", p}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != want {
		t.Fatalf("exit %d, printed %q, want %s (%s)", code, out.String(), want, errb.String())
	}
	if code := run([]string{"-print-socket-gid", "-docker-socket", p + ".absent"}, &out, &errb); code != 1 {
		t.Fatalf("absent socket: exit %d, want 1", code)
	}
}
