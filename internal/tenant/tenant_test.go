package tenant

import (
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
