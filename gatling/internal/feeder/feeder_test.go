package feeder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "plain", in: "accountId\n10000\n10001\n", want: []string{"10000", "10001"}},
		{name: "crlf, blank lines, spaces", in: "accountId\r\n\r\n 10000\r\n10001 \r\n\r\n", want: []string{"10000", "10001"}},
		{name: "extra columns", in: "name,accountId\nPerson_0,10000\nPerson_1,10001\n", want: []string{"10000", "10001"}},
		{name: "bom", in: "\ufeffaccountId\n7\n", want: []string{"7"}},
		{name: "empty file", in: "", wantErr: "feeder is empty"},
		{name: "header only", in: "accountId\n", wantErr: "no ids"},
		{name: "wrong header", in: "id\n10000\n", wantErr: `no column "accountId"`},
		{name: "empty id", in: "name,accountId\nx,\n", wantErr: "line 2: empty accountId"},
		{name: "short record", in: "name,accountId\nx\n", wantErr: "line 2: has 1 fields"},
		{name: "unsafe id", in: "accountId\n10000\n../admin\n", wantErr: `line 3: accountId "../admin"`},
		{name: "bad quoting", in: "accountId\n\"10000\n", wantErr: "read record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEmptyIsErrEmpty(t *testing.T) {
	_, err := Parse(strings.NewReader("accountId\n\n"))
	if !errors.Is(err, ErrEmpty) {
		t.Fatalf("err = %v, want ErrEmpty", err)
	}
}

func TestLoadShippedFeeder(t *testing.T) {
	ids, err := Load(filepath.Join("..", "..", "accounts.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 100 || ids[0] != "10000" || ids[99] != "10099" {
		t.Fatalf("shipped feeder: %d ids, first %q last %q; want 100 ids 10000..10099", len(ids), ids[0], ids[len(ids)-1])
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.csv"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func TestCircularWrapsAndIsShared(t *testing.T) {
	c, err := NewCircular([]string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 7 {
		got = append(got, c.Next())
	}
	if strings.Join(got, "") != "abcabca" {
		t.Fatalf("sequence %q, want abcabca", got)
	}

	// Concurrent users together take every id equally often.
	c, _ = NewCircular([]string{"a", "b", "c", "d"})
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				id := c.Next()
				mu.Lock()
				counts[id]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range []string{"a", "b", "c", "d"} {
		if counts[id] != 200 {
			t.Fatalf("counts %v, want 200 each", counts)
		}
	}
	if _, err := NewCircular(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("NewCircular(nil) err = %v", err)
	}
}
