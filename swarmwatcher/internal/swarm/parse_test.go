package swarm

import (
	"strings"
	"testing"
)

func TestParseAddressKeepsOnlyDialableUnicast(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"10.0.1.7/24", "10.0.1.7"},
		{"10.0.1.7", "10.0.1.7"},
		{"fd00::7/64", "fd00::7"},
		{"::ffff:10.0.1.7/120", "10.0.1.7"},
		{"127.0.0.1/8", ""},
		{"0.0.0.0/0", ""},
		{"169.254.169.254/16", ""},
		{"224.0.0.1/4", ""},
		{"ff02::1/64", ""},
		{"fe80::1%eth0", ""},
		{"255.255.255.255/32", ""},
		{"10.0.1.7/99", ""},
		{"", ""},
		{"not-an-ip", ""},
	} {
		got, err := ParseAddress(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseAddress(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestProbeTargetRejectsWhatIsNotAPortOrPlainPath(t *testing.T) {
	for _, tc := range []struct {
		port, path string
		wantPort   int
		wantPath   string // "" with wantPort 0: an error
	}{
		{"6767", "", 6767, "/health"},
		{" 8080 ", "ready", 8080, "/ready"},
		{"8080", "/a/b-c_d.e", 8080, "/a/b-c_d.e"},
		{"0", "", 0, ""},
		{"65536", "", 0, ""},
		{"http", "", 0, ""},
		{"8080", "//evil.example/x", 0, ""},
		{"8080", "/x?y=1", 0, ""},
		{"8080", "/x#y", 0, ""},
		{"8080", "/../admin", 0, ""},
		{"8080", "/a b", 0, ""},
		{"8080", "/%2e%2e/", 0, ""},
		{"8080", "/" + strings.Repeat("a", 300), 0, ""},
	} {
		labels := map[string]string{LabelPort: tc.port}
		if tc.path != "" {
			labels[LabelPath] = tc.path
		}
		port, path, err := ProbeTarget(labels)
		if tc.wantPort == 0 {
			if err == nil {
				t.Errorf("ProbeTarget(%q, %q) = %d %q, want an error", tc.port, tc.path, port, path)
			}
			continue
		}
		if err != nil || port != tc.wantPort || path != tc.wantPath {
			t.Errorf("ProbeTarget(%q, %q) = %d %q %v, want %d %q", tc.port, tc.path, port, path, err, tc.wantPort, tc.wantPath)
		}
	}
	if port, path, err := ProbeTarget(map[string]string{"other": "x"}); port != 0 || path != "" || err != nil {
		t.Errorf("no label: %d %q %v, want not probed and no error", port, path, err)
	}
}

// FuzzProbeTarget: any label values give either an error or a port in range
// and a path that stays a plain absolute path.
func FuzzProbeTarget(f *testing.F) {
	f.Add("6767", "/health")
	f.Add("8080", "../x")
	f.Add("1", "")
	f.Fuzz(func(t *testing.T, port, path string) {
		labels := map[string]string{LabelPort: port}
		if path != "" {
			labels[LabelPath] = path
		}
		p, pa, err := ProbeTarget(labels)
		if err != nil {
			return
		}
		if p < 1 || p > 65535 || !strings.HasPrefix(pa, "/") || strings.HasPrefix(pa, "//") ||
			strings.ContainsAny(pa, "?#% \\\r\n") || len(pa) > maxPathLen {
			t.Fatalf("ProbeTarget(%q, %q) = %d %q", port, path, p, pa)
		}
	})
}

// FuzzParseAddress: whatever the engine claims, an accepted address is a
// unicast address without a zone that formats back to itself.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"10.0.1.7/24", "fe80::1%eth0", "::ffff:1.2.3.4/96", "0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if !a.IsGlobalUnicast() || a.Zone() != "" || a.Is4In6() || a.IsLoopback() {
			t.Fatalf("ParseAddress(%q) = %v", s, a)
		}
	})
}
