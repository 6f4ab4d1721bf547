package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernel checks, in a VM, what the harness promises: the disks asked
// for, with the file systems asked for (XFS and ext4 mount with project
// quota), and cgroup v2 with the controllers the tenant limits use.
func TestKernel(t *testing.T) {
	if Run(t, Options{Disks: []Disk{{Name: "xfs", FS: XFS}, {Name: "ext4", FS: Ext4Quota, SizeMiB: 64}, {Name: "blank", FS: Raw, SizeMiB: 1}}}) {
		return
	}
	if os.Getpid() == 1 || os.Getuid() != 0 {
		t.Fatalf("pid %d uid %d: want the test as root, a child of init", os.Getpid(), os.Getuid())
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpu", "io", "memory", "pids"} {
		if !strings.Contains(" "+strings.TrimSpace(string(b))+" ", " "+c+" ") {
			t.Errorf("cgroup v2 controllers %q lack %s", b, c)
		}
	}
	for _, d := range []struct{ name, fstype string }{{"xfs", "xfs"}, {"ext4", "ext4"}} {
		dev := Device(t, d.name)
		dir := filepath.Join(t.TempDir(), d.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(dev, dir, d.fstype, 0, "prjquota"); err != nil {
			t.Fatalf("mount %s (%s) on %s with prjquota: %v", dev, d.fstype, dir, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
		mounts, err := os.ReadFile("/proc/mounts")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(mounts), dir+" "+d.fstype+" ") || !strings.Contains(string(mounts), "prjquota") {
			t.Errorf("%s is not mounted as %s with prjquota:\n%s", dir, d.fstype, mounts)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
			t.Error(err)
		}
	}
	st, err := os.Stat(Device(t, "blank"))
	if err != nil || st.Mode()&os.ModeDevice == 0 {
		t.Errorf("the blank disk: %v %v", st, err)
	}
}
