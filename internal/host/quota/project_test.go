package quota

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// What SetProject and ProjectOf refuse before asking the kernel; their
// work is checked in the VM (TestKernelQuota).
func TestProjectRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, err := SetProject(dir, 0); !errors.Is(err, errProjectZero) {
		t.Errorf("SetProject(0): %v", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := SetProject(link, 20001); !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		t.Errorf("SetProject of a symlink: %v, want ENOTDIR or ELOOP (not followed)", err)
	}
	if _, _, err := ProjectOf(link); err == nil {
		t.Error("ProjectOf of a symlink: no error")
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ProjectOf(fifo); err == nil {
		t.Error("ProjectOf of a FIFO: no error")
	}
	if _, _, err := ProjectOf(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ProjectOf of a missing file: %v", err)
	}
}

func TestProjectErr(t *testing.T) {
	for _, c := range []struct {
		errno       unix.Errno
		unsupported bool
	}{{unix.EOPNOTSUPP, true}, {unix.ENOTTY, true}, {unix.EINVAL, false}, {unix.EOVERFLOW, false}, {unix.EPERM, false}} {
		err := projectErr("set project of", "/srv/www/acme", c.errno)
		if errors.Is(err, ErrUnsupported) != c.unsupported || !errors.Is(err, c.errno) {
			t.Errorf("projectErr(%v) = %v", c.errno, err)
		}
	}
}
