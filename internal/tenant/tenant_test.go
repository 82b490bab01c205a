package tenant

import (
	"context"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for name, want := range map[string]bool{
		"canary":                      true,
		"Team-7":                      true,
		"-":                           true,
		strings.Repeat("a", MaxLen):   true,
		"":                            false,
		strings.Repeat("a", MaxLen+1): false,
		"can ary":                     false,
		"canary\n":                    false,
		"can_ary":                     false,
		"cänary":                      false,
		"a/b":                         false,
		"a.b":                         false,
	} {
		if got := Valid(name); got != want {
			t.Errorf("Valid(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestFromHeader(t *testing.T) {
	for _, c := range []struct {
		values        []string
		name          string
		present, want bool
	}{
		{nil, "", false, false},
		{[]string{"canary"}, "canary", true, true},
		{[]string{""}, "", true, false},
		{[]string{"can ary"}, "", true, false},
		{[]string{strings.Repeat("a", MaxLen+1)}, "", true, false},
		{[]string{"canary", "canary"}, "", true, false},
	} {
		name, present := FromHeader(c.values)
		if name != c.name || present != c.present {
			t.Errorf("FromHeader(%q) = %q, %v; want %q, %v", c.values, name, present, c.name, c.present)
		}
	}
	v := []string{"canary"}
	if n := testing.AllocsPerRun(100, func() { FromHeader(v); FromHeader(nil) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func TestContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("a tenant in the background context")
	}
	if name, ok := FromContext(NewContext(context.Background(), "canary")); !ok || name != "canary" {
		t.Fatalf("FromContext = %q, %v", name, ok)
	}
}
