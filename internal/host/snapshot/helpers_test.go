package snapshot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: files are chowned to other users")
	}
}

// newStore returns a store in a fresh directory and the directory for the
// "host" files of the test.
func newStore(t *testing.T, opts Options) (s *Store, host string) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "snapshots")
	}
	if opts.Clock == nil {
		opts.Clock = newFakeClock()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, t.TempDir()
}

var (
	mtime1 = time.Date(2021, 6, 1, 12, 0, 0, 123456789, time.UTC)
	mtime2 = time.Date(2022, 7, 2, 13, 30, 0, 987654321, time.UTC)
)

// writeFile creates p with content, then sets mode, owner and mtime.
func writeFile(t *testing.T, p, content string, mode uint32, uid, gid int, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, os.Lchown(p, uid, gid))
	must(t, unix.Chmod(p, mode))
	must(t, os.Chtimes(p, mtime, mtime))
}

func mkdir(t *testing.T, p string, mode uint32, uid, gid int) {
	t.Helper()
	must(t, os.Mkdir(p, 0o700))
	must(t, os.Lchown(p, uid, gid))
	must(t, unix.Chmod(p, mode))
}

func symlink(t *testing.T, target, p string, uid, gid int) {
	t.Helper()
	must(t, os.Symlink(target, p))
	must(t, os.Lchown(p, uid, gid))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// node is what a test sees at a path.
type node struct {
	Type    EntryType
	Mode    uint32 // file and dir
	UID     uint32
	GID     uint32
	MTime   time.Time // file only: a directory's mtime follows its contents
	Content string
	Target  string
}

func observe(t *testing.T, p string) node {
	t.Helper()
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return node{Type: TypeAbsent}
	}
	must(t, err)
	n := node{UID: st.Uid, GID: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		must(t, err)
		n.Type, n.Mode, n.Content = TypeFile, st.Mode&0o7777, string(b)
		n.MTime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC()
	case unix.S_IFDIR:
		n.Type, n.Mode = TypeDir, st.Mode&0o7777
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		must(t, err)
		n.Type, n.Target = TypeSymlink, target
	default:
		t.Fatalf("%s: unexpected file type %#o", p, st.Mode&unix.S_IFMT)
	}
	return n
}

func observeAll(t *testing.T, paths []string) map[string]node {
	t.Helper()
	out := map[string]node{}
	for _, p := range paths {
		out[p] = observe(t, p)
	}
	return out
}

func stat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st
}

// failedPaths lists, sorted, the paths of the *fs.PathError joined in err.
func failedPaths(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		var pe *fs.PathError
		switch u := err.(type) { //nolint:errorlint // walking the join tree itself
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		default:
			if errors.As(err, &pe) {
				out = append(out, pe.Path)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	slices.Sort(out)
	return out
}
