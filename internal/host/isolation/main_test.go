package isolation

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary is also the tenant's process in the kernel tests: with
// envRole set, TestMain runs that role (see role) instead of the tests.
const (
	envRole = "WCP_ISOLATION_TEST_ROLE"
	envPath = "WCP_ISOLATION_TEST_PATH"
	envMax  = "WCP_ISOLATION_TEST_MAX"
)

func TestMain(m *testing.M) {
	if r := os.Getenv(envRole); r != "" {
		os.Exit(role(r, os.Getenv(envPath), os.Getenv(envMax)))
	}
	os.Exit(m.Run())
}

// writeChunk is what the fill role writes at a time.
const writeChunk = 64 << 10

// role is the tenant's side of the kernel tests. It prints "n=<count>
// err=<errno name, or none>" and exits 0 when the run went as far as it
// could:
//
//	fill: append to the file path, 64 KiB at a time, up to max bytes; n is what was written
func role(r, path, maxs string) int {
	n, err := strconv.ParseUint(maxs, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if r != "fill" {
		fmt.Fprintf(os.Stderr, "unknown role %q\n", r)
		return 2
	}
	done, err := fill(path, n)
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, writeChunk)
	var done uint64
	for done < n {
		w, err := f.Write(buf[:min(uint64(len(buf)), n-done)])
		done += uint64(w)
		if err != nil {
			_ = f.Close()
			return done, err
		}
	}
	return done, f.Close()
}
