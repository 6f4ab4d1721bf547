package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeSysfs lays out /sys/dev/block as the kernel does: numbers linking to
// device directories, a partition's inside its disk's.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	sys := t.TempDir()
	disk := filepath.Join(sys, "devices", "pci0000:00", "virtio1", "block", "vda")
	part := filepath.Join(disk, "vda1")
	devBlock := filepath.Join(sys, "dev", "block")
	for _, d := range []string{part, devBlock} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeT(t, filepath.Join(disk, "dev"), "254:0\n")
	writeT(t, filepath.Join(part, "dev"), "254:1\n")
	writeT(t, filepath.Join(part, "partition"), "1\n")
	for n, target := range map[string]string{"254:0": "../../devices/pci0000:00/virtio1/block/vda", "254:1": "../../devices/pci0000:00/virtio1/block/vda/vda1"} {
		if err := os.Symlink(target, filepath.Join(devBlock, n)); err != nil {
			t.Fatal(err)
		}
	}
	return devBlock
}

func TestWholeDisk(t *testing.T) {
	sys := fakeSysfs(t)
	for in, want := range map[Device]Device{{254, 0}: {254, 0}, {254, 1}: {254, 0}} {
		if got, err := WholeDisk(sys, in); err != nil || got != want {
			t.Errorf("WholeDisk(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	// tmpfs, overlay: anonymous devices are no block devices.
	if _, err := WholeDisk(sys, Device{0, 42}); !errors.Is(err, ErrNoBlockDevice) {
		t.Errorf("WholeDisk(0:42): %v, want ErrNoBlockDevice", err)
	}
}

// TestDeviceOfHere resolves the file system of this package's directory
// on this machine (read only): a disk, or no block device at all.
func TestDeviceOfHere(t *testing.T) {
	d, err := DeviceOf(SysDevBlock, ".")
	if errors.Is(err, ErrNoBlockDevice) {
		t.Skipf("here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(SysDevBlock, d.String(), "partition")); err == nil {
		t.Errorf("DeviceOf(.) = %s, a partition", d)
	}
	t.Logf("the file system of . is on disk %s", d)
}
