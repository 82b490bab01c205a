package exepages

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// passes is how many times a release unmaps and drops (see binary.release).
const passes = 2

// binary is the running executable: its read-only mappings, found once (a
// process's own binary never moves), and the file, kept open for fadvise.
type binary struct {
	path string
	ros  []mapping
	file *os.File
}

// locate finds the running executable's read-only mappings in
// /proc/self/maps (matched by path and inode) and opens the file.
func locate() (*binary, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("exepages: %w", err)
	}
	st, err := os.Stat("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("exepages: %w", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, ErrUnsupported
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("exepages: %w", err)
	}
	ms, err := parseMaps(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("exepages: %w", err)
	}
	ros := readOnlyOf(ms, exe, sys.Ino)
	if len(ros) == 0 {
		return nil, fmt.Errorf("exepages: no read-only mapping of %s (inode %d) in /proc/self/maps", exe, sys.Ino)
	}
	file, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("exepages: %w", err)
	}
	return &binary{path: exe, ros: ros, file: file}, nil
}

func (b *binary) Close() error { return b.file.Close() }

func (b *binary) release() (Result, error) {
	var r Result
	var err error
	if r.RSSFileBefore, err = readRSSFile(); err != nil {
		return r, fmt.Errorf("exepages: %w", err)
	}
	for _, m := range b.ros {
		r.Mappings++
		r.Bytes += int64(m.end - m.start)
		// Random access: pages faulted in from now on come one at a time, not
		// as large folios that a fault maps whole.
		if err := madvise(m, unix.MADV_RANDOM); err != nil {
			return r, err
		}
	}
	// Unmap, then drop the cached pages nothing maps now. The process's other
	// goroutines run meanwhile and map some back, whole large folios among
	// them, which the page cache then has to keep; a second pass gives back
	// those (they were faulted before the first pass's drop).
	for pass := 0; pass < passes; pass++ {
		for _, m := range b.ros {
			if err := madvise(m, unix.MADV_DONTNEED); err != nil {
				return r, err
			}
		}
		if err := unix.Fadvise(int(b.file.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return r, fmt.Errorf("exepages: fadvise %s: %w", b.path, err)
		}
	}
	if r.RSSFileAfter, err = readRSSFile(); err != nil {
		return r, fmt.Errorf("exepages: %w", err)
	}
	return r, nil
}

// madvise advises on the pages of m, a mapping of this process. It takes
// addresses, not a slice: the pages are the binary's own, not Go memory.
func madvise(m mapping, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), uintptr(advice)); e != 0 {
		return fmt.Errorf("exepages: madvise %#x-%#x %s: %w", m.start, m.end, m.perms, e)
	}
	return nil
}
