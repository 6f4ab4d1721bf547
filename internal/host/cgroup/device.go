package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNoBlockDevice is returned when the file system of a path is on no
// block device (tmpfs, overlay, NFS, btrfs subvolumes' anonymous devices),
// so io.max cannot limit it.
var ErrNoBlockDevice = errors.New("cgroup: no block device")

// SysDevBlock is where sysfs lists block devices by number.
const SysDevBlock = "/sys/dev/block"

// DeviceOf is the whole disk that holds the file system of path, for
// io.max: the st_dev of path, mapped from a partition to its disk (io.max
// takes whole disks only). sysDevBlock is SysDevBlock but for tests.
func DeviceOf(sysDevBlock, path string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Device{}, fmt.Errorf("cgroup: the device of %s: %w", path, err)
	}
	return WholeDisk(sysDevBlock, Device{unix.Major(st.Dev), unix.Minor(st.Dev)})
}

// WholeDisk maps a block device to the disk it is a partition of, or to
// itself when it is a disk.
func WholeDisk(sysDevBlock string, d Device) (Device, error) {
	dir := filepath.Join(sysDevBlock, d.String())
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return Device{}, fmt.Errorf("%w: %s is not in %s", ErrNoBlockDevice, d, sysDevBlock)
	} else if err != nil {
		return Device{}, fmt.Errorf("cgroup: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); errors.Is(err, fs.ErrNotExist) {
		return d, nil
	} else if err != nil {
		return Device{}, fmt.Errorf("cgroup: %w", err)
	}
	// A partition's sysfs directory is inside its disk's.
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return Device{}, fmt.Errorf("cgroup: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(real), "dev"))
	if err != nil {
		return Device{}, fmt.Errorf("cgroup: the disk of partition %s: %w", d, err)
	}
	disk, err := parseDevice(strings.TrimSpace(string(b)))
	if err != nil {
		return Device{}, fmt.Errorf("cgroup: the disk of partition %s: %w", d, err)
	}
	return disk, nil
}
