// Package tenantio is a tenant's side of the disk quota tests: the test
// binary runs itself again as the tenant's uid and gid and writes until
// the kernel stops it, so that the quota (which ext4 does not hold root to)
// applies as it would to a site.
//
// Call Main first in TestMain; Run from the tests.
package tenantio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Chunk is what Fill writes at a time: a write that would cross a limit
// may fail whole, so a fill stops up to Chunk short of it.
const Chunk = 64 << 10

// The roles.
const (
	// Fill appends to the file path, Chunk at a time, up to max bytes; n
	// is what was written.
	Fill = "fill"
	// Touch makes empty files <path>/f<i> until max; n is how many.
	Touch = "touch"
)

const (
	envRole = "WCP_TENANTIO_ROLE"
	envPath = "WCP_TENANTIO_PATH"
	envMax  = "WCP_TENANTIO_MAX"
)

// Main runs the role when this process was started as one by Run, and
// says so (exit); the caller then exits with code.
func Main() (code int, exit bool) {
	r := os.Getenv(envRole)
	if r == "" {
		return 0, false
	}
	return role(r, os.Getenv(envPath), os.Getenv(envMax)), true
}

// Run runs role as uid and gid (the test binary again, which must call
// Main) and returns what it did and the errno name that stopped it
// ("none").
func Run(t *testing.T, uid int, r, path string, n uint64) (uint64, string) {
	t.Helper()
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{
		Path:       os.Args[0],
		Env:        []string{envRole + "=" + r, envPath + "=" + path, envMax + "=" + strconv.FormatUint(n, 10)},
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}, //nolint:gosec // a test tenant's uid
	})
	if err != nil {
		t.Fatalf("%s %s as uid %d: %v", r, path, uid, err)
	}
	var done uint64
	var errno string
	if _, err := fmt.Sscanf(string(out), "n=%d err=%s", &done, &errno); err != nil {
		t.Fatalf("%s %s: output %q: %v", r, path, out, err)
	}
	return done, errno
}

// role prints "n=<count> err=<errno name, or none>" and returns 0 when the
// run went as far as it could.
func role(r, path, maxs string) int {
	n, err := strconv.ParseUint(maxs, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var done uint64
	switch r {
	case Fill:
		done, err = fill(path, n)
	case Touch:
		done, err = touch(path, n)
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", r)
		return 2
	}
	name := "none"
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		name = unix.ErrnoName(errno)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("n=%d err=%s\n", done, name)
	return 0
}

func fill(path string, n uint64) (uint64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) //nolint:gosec // the path the test gave
	if err != nil {
		return 0, err
	}
	buf := make([]byte, Chunk)
	var done uint64
	for done < n {
		w, err := f.Write(buf[:min(uint64(len(buf)), n-done)])
		done += uint64(w) //nolint:gosec // Write returns 0 <= w <= len(p)
		if err != nil {
			_ = f.Close()
			return done, err
		}
	}
	return done, f.Close()
}

func touch(dir string, n uint64) (uint64, error) {
	for i := range n {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // under the directory the test gave
		if err != nil {
			return i, err
		}
		if err := f.Close(); err != nil {
			return i, err
		}
	}
	return n, nil
}
