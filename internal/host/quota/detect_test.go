package quota

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host/mountinfo"
)

// judge's verdicts on what the kernel can answer (the VM test sees the
// real answers of XFS and ext4).
func TestJudge(t *testing.T) {
	xfs := mountinfo.Mount{Point: "/srv", FSType: "xfs", Major: 254, Minor: 2, SuperOptions: []string{"rw", "prjquota"}}
	xfsOff := mountinfo.Mount{Point: "/srv", FSType: "xfs", Major: 254, Minor: 2, SuperOptions: []string{"rw", "attr2"}}
	ext4 := mountinfo.Mount{Point: "/srv", FSType: "ext4", Major: 8, Minor: 17, SuperOptions: []string{"rw"}}
	dev := Info{Device: "/dev/sdb1"}
	enosys := &callError{call: "quotactl", err: unix.ENOSYS}
	all := syscalls{quotactl: true, quotactlFd: true}
	for _, c := range []struct {
		name          string
		info          Info
		m             mountinfo.Mount
		flags         uint16
		err           error
		sc            syscalls
		acct, project bool
		reason        string
	}{
		{"xfs prjquota", dev, xfs, fsQuotaPdqAcct | fsQuotaPdqEnfd, nil, all, true, true, ""},
		{"xfs pqnoenforce", dev, xfs, fsQuotaPdqAcct, nil, all, true, false, "xfs at /srv (/dev/sdb1) counts project usage but does not enforce limits (mounted with pqnoenforce)"},
		{"xfs without quota", dev, xfsOff, 0, enosys, all, false, false, "xfs at /srv (/dev/sdb1) is mounted without project quota: add prjquota"},
		{"xfs with usrquota only", dev, xfs, 1 | 2, nil, all, false, false, "is mounted without project quota"},
		{"ext4 prjquota", dev, ext4, fsQuotaPdqAcct | fsQuotaPdqEnfd | 1, nil, all, true, true, ""},
		{"ext4 without prjquota", dev, ext4, fsQuotaPdqAcct, nil, all, true, false, "ext4 at /srv (/dev/sdb1) counts project usage but does not enforce limits: add prjquota"},
		{"ext4 without features", dev, ext4, 0, enosys, all, false, false, "needs the quota and project features"},
		{"no quotactl", dev, ext4, 0, enosys, syscalls{quotactlFd: true}, false, false, "this kernel has no quota support"},
		{"no device, no quotactl_fd", Info{}, xfs, 0, enosys, syscalls{quotactl: true}, false, false, "/dev has no node for its device 254:2 and this kernel has no quotactl_fd(2)"},
		{"refused", dev, xfs, 0, &callError{call: "quotactl", err: unix.EPERM}, all, false, false, "cannot read its quota state: quotactl: operation not permitted"},
	} {
		acct, project, reason := judge(c.info, c.m, c.flags, c.err, c.sc)
		if acct != c.acct || project != c.project || (c.reason == "") != (reason == "") || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: %t, %t, %q; want %t, %t, %q", c.name, acct, project, reason, c.acct, c.project, c.reason)
		}
	}
}

// Detect on this machine: the tenants' homes (or a temporary directory
// where there is no /srv/www) on whatever file system holds them. The
// machines the unit tests run on have no project quota there (the VM
// test has); whatever the answer, it is consistent and worded.
func TestDetectHere(t *testing.T) {
	path := "/srv/www"
	if _, err := os.Stat(path); err != nil {
		path = t.TempDir()
	}
	info, err := Detect("/proc/self/mountinfo", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", info)
	if info.MountPoint == "" || info.FSType == "" || info.Dev == "" || !filepath.IsAbs(info.Path) {
		t.Errorf("Detect(%s) = %+v", path, info)
	}
	if info.Project == (info.Reason != "") || (info.Project && !info.Accounting) {
		t.Errorf("Detect(%s) = %+v: Project and Reason disagree", path, info)
	}
	if !info.Project && !strings.Contains(info.Reason, info.FSType+" at "+info.MountPoint) {
		t.Errorf("Detect(%s): reason %q does not name the file system", path, info.Reason)
	}
	if !info.Project {
		if err := SetLimit(info, 20001, Limit{Bytes: 1 << 20}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), info.Reason) {
			t.Errorf("SetLimit: %v, want ErrUnsupported with the reason", err)
		}
	}

	// /proc never has project quota.
	info, err = Detect("/proc/self/mountinfo", "/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if info.Project || info.FSType != "proc" || !strings.HasPrefix(info.Reason, "proc at /proc has no project quota; use XFS") {
		t.Errorf("Detect(/proc/self) = %+v", info)
	}
}

func TestDetectErrors(t *testing.T) {
	if _, err := Detect("/proc/self/mountinfo", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Detect of a missing path: %v", err)
	}
	if _, err := Detect(filepath.Join(t.TempDir(), "missing"), "/"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Detect with a missing mountinfo: %v", err)
	}
	// Another mount namespace's mountinfo: the device numbers disagree.
	other := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(other, []byte("1 0 4095:1048575 / / rw - xfs /dev/nowhere rw,prjquota\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Detect(other, "/"); err == nil || !strings.Contains(err.Error(), "another mount namespace") {
		t.Errorf("Detect with another namespace's mountinfo: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(bad, []byte("not mountinfo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Detect(bad, "/"); !errors.Is(err, ErrParse) {
		t.Errorf("Detect with a bad mountinfo: %v", err)
	}
}

func readMounts(t *testing.T, name string) []mountinfo.Mount {
	t.Helper()
	mounts, err := mountinfo.Read(filepath.Join("..", "mountinfo", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

// detect finds the mount of a path from mountinfo alone, and says why a
// file system has no project quota before asking the kernel.
func TestDetectFromMountinfo(t *testing.T) {
	for _, c := range []struct {
		file, path     string
		point, fs, dev string
		reason         string // a part of Reason; "" for none
	}{
		{"debian.txt", "/srv/www/acme", "/srv/www", "ext4", "8:17", ""},
		{"debian.txt", "/srv/www", "/srv/www", "ext4", "8:17", ""},
		{"debian.txt", "/srv/wwwx", "/srv", "xfs", "254:2", ""},
		{"debian.txt", "/srv", "/srv", "xfs", "254:2", ""},
		{"debian.txt", "/srv/www/acme/tmp/x", "/srv/www/acme/tmp", "tmpfs", "0:40",
			"tmpfs at /srv/www/acme/tmp has no project quota; use XFS mounted with prjquota, or ext4 made with -O quota,project and mounted with prjquota"},
		{"debian.txt", "/var/lib/wcp360/x", "/var/lib/wcp360", "btrfs", "8:33", "btrfs at /var/lib/wcp360 has qgroups, not project quota"},
		{"debian.txt", "/home/x", "/", "ext4", "8:1", ""},
		{"debian.txt", "/", "/", "ext4", "8:1", ""},
		// Stacked: the XFS mounted over the tmpfs is what holds the path.
		{"debian.txt", "/mnt/backup/a", "/mnt/backup", "xfs", "8:49", ""},
		{"debian.txt", "/mnt/with space/a", "/mnt/with space", "xfs", "8:65", ""},
		{"container.txt", "/srv/www/acme", "/srv/www", "xfs", "254:2", ""},
		{"container.txt", "/etc/resolv.conf", "/etc/resolv.conf", "ext4", "254:0", ""},
		{"container.txt", "/srv", "/", "overlay", "0:58", "overlay at / has no project quota"},
	} {
		info, _, err := detect(readMounts(t, c.file), c.path)
		if err != nil {
			t.Errorf("%s %s: %v", c.file, c.path, err)
			continue
		}
		if info.Path != c.path || info.MountPoint != c.point || info.FSType != c.fs || info.Dev != c.dev ||
			(c.reason == "") != (info.Reason == "") || !strings.Contains(info.Reason, c.reason) {
			t.Errorf("%s %s: %+v; want mount point %s, %s on %s, reason %q", c.file, c.path, info, c.point, c.fs, c.dev, c.reason)
		}
	}
	if _, _, err := detect(readMounts(t, "container.txt")[1:], "/srv"); err == nil {
		t.Error("detect without a / mount: no error")
	}
}
