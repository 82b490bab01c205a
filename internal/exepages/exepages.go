// Package exepages gives back the pages of the running binary that only its
// start-up needed.
//
// A Go binary's code and read-only data are mapped from its file. The kernel
// maps them in large blocks (readahead builds large folios, and a fault maps
// the whole folio), so a service that has started holds nearly all of its
// binary resident: accountservice's 11.2 MB binary left 9.3 MB of file pages
// in its RSS, although serving requests touches far less. Under the
// fuse-overlayfs storage driver every container has its own copy of those
// pages in the page cache.
//
// A release marks the binary's read-only mappings for random access (no
// readahead, so no large folios from then on), unmaps their pages
// (MADV_DONTNEED: they are never written, so nothing is lost) and asks the
// kernel to drop the file's cached pages that no one maps any more
// (POSIX_FADV_DONTNEED). What the process still runs faults back in, a page at
// a time, from the file. Run releases once start-up is done and then at an
// interval; Release does it once.
//
// It is advice: a kernel that ignores it leaves the process as it was.
package exepages

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Result says what Release did.
type Result struct {
	Mappings int   // read-only mappings of the executable released
	Bytes    int64 // their total length
	// The process's resident file-backed bytes (RssFile) before and after.
	RSSFileBefore, RSSFileAfter int64
}

// ErrUnsupported is returned where the kernel offers no such advice.
var ErrUnsupported = errors.New("exepages: not supported on this system")

// Release gives back the executable's read-only pages once (see the package
// comment); Run does it at an interval. Calling it again is harmless.
func Release() (Result, error) {
	b, err := locate()
	if err != nil {
		return Result{}, err
	}
	defer b.Close()
	return b.release()
}

// mapping is one line of /proc/<pid>/maps.
type mapping struct {
	start, end uint64
	perms      string
	inode      uint64
	path       string
}

// parseMaps reads /proc/<pid>/maps lines:
//
//	00400000-008ed000 r-xp 00000000 00:2d 1234   /accountservice
func parseMaps(r io.Reader) ([]mapping, error) {
	var ms []mapping
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			return nil, fmt.Errorf("maps line %d: %d fields, want at least 5", n, len(f))
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps line %d: address range %q", n, f[0])
		}
		var m mapping
		var err error
		if m.start, err = strconv.ParseUint(lo, 16, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: start %q: %w", n, lo, err)
		}
		if m.end, err = strconv.ParseUint(hi, 16, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: end %q: %w", n, hi, err)
		}
		if m.end < m.start {
			return nil, fmt.Errorf("maps line %d: range %q ends before it starts", n, f[0])
		}
		if m.inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
			return nil, fmt.Errorf("maps line %d: inode %q: %w", n, f[4], err)
		}
		m.perms = f[1]
		if len(f) > 5 {
			m.path = strings.Join(f[5:], " ")
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("maps: %w", err)
	}
	return ms, nil
}

// readOnlyOf picks the mappings of the file (path and inode) that can never
// have been written: no 'w' permission. Writable ones (the binary's data)
// hold the process's own changes and are left alone.
func readOnlyOf(ms []mapping, path string, inode uint64) []mapping {
	var out []mapping
	for _, m := range ms {
		if m.path == path && m.inode == inode && !strings.Contains(m.perms, "w") && m.end > m.start {
			out = append(out, m)
		}
	}
	return out
}

// rssFile reads RssFile (in kB) from /proc/<pid>/status text, in bytes.
func rssFile(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "RssFile:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status RssFile %q: %w", strings.TrimSpace(v), err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return 0, errors.New("status: no RssFile line")
}

func readRSSFile() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return rssFile(f)
}
