package hoststat

import "testing"

func TestReadThisHost(t *testing.T) {
	s, err := Read()
	if err != nil {
		t.Fatalf("read this Linux host's %s: %v", Path, err)
	}
	if s.CPUs < 1 || s.total() == 0 || s.Ctxt == 0 {
		t.Fatalf("implausible sample of this host: %+v", s)
	}
}
