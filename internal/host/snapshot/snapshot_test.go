package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Dir: "relative"},
		{Dir: "/var/lib/../lib/wcp360"},
		{Dir: "/var/lib/wcp360", Keep: -1},
		{Dir: "/var/lib/wcp360", MaxFileBytes: -1},
	} {
		if _, err := New(opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", opts, err)
		}
	}
}

func TestTakeRejectsBadArguments(t *testing.T) {
	s, h := newStore(t, Options{})
	ok := filepath.Join(h, "f")
	for _, tc := range []struct {
		kind, name string
		paths      []string
	}{
		{"Tenant", "acme", nil},
		{"Tenant", "acme", []string{"etc/passwd"}},
		{"Tenant", "acme", []string{h + "/../x"}},
		{"Tenant", "acme", []string{"/"}},
		{"Tenant", "acme", []string{ok + "/"}},
		{"", "acme", []string{ok}},
		{"Tenant", "../etc", []string{ok}},
		{"Tenant", "a/b", []string{ok}},
		{"Ten ant", "acme", []string{ok}},
		{"Tenant", "a..b", []string{ok}},
	} {
		if _, err := s.Take(t.Context(), tc.kind, tc.name, "", tc.paths); !errors.Is(err, ErrInvalid) {
			t.Errorf("Take(%q, %q, %q) = %v, want ErrInvalid", tc.kind, tc.name, tc.paths, err)
		}
	}
}

func TestTakeRecordsEntries(t *testing.T) {
	requireRoot(t)
	s, h := newStore(t, Options{})
	f, d, l := filepath.Join(h, "f"), filepath.Join(h, "d"), filepath.Join(h, "l")
	writeFile(t, f, "hello", 0o2755, 1234, 5678, mtime1)
	mkdir(t, d, 0o1770, 1234, 5678)
	symlink(t, "../somewhere", l, 1234, 5678)
	missing := filepath.Join(h, "x", "y", "z")
	undersFile := filepath.Join(f, "child")

	snap, err := s.Take(t.Context(), "Tenant", "acme", "why", []string{missing, l, f, d, f, undersFile})
	must(t, err)
	want := []Entry{
		{Path: d, Type: TypeDir, Mode: 0o1770, UID: 1234, GID: 5678},
		{Path: f, Type: TypeFile, Mode: 0o2755, UID: 1234, GID: 5678, MTime: mtime1, Size: 5,
			SHA256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{Path: undersFile, Type: TypeAbsent},
		{Path: l, Type: TypeSymlink, UID: 1234, GID: 5678, Target: "../somewhere"},
		{Path: filepath.Join(h, "x"), Type: TypeAbsent},
		{Path: filepath.Join(h, "x", "y"), Type: TypeAbsent},
		{Path: missing, Type: TypeAbsent},
	}
	if diff := cmp.Diff(want, snap.Info().Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(snap.ID(), "Tenant/acme/20250314T150926.535897932Z") {
		t.Errorf("ID = %q", snap.ID())
	}
	// Everything the store writes is private.
	must(t, filepath.Walk(s.opts.Dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group/other access", p, fi.Mode())
		}
		return nil
	}))
}

func TestTakeRefusesLargeFiles(t *testing.T) {
	s, h := newStore(t, Options{MaxFileBytes: 10})
	small, big := filepath.Join(h, "small"), filepath.Join(h, "big")
	must(t, os.WriteFile(small, []byte("0123456789"), 0o600))
	must(t, os.WriteFile(big, []byte("0123456789A"), 0o600))

	_, err := s.Take(t.Context(), "Tenant", "acme", "", []string{small, big})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big) {
		t.Fatalf("Take = %v, want ErrTooLarge naming %s", err, big)
	}
	assertNoSnapshotDirs(t, s, "Tenant", "acme")
}

func TestTakeRefusesSymlinkedParent(t *testing.T) {
	s, h := newStore(t, Options{})
	real := filepath.Join(h, "real")
	must(t, os.Mkdir(real, 0o700))
	must(t, os.WriteFile(filepath.Join(real, "f"), []byte("x"), 0o600))
	must(t, os.Symlink(real, filepath.Join(h, "link")))

	viaLink := filepath.Join(h, "link", "f")
	_, err := s.Take(t.Context(), "Tenant", "acme", "", []string{filepath.Join(real, "f"), viaLink})
	if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), viaLink) {
		t.Fatalf("Take = %v, want ErrSymlink naming %s", err, viaLink)
	}
	assertNoSnapshotDirs(t, s, "Tenant", "acme")
	// The symlink itself, as the last component, is recorded, not followed.
	snap, err := s.Take(t.Context(), "Tenant", "acme", "", []string{filepath.Join(h, "link")})
	must(t, err)
	if e := snap.Info().Entries[0]; e.Type != TypeSymlink || e.Target != real {
		t.Errorf("entry = %+v", e)
	}
}

func TestIncompleteSnapshotsAreIgnoredAndPruned(t *testing.T) {
	clock := newFakeClock()
	s, h := newStore(t, Options{Clock: clock})
	f := filepath.Join(h, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	complete, err := s.Take(t.Context(), "Tenant", "acme", "", []string{f})
	must(t, err)
	clock.Advance(time.Minute)
	crashed, err := s.Take(t.Context(), "Tenant", "acme", "", []string{f})
	must(t, err)
	// A crash before the manifest was renamed into place.
	must(t, os.Rename(filepath.Join(crashed.dir, manifestFile), filepath.Join(crashed.dir, manifestFile+".tmp")))
	// A crash right after the directory was made.
	bare := filepath.Join(s.resourceDir("Tenant", "acme"), clock.Now().Add(time.Hour).UTC().Format(stampLayout))
	must(t, os.MkdirAll(filepath.Join(bare, filesDir), 0o700))
	// A manifest from a newer wcp360 is neither listed nor removed.
	newer := filepath.Join(s.resourceDir("Tenant", "acme"), clock.Now().Add(-time.Hour).UTC().Format(stampLayout))
	must(t, os.Mkdir(newer, 0o700))
	must(t, os.WriteFile(filepath.Join(newer, manifestFile), []byte(`{"version": 2, "somethingNew": true}`), 0o600))

	infos, err := s.List("Tenant", "acme")
	must(t, err)
	if diff := cmp.Diff([]string{complete.ID()}, ids(infos)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if _, err := s.Load(crashed.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load(crashed) = %v, want ErrNotFound", err)
	}
	if err := crashed.Restore(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Restore(crashed) = %v, want ErrNotFound", err)
	}

	must(t, s.Prune(t.Context()))
	for _, dir := range []string{crashed.dir, bare} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("incomplete snapshot %s not pruned: %v", dir, err)
		}
	}
	for _, dir := range []string{complete.dir, newer} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("snapshot %s pruned: %v", dir, err)
		}
	}
}

func TestRetention(t *testing.T) {
	clock := newFakeClock()
	s, h := newStore(t, Options{Keep: 3, MaxAge: 24 * time.Hour, Clock: clock})
	f := filepath.Join(h, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	take := func(kind, name string) *Snapshot {
		t.Helper()
		clock.Advance(time.Minute)
		snap, err := s.Take(t.Context(), kind, name, "", []string{f})
		must(t, err)
		return snap
	}
	var acme []string
	for range 5 {
		snap := take("Tenant", "acme")
		acme = append(acme, snap.ID())
		must(t, snap.Commit()) // Commit applies retention to its resource
	}
	other := take("Tenant", "other").ID() // pending, never committed

	infos, err := s.List("Tenant", "acme")
	must(t, err)
	if diff := cmp.Diff([]string{acme[4], acme[3], acme[2]}, ids(infos)); diff != "" {
		t.Errorf("after commits (-want +got):\n%s", diff)
	}
	for _, in := range infos {
		if in.State != StateCommitted {
			t.Errorf("%s: state %s, want %s", in.ID, in.State, StateCommitted)
		}
	}

	// A day later everything is too old, but each resource keeps its newest.
	clock.Advance(25 * time.Hour)
	must(t, s.Prune(t.Context()))
	for name, want := range map[string][]string{"acme": {acme[4]}, "other": {other}} {
		infos, err := s.List("Tenant", name)
		must(t, err)
		if diff := cmp.Diff(want, ids(infos)); diff != "" {
			t.Errorf("%s after MaxAge (-want +got):\n%s", name, diff)
		}
	}
}

func TestDiscard(t *testing.T) {
	s, h := newStore(t, Options{})
	f := filepath.Join(h, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	snap, err := s.Take(t.Context(), "Tenant", "acme", "", []string{f})
	must(t, err)
	must(t, snap.Discard())
	must(t, snap.Discard())
	assertNoSnapshotDirs(t, s, "Tenant", "acme")
	if err := snap.Restore(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Restore after Discard = %v, want ErrNotFound", err)
	}
	if err := snap.Commit(); !errors.Is(err, ErrNotFound) {
		t.Errorf("Commit after Discard = %v, want ErrNotFound", err)
	}
}

func TestConcurrentTakesGetDistinctOrderedIDs(t *testing.T) {
	clock := newFakeClock() // frozen: every Take sees the same time
	s, h := newStore(t, Options{Keep: 100, Clock: clock})
	f := filepath.Join(h, "f")
	must(t, os.WriteFile(f, []byte("x"), 0o600))
	const n = 8
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n+1)
	for i := range n {
		wg.Go(func() {
			snap, err := s.Take(t.Context(), "Tenant", "acme", fmt.Sprint(i), []string{f})
			if err == nil {
				got[i] = snap.ID()
				err = snap.Commit()
			}
			errs[i] = err
		})
	}
	wg.Go(func() { errs[n] = s.Prune(t.Context()) })
	wg.Wait()
	must(t, errors.Join(errs...))
	infos, err := s.List("Tenant", "acme")
	must(t, err)
	slices.Sort(got)
	slices.Reverse(got)
	if diff := cmp.Diff(got, ids(infos)); diff != "" {
		t.Errorf("List (-taken +listed):\n%s", diff)
	}
	// The clock never moved, yet ids keep increasing: newest stays newest.
	later, err := s.Take(t.Context(), "Tenant", "acme", "", []string{f})
	must(t, err)
	if later.ID() <= got[0] {
		t.Errorf("new id %s not after %s", later.ID(), got[0])
	}
}

func ids(infos []Info) []string {
	out := []string{}
	for _, in := range infos {
		out = append(out, in.ID)
	}
	return out
}

func assertNoSnapshotDirs(t *testing.T, s *Store, kind, name string) {
	t.Helper()
	des, err := os.ReadDir(s.resourceDir(kind, name))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	must(t, err)
	for _, de := range des {
		if de.Name() != lockFile {
			t.Errorf("left behind in the store: %s", de.Name())
		}
	}
}
