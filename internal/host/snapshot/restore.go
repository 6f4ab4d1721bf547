package snapshot

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Restore puts every recorded path back as it was when the snapshot was
// taken. It does not stop at the first path it cannot restore: it returns
// errors.Join of one *fs.PathError per such path, having restored all the
// others.
//
// ctx is checked before anything is changed and bounds the wait for the
// resource's lock; once started, Restore runs to the end, because a
// half-restored host is worse than a slow restore.
//
// Callers that restore files guarded by a lock protocol (/etc/passwd,
// /etc/shadow, /etc/group and the shadow-utils lock) hold that lock.
func (sn *Snapshot) Restore(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restore %s: %w", sn.info.ID, err)
	}
	unlock, err := sn.store.lock(ctx, sn.info.Kind, sn.info.Name)
	if err != nil {
		return err
	}
	defer unlock()
	m, err := readManifest(sn.dir, sn.info.Kind, sn.info.Name)
	if err != nil {
		return fmt.Errorf("restore %s: %w", sn.info.ID, err)
	}

	var removals, restores []int
	for i, e := range m.Entries {
		if e.Type == TypeAbsent {
			removals = append(removals, i)
		} else {
			restores = append(restores, i)
		}
	}
	byDepth := func(a, b int) int {
		pa, pb := m.Entries[a].Path, m.Entries[b].Path
		return cmp.Or(cmp.Compare(strings.Count(pa, "/"), strings.Count(pb, "/")), strings.Compare(pa, pb))
	}
	// Children before parents when removing, parents before children when
	// creating.
	slices.SortFunc(removals, func(a, b int) int { return byDepth(b, a) })
	slices.SortFunc(restores, byDepth)

	var errs []error
	fail := func(p string, err error) {
		if err != nil {
			errs = append(errs, &fs.PathError{Op: "restore", Path: p, Err: err})
		}
	}
	for _, i := range removals {
		fail(m.Entries[i].Path, removeAbsent(m.Entries[i].Path))
	}
	for _, i := range restores {
		e := m.Entries[i]
		switch e.Type {
		case TypeFile:
			fail(e.Path, restoreFile(e, blobPath(sn.dir, i)))
		case TypeDir:
			fail(e.Path, restoreDir(e))
		case TypeSymlink:
			fail(e.Path, restoreSymlink(e))
		case TypeAbsent:
		}
	}
	st := StateRestored
	if len(errs) > 0 {
		st = StateRestoreFailed
	}
	return errors.Join(append(errs, sn.setState(st))...)
}

// removeAbsent makes a path that did not exist absent again.
func removeAbsent(p string) error {
	pfd, err := openParent(p)
	if errors.Is(err, ErrParent) {
		return nil // a parent is missing or a file: p cannot exist
	}
	if err != nil {
		return err
	}
	defer closeFD(pfd)
	base := filepath.Base(p)
	st, ok, err := lstatAt(pfd, base)
	if err != nil || !ok {
		return err
	}
	if err := removeAt(pfd, base, &st); err != nil {
		return err
	}
	return fsyncDir(pfd)
}

func restoreFile(e Entry, blob string) error {
	pfd, err := openParent(e.Path)
	if err != nil {
		return err
	}
	defer closeFD(pfd)
	base := filepath.Base(e.Path)
	st, ok, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	if ok {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if done, err := repairIfSame(pfd, base, e, &st); done || err != nil {
				return err
			}
		case unix.S_IFDIR:
			// rename(2) cannot replace a directory with a file.
			if err := removeAt(pfd, base, &st); err != nil {
				return err
			}
		}
	}
	return replaceFile(pfd, base, e, blob)
}

// repairIfSame reports whether the existing file already has the recorded
// content; if so it fixes owner, mode and mtime in place and keeps the inode.
func repairIfSame(pfd int, base string, e Entry, lst *unix.Stat_t) (bool, error) {
	if lst.Size != e.Size {
		return false, nil
	}
	fd, err := unix.Openat(pfd, base, readFlags, 0)
	if err != nil {
		return false, nil //nolint:nilerr // cannot compare: replace it
	}
	f := os.NewFile(uintptr(fd), e.Path) //nolint:gosec // fd is a fresh, valid descriptor
	defer func() { _ = f.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != lst.Dev || st.Ino != lst.Ino || !isType(&st, unix.S_IFREG) {
		return false, nil //nolint:nilerr // changed under us: replace it
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, e.Size+1))
	if err != nil || n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return false, nil //nolint:nilerr // unreadable or different: replace it
	}
	changed := false
	if st.Uid != e.UID || st.Gid != e.GID {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return true, fmt.Errorf("chown: %w", err)
		}
		changed = true // chown may clear setuid/setgid: chmod again
	}
	if changed || permBits(&st) != e.Mode {
		if err := unix.Fchmod(fd, e.Mode); err != nil {
			return true, fmt.Errorf("chmod: %w", err)
		}
		changed = true
	}
	if !e.MTime.Equal(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)) {
		if err := setMtime(pfd, base, e.MTime); err != nil {
			return true, err
		}
		changed = true
	}
	if changed {
		if err := unix.Fsync(fd); err != nil {
			return true, fmt.Errorf("fsync: %w", err)
		}
	}
	return true, nil
}

// replaceFile writes the saved content to a temporary file next to base,
// verifies its checksum, sets owner, mode and mtime, fsyncs it and renames
// it over base.
func replaceFile(pfd int, base string, e Entry, blob string) (err error) {
	src, err := os.Open(blob)
	if err != nil {
		return fmt.Errorf("saved content: %w", err)
	}
	defer func() { _ = src.Close() }()
	tmp := tempName()
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	dst := os.NewFile(uintptr(fd), tmp) //nolint:gosec // fd is a fresh, valid descriptor
	defer func() {
		if dst != nil {
			_ = dst.Close()
		}
		if err != nil {
			_ = unix.Unlinkat(pfd, tmp, 0)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, e.Size+1))
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return fmt.Errorf("%w: %s", ErrChecksum, blob)
	}
	// Owner before mode: chown clears setuid and setgid.
	if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, e.Mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	err = dst.Close()
	dst = nil
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := setMtime(pfd, tmp, e.MTime); err != nil {
		return err
	}
	if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return fsyncDir(pfd)
}

// setMtime sets the modification time of name in dirfd, leaving atime.
func setMtime(dirfd int, name string, t time.Time) error {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Sec: t.Unix(), Nsec: int64(t.Nanosecond())}}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

func restoreDir(e Entry) error {
	pfd, err := openParent(e.Path)
	if err != nil {
		return err
	}
	defer closeFD(pfd)
	base := filepath.Base(e.Path)
	st, ok, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	entriesChanged := false
	if ok && !isType(&st, unix.S_IFDIR) {
		if err := removeAt(pfd, base, &st); err != nil {
			return err
		}
		ok, entriesChanged = false, true
	}
	if !ok {
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		entriesChanged = true
	}
	dfd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer closeFD(dfd)
	if err := unix.Fstat(dfd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	chowned := false
	if st.Uid != e.UID || st.Gid != e.GID {
		if err := unix.Fchown(dfd, int(e.UID), int(e.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		chowned = true
	}
	if chowned || permBits(&st) != e.Mode {
		if err := unix.Fchmod(dfd, e.Mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if entriesChanged {
		return fsyncDir(pfd)
	}
	return nil
}

func restoreSymlink(e Entry) error {
	pfd, err := openParent(e.Path)
	if err != nil {
		return err
	}
	defer closeFD(pfd)
	base := filepath.Base(e.Path)
	st, ok, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	if ok {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if target, err := readlinkAt(pfd, base); err == nil && target == e.Target {
				return lchownIfNeeded(pfd, base, &st, e)
			}
		case unix.S_IFDIR:
			if err := removeAt(pfd, base, &st); err != nil {
				return err
			}
		}
	}
	tmp := tempName()
	if err := unix.Symlinkat(e.Target, pfd, tmp); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	err = func() error {
		tst, ok, err := lstatAt(pfd, tmp)
		if err != nil {
			return err
		}
		if !ok || !isType(&tst, unix.S_IFLNK) {
			return fmt.Errorf("temporary symlink %s: %w", tmp, ErrChanged)
		}
		if err := lchownIfNeeded(pfd, tmp, &tst, e); err != nil {
			return err
		}
		if err := unix.Renameat(pfd, tmp, pfd, base); err != nil {
			return fmt.Errorf("rename: %w", err)
		}
		return nil
	}()
	if err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	return fsyncDir(pfd)
}

func lchownIfNeeded(pfd int, name string, st *unix.Stat_t, e Entry) error {
	if st.Uid == e.UID && st.Gid == e.GID {
		return nil
	}
	if err := unix.Fchownat(pfd, name, int(e.UID), int(e.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lchown: %w", err)
	}
	return nil
}
