package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestRestorePutsEverythingBack(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	p := func(rel string) string { return filepath.Join(h, rel) }

	// The host before the plan.
	mkdir(t, p("etc"), 0o755, 0, 0)
	writeFile(t, p("etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644, 0, 0, mtime1)
	writeFile(t, p("etc/shadow"), "root:*:19000::::::\n", 0o640, 0, 42, mtime1)
	writeFile(t, p("etc/su"), "#!/bin/true\n", 0o4755, 0, 0, mtime2)
	mkdir(t, p("home"), 0o2750, 1234, 5678)
	writeFile(t, p("home/index.php"), "<?php echo 1;\n", 0o640, 1234, 33, mtime2)
	symlink(t, "index.php", p("home/current"), 1234, 5678)
	mkdir(t, p("shared"), 0o1777, 0, 0)
	mkdir(t, p("conf.d"), 0o750, 1234, 5678)
	writeFile(t, p("retype"), "was a file\n", 0o600, 1234, 5678, mtime1)
	writeFile(t, p("empty"), "", 0o444, 0, 0, mtime2)

	paths := []string{
		p("etc/passwd"), p("etc/shadow"), p("etc/su"),
		p("home"), p("home/index.php"), p("home/current"), p("shared"), p("conf.d"),
		p("retype"), p("retype/inner"), p("empty"),
		p("etc/new.conf"),  // absent, parent exists
		p("created/sub/f"), // absent, parents absent too
		p("etc/link.new"),  // absent, becomes a symlink
	}
	before := observeAll(t, append(slices.Clone(paths), p("created"), p("created/sub")))

	snap, err := s.Take(ctx, "Tenant", "acme", "generation 2", paths)
	must(t, err)

	// The plan, applied part-way.
	writeFile(t, p("etc/passwd"), "root:x:0:0::/root:/bin/sh\nacme:x:1234:5678::/srv/www/acme:/bin/sh\n", 0o600, 0, 0, mtime2)
	must(t, os.Chown(p("etc/shadow"), 0, 0))
	must(t, os.Remove(p("etc/su")))
	must(t, os.RemoveAll(p("home"))) // comes back before what it held
	must(t, os.Chown(p("conf.d"), 0, 0))
	must(t, os.Chmod(p("conf.d"), 0o755))
	must(t, os.Remove(p("shared")))
	must(t, os.Remove(p("retype")))
	mkdir(t, p("retype"), 0o755, 0, 0)
	writeFile(t, p("retype/inner"), "x", 0o644, 0, 0, mtime1)
	writeFile(t, p("empty"), "now full", 0o644, 0, 0, mtime1)
	writeFile(t, p("etc/new.conf"), "new", 0o644, 0, 0, mtime1)
	must(t, os.MkdirAll(p("created/sub"), 0o755))
	writeFile(t, p("created/sub/f"), "new", 0o644, 0, 0, mtime1)
	symlink(t, "passwd", p("etc/link.new"), 0, 0)

	if err := snap.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	after := observeAll(t, append(slices.Clone(paths), p("created"), p("created/sub")))
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("host after restore (-before +after):\n%s", diff)
	}
	assertNoTempFiles(t, h)

	// Restoring again changes nothing and still succeeds.
	inode := stat(t, p("etc/passwd")).Ino
	must(t, snap.Restore(ctx))
	if got := stat(t, p("etc/passwd")).Ino; got != inode {
		t.Errorf("second restore rewrote etc/passwd (inode %d -> %d)", inode, got)
	}
}

func TestRestoreSkipsIdenticalFiles(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	same, meta, content := filepath.Join(h, "same"), filepath.Join(h, "meta"), filepath.Join(h, "content")
	for _, f := range []string{same, meta, content} {
		writeFile(t, f, "payload\n", 0o4750, 1234, 5678, mtime1)
	}
	before := observeAll(t, []string{same, meta, content})
	snap, err := s.Take(ctx, "Tenant", "acme", "", []string{same, meta, content})
	must(t, err)
	sameSt, metaSt, contentSt := stat(t, same), stat(t, meta), stat(t, content)

	must(t, os.Chown(meta, 0, 0))
	must(t, os.Chmod(meta, 0o644))
	must(t, os.Chtimes(meta, mtime2, mtime2))
	writeFile(t, content, "PAYLOAD\n", 0o4750, 1234, 5678, mtime1) // same size, same metadata

	must(t, snap.Restore(ctx))
	if diff := cmp.Diff(before, observeAll(t, []string{same, meta, content})); diff != "" {
		t.Errorf("(-before +after):\n%s", diff)
	}
	if st := stat(t, same); st.Ino != sameSt.Ino || st.Ctim != sameSt.Ctim {
		t.Errorf("unchanged file was touched: inode %d->%d, ctime %v->%v", sameSt.Ino, st.Ino, sameSt.Ctim, st.Ctim)
	}
	if st := stat(t, meta); st.Ino != metaSt.Ino {
		t.Errorf("file with only metadata changes was rewritten: inode %d->%d", metaSt.Ino, st.Ino)
	}
	if st := stat(t, content); st.Ino == contentSt.Ino {
		t.Errorf("file with changed content kept its inode %d: not replaced atomically", st.Ino)
	}
}

func TestRestoreReportsCreatedDirThatIsNotEmpty(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	dir, other := filepath.Join(h, "public"), filepath.Join(h, "other")
	writeFile(t, other, "old", 0o644, 0, 0, mtime1)
	snap, err := s.Take(ctx, "Domain", "example.com", "", []string{dir, other})
	must(t, err)

	must(t, os.Mkdir(dir, 0o755))
	writeFile(t, filepath.Join(dir, "upload.jpg"), "not ours", 0o644, 1234, 1234, mtime1) // not in the plan
	writeFile(t, other, "new", 0o644, 0, 0, mtime1)

	err = snap.Restore(ctx)
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("Restore = %v, want ErrNotEmpty", err)
	}
	if diff := cmp.Diff([]string{dir}, failedPaths(err)); diff != "" {
		t.Errorf("failed paths (-want +got):\n%s", diff)
	}
	if n := observe(t, filepath.Join(dir, "upload.jpg")); n.Type != TypeFile {
		t.Errorf("a file the snapshot did not record was removed: %+v", n)
	}
	if n := observe(t, other); n.Content != "old" {
		t.Errorf("other path not restored: %+v", n)
	}
	if infos, err := s.List("Domain", "example.com"); err != nil || infos[0].State != StateRestoreFailed {
		t.Errorf("List = %+v, %v; want state %s", infos, err, StateRestoreFailed)
	}
}

func TestRestoreContinuesPastFailures(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	a, bdir, c, d, e := filepath.Join(h, "a"), filepath.Join(h, "b"), filepath.Join(h, "b", "c"), filepath.Join(h, "d"), filepath.Join(h, "e")
	writeFile(t, a, "a", 0o644, 0, 0, mtime1)
	mkdir(t, bdir, 0o755, 0, 0)
	writeFile(t, c, "c", 0o644, 0, 0, mtime1)
	writeFile(t, d, "d", 0o644, 0, 0, mtime1)
	writeFile(t, e, "e", 0o644, 0, 0, mtime1)
	paths := []string{a, c, d, e} // b itself is not recorded
	before := observeAll(t, paths)
	snap, err := s.Take(ctx, "Tenant", "acme", "", paths)
	must(t, err)

	writeFile(t, a, "A", 0o644, 0, 0, mtime2)
	must(t, os.RemoveAll(bdir)) // c cannot come back: its parent is unknown
	must(t, os.Remove(d))
	must(t, os.Mkdir(d, 0o755)) // d cannot come back: a non-empty directory is there
	writeFile(t, filepath.Join(d, "x"), "x", 0o644, 0, 0, mtime1)
	writeFile(t, e, "E", 0o600, 1234, 1234, mtime2)

	err = snap.Restore(ctx)
	if diff := cmp.Diff([]string{c, d}, failedPaths(err)); diff != "" {
		t.Fatalf("Restore = %v\nfailed paths (-want +got):\n%s", err, diff)
	}
	if !errors.Is(err, ErrParent) || !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Restore = %v, want ErrParent and ErrNotEmpty", err)
	}
	for _, p := range []string{c, d} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	}
	for _, p := range []string{a, e} {
		if diff := cmp.Diff(before[p], observe(t, p)); diff != "" {
			t.Errorf("%s not restored (-want +got):\n%s", p, diff)
		}
	}
}

func TestRestoreRefusesSymlinkedParent(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	victim := t.TempDir()
	writeFile(t, filepath.Join(victim, "passwd"), "precious", 0o644, 0, 0, mtime1)
	writeFile(t, filepath.Join(victim, "keep"), "precious", 0o644, 0, 0, mtime1)

	sub := filepath.Join(h, "sub")
	mkdir(t, sub, 0o755, 1234, 1234)
	file, absent := filepath.Join(sub, "passwd"), filepath.Join(sub, "keep")
	writeFile(t, file, "ours", 0o644, 1234, 1234, mtime1)
	snap, err := s.Take(ctx, "Tenant", "acme", "", []string{file, absent})
	must(t, err)

	// The tenant swaps its directory for a symlink to somewhere else.
	must(t, os.Rename(sub, filepath.Join(h, "moved")))
	must(t, os.Symlink(victim, sub))

	err = snap.Restore(ctx)
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("Restore = %v, want ErrSymlink", err)
	}
	if diff := cmp.Diff([]string{absent, file}, failedPaths(err)); diff != "" {
		t.Errorf("failed paths (-want +got):\n%s", diff)
	}
	for _, name := range []string{"passwd", "keep"} {
		if n := observe(t, filepath.Join(victim, name)); n.Content != "precious" || n.UID != 0 {
			t.Errorf("restore wrote through the symlink: %s is %+v", name, n)
		}
	}
	assertNoTempFiles(t, victim)
}

func TestRestoreRefusesCorruptContent(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	a, b := filepath.Join(h, "a"), filepath.Join(h, "b")
	writeFile(t, a, "aaaa", 0o644, 0, 0, mtime1)
	writeFile(t, b, "bbbb", 0o644, 0, 0, mtime1)
	snap, err := s.Take(ctx, "Tenant", "acme", "", []string{a, b})
	must(t, err)
	writeFile(t, a, "AAAA", 0o644, 0, 0, mtime2)
	writeFile(t, b, "BBBB", 0o644, 0, 0, mtime2)
	// Entries are sorted, so a's content is files/0.
	must(t, os.WriteFile(blobPath(snap.dir, 0), []byte("evil"), 0o600))

	err = snap.Restore(ctx)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Restore = %v, want ErrChecksum", err)
	}
	if diff := cmp.Diff([]string{a}, failedPaths(err)); diff != "" {
		t.Errorf("failed paths (-want +got):\n%s", diff)
	}
	if n := observe(t, a); n.Content != "AAAA" {
		t.Errorf("corrupt content was written: %+v", n)
	}
	if n := observe(t, b); n.Content != "bbbb" {
		t.Errorf("b not restored: %+v", n)
	}
	assertNoTempFiles(t, h)
}

func TestRestoreAfterLoad(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	s, h := newStore(t, Options{})
	f := filepath.Join(h, "vhost.conf")
	writeFile(t, f, "server {}\n", 0o644, 0, 0, mtime1)
	snap, err := s.Take(ctx, "Domain", "example.com", "generation 3", []string{f})
	must(t, err)
	must(t, snap.Commit())
	writeFile(t, f, "server { broken\n", 0o644, 0, 0, mtime2)

	// Later, by hand: wcp rollback.
	loaded, err := s.Load(snap.ID())
	must(t, err)
	if diff := cmp.Diff(snap.Info(), loaded.Info()); diff != "" {
		t.Errorf("Load (-taken +loaded):\n%s", diff)
	}
	must(t, loaded.Restore(ctx))
	if n := observe(t, f); n.Content != "server {}\n" || !n.MTime.Equal(mtime1) {
		t.Errorf("after restore: %+v", n)
	}
	infos, err := s.List("Domain", "example.com")
	must(t, err)
	if len(infos) != 1 || infos[0].State != StateRestored || infos[0].Reason != "generation 3" {
		t.Errorf("List = %+v", infos)
	}
}

func TestRestoreHonoursCancelledContext(t *testing.T) {
	s, h := newStore(t, Options{})
	f := filepath.Join(h, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	snap, err := s.Take(t.Context(), "Tenant", "acme", "", []string{f})
	must(t, err)
	must(t, os.WriteFile(f, []byte("y"), 0o600))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := snap.Restore(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Restore = %v, want context.Canceled", err)
	}
	if n := observe(t, f); n.Content != "y" {
		t.Errorf("a cancelled restore changed the host: %+v", n)
	}
}

func assertNoTempFiles(t *testing.T, root string) {
	t.Helper()
	must(t, filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(filepath.Base(p), ".wcp360-restore-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	}))
}

func TestTakeRefusesFIFO(t *testing.T) {
	s, h := newStore(t, Options{})
	fifo := filepath.Join(h, "fifo")
	must(t, unix.Mkfifo(fifo, 0o600))
	_, err := s.Take(t.Context(), "Tenant", "acme", "", []string{fifo})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Take(fifo) = %v, want ErrUnsupported", err)
	}
}
