package snapshot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The host side: every operation on a recorded path goes through a parent
// directory opened without following symbolic links, then *at calls on it.

// missingError says that the directory prefix Path, a parent of the path
// being looked at, does not exist.
type missingError struct{ Path string }

func (e *missingError) Error() string { return e.Path + ": " + ErrParent.Error() + " (missing)" }
func (e *missingError) Unwrap() error { return ErrParent }

// notDirError says that the parent Path exists but is not a directory.
type notDirError struct{ Path string }

func (e *notDirError) Error() string { return e.Path + ": " + ErrParent.Error() + " (not a directory)" }
func (e *notDirError) Unwrap() error { return ErrParent }

const (
	dirFlags  = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
)

// openParent opens the parent directory of p (absolute and clean) one
// component at a time, refusing any component that is a symbolic link.
// It returns an O_PATH descriptor usable as the dirfd of *at calls.
func openParent(p string) (int, error) {
	fd, err := unix.Open("/", dirFlags, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	dir := filepath.Dir(p)
	if dir == "/" {
		return fd, nil
	}
	prefix := ""
	for c := range strings.SplitSeq(dir[1:], "/") {
		prefix += "/" + c
		next, err := unix.Openat(fd, c, dirFlags, 0)
		if err == nil {
			_ = unix.Close(fd)
			fd = next
			continue
		}
		var st unix.Stat_t
		statErr := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		_ = unix.Close(fd)
		switch {
		case statErr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return -1, fmt.Errorf("%s: %w", prefix, ErrSymlink)
		case errors.Is(err, unix.ENOENT):
			return -1, &missingError{Path: prefix}
		case errors.Is(err, unix.ENOTDIR):
			return -1, &notDirError{Path: prefix}
		default:
			return -1, &fs.PathError{Op: "open", Path: prefix, Err: err}
		}
	}
	return fd, nil
}

// lstatAt stats name in dirfd without following a symlink. ok is false when
// the name does not exist.
func lstatAt(dirfd int, name string) (st unix.Stat_t, ok bool, err error) {
	err = unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("lstat: %w", err)
	}
	return st, true, nil
}

// readlinkAt returns the target of the symlink name in dirfd.
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", fmt.Errorf("readlink: %w", err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// fsyncDir flushes the directory entries of dirfd (an O_PATH descriptor).
func fsyncDir(dirfd int) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	defer closeFD(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	return nil
}

// removeAt removes name from dirfd: a directory only when it is empty
// (ErrNotEmpty otherwise), anything else with unlink.
func removeAt(dirfd int, name string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("directory %w: not removed", ErrNotEmpty)
		}
		if err != nil {
			return fmt.Errorf("rmdir: %w", err)
		}
		return nil
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		return fmt.Errorf("unlink: %w", err)
	}
	return nil
}

// tempName is a fresh name for a temporary entry next to the one it will
// replace.
func tempName() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return ".wcp360-restore-" + hex.EncodeToString(b[:])
}

func isType(st *unix.Stat_t, t uint32) bool { return st.Mode&unix.S_IFMT == t }

func permBits(st *unix.Stat_t) uint32 { return st.Mode & 0o7777 }

// closeFD closes a descriptor that was only read from or used as a dirfd:
// there is nothing to lose when closing it fails.
func closeFD(fd int) { _ = unix.Close(fd) }
