package exepages

import (
	"strings"
	"testing"
)

const mapsFixture = `00400000-008ed000 r-xp 00000000 00:2d 819941                             /accountservice
008ed000-00e4d000 r--p 004ed000 00:2d 819941                             /accountservice
00e4d000-00eb3000 rw-p 00a4d000 00:2d 819941                             /accountservice
00eb3000-02f29000 rw-p 00000000 00:00 0 
7fe1fcc50000-7fe1fcc60000 r--s 00000000 00:2d 819950                     /data/accounts.db
7ffd4a1e2000-7ffd4a203000 rw-p 00000000 00:00 0                          [stack]
7ffd4a3f0000-7ffd4a3f4000 r--p 00000000 00:00 0                          [vvar]
`

func TestParseMapsPicksTheBinarysReadOnlyMappings(t *testing.T) {
	ms, err := parseMaps(strings.NewReader(mapsFixture))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 7 {
		t.Fatalf("parsed %d mappings, want 7", len(ms))
	}
	ro := readOnlyOf(ms, "/accountservice", 819941)
	if len(ro) != 2 {
		t.Fatalf("read-only mappings of the binary: %+v, want the r-xp and r--p ones", ro)
	}
	if ro[0].start != 0x400000 || ro[0].end != 0x8ed000 || ro[1].start != 0x8ed000 || ro[1].end != 0xe4d000 {
		t.Errorf("ranges %+v", ro)
	}
	// Same path, another file (the binary was replaced on disk): not ours.
	if got := readOnlyOf(ms, "/accountservice", 1); len(got) != 0 {
		t.Errorf("another inode matched: %+v", got)
	}
}

func TestParseMapsRejectsMalformedLines(t *testing.T) {
	for _, line := range []string{
		"00400000 r-xp 00000000 00:2d 819941 /a",          // no range
		"zz-008ed000 r-xp 00000000 00:2d 819941 /a",       // bad start
		"00400000-0040000g r-xp 00000000 00:2d 819941 /a", // bad end
		"008ed000-00400000 r-xp 00000000 00:2d 819941 /a", // ends before it starts
		"00400000-008ed000 r-xp 00000000 00:2d x /a",      // bad inode
		"00400000-008ed000 r-xp",                          // too short
	} {
		if _, err := parseMaps(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q: no error", line)
		}
	}
}

func TestRSSFile(t *testing.T) {
	got, err := rssFile(strings.NewReader("Name:\tx\nRssAnon:\t  3296 kB\nRssFile:\t    9316 kB\nRssShmem:\t       0 kB\n"))
	if err != nil || got != 9316<<10 {
		t.Errorf("rssFile = %d, %v; want %d", got, err, 9316<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "RssFile:\t lots kB\n"} {
		if _, err := rssFile(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
