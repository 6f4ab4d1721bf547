// Package safefs changes files below a root directory without ever
// following a symlink below it: every path is walked one component at a
// time with O_NOFOLLOW|O_DIRECTORY, and every change is made relative to
// the directory descriptor so obtained (mkdirat, fchown, fchmod on an open
// descriptor, renameat). WCP360 writes as root into directories tenants
// control; this is what keeps a planted symlink from redirecting a chown
// or a write to /etc.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// FS does every operation relative to file descriptors opened without
// following symlinks, so a symlink planted anywhere on the way is refused
// rather than followed out of Root (a tenant's home, the homes' parent).
type FS struct {
	// Root may itself be a symlink (an admin's choice of disk); nothing
	// below it is followed.
	Root string
}

// ErrSymlink is a symlink found where the layout wants a directory or file.
var ErrSymlink = errors.New("is a symlink; WCP360 does not follow symlinks in a home: remove it")

// OpenDir opens Root/rel as a directory, refusing symlinks on the way.
// wwwRoot itself may be a symlink (an admin's choice of disk).
func (h FS) OpenDir(rel string) (int, error) {
	fd, err := unix.Open(h.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: h.Root, Err: err}
	}
	if rel == "" {
		return fd, nil
	}
	for part := range strings.SplitSeq(rel, "/") {
		next, err := unix.Openat(fd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		_ = unix.Close(fd)
		if err != nil {
			return -1, h.pathErr("open", rel, err)
		}
		fd = next
	}
	return fd, nil
}

func (h FS) pathErr(op, rel string, err error) error {
	p := path.Join(h.Root, rel)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s %w", p, ErrSymlink)
		}
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// Stat describes Root/rel without following a final symlink; ok is
// false when it does not exist.
func (h FS) Stat(rel string) (st unix.Stat_t, ok bool, err error) {
	dir, base := path.Split(rel)
	fd, err := h.OpenDir(strings.TrimSuffix(dir, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only descriptor
	err = unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, h.pathErr("stat", rel, err)
	}
	return st, true, nil
}

// ReadFile reads Root/rel (at most 1 MiB), refusing symlinks on the way.
func (h FS) ReadFile(rel string) ([]byte, error) {
	dir, base := path.Split(rel)
	dfd, err := h.OpenDir(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd) //nolint:errcheck // read-only descriptor
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, h.pathErr("open", rel, err)
	}
	f := os.NewFile(uintptr(fd), path.Join(h.Root, rel))
	defer f.Close() //nolint:errcheck // read-only
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// EnsureDir makes Root/rel a directory with exactly mode, uid and gid.
func (h FS) EnsureDir(rel string, mode fs.FileMode, uid, gid int) error {
	dir, base := path.Split(rel)
	pfd, err := h.OpenDir(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)                //nolint:errcheck // directory descriptor
	err = unix.Mkdirat(pfd, base, 0o700) // tightened first, opened up below
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return h.pathErr("mkdir", rel, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return h.pathErr("open", rel, err)
	}
	defer unix.Close(fd) //nolint:errcheck // directory descriptor
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return h.pathErr("chown", rel, err)
	}
	if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
		return h.pathErr("chmod", rel, err)
	}
	return nil
}

// WriteFile replaces Root/rel atomically with content, mode, uid, gid.
func (h FS) WriteFile(rel string, content []byte, mode fs.FileMode, uid, gid int) error {
	dir, base := path.Split(rel)
	pfd, err := h.OpenDir(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	defer unix.Close(pfd) //nolint:errcheck // directory descriptor
	tmp := "." + base + ".wcp360-new"
	_ = unix.Unlinkat(pfd, tmp, 0)
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return h.pathErr("create", rel, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	werr := func() error {
		if _, err := f.Write(content); err != nil {
			return err
		}
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
		if err := f.Chmod(mode.Perm()); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(pfd, tmp, pfd, base)
	}
	if werr != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return h.pathErr("write", rel, werr)
	}
	return unix.Fsync(pfd)
}

// Remove deletes the file Root/rel if it exists.
func (h FS) Remove(rel string) error {
	dir, base := path.Split(rel)
	pfd, err := h.OpenDir(strings.TrimSuffix(dir, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd) //nolint:errcheck // directory descriptor
	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return h.pathErr("remove", rel, err)
	}
	return nil
}
