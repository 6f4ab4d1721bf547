package quota

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/testutil/tenantio"
	"github.com/wcp360/wcp360/internal/testutil/vm"
)

// tenant is the uid (and gid, and project id) of the kernel tests' tenant.
const tenant = 20001

// blk is the block size of the VM's file systems (mkfs defaults).
const blk = 4096

// The test binary is also the tenant's process in the kernel tests
// (tenantio).
func TestMain(m *testing.M) {
	if code, exit := tenantio.Main(); exit {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// asTenant runs role (tenantio.Fill, tenantio.Touch) as the tenant's uid
// and gid, and returns what it reports.
func asTenant(t *testing.T, r, path string, n uint64) (uint64, string) {
	t.Helper()
	return tenantio.Run(t, tenant, r, path, n)
}

// kernelFS is one file system the kernel tests put project quota on, and
// what its kernel does at the limit.
type kernelFS struct {
	disk, fstype string
	// full is the errno of a write past a project limit: XFS says ENOSPC
	// (the project is a "directory tree" whose space ran out), ext4 EDQUOT.
	full string
	// rootBound: root is held to the limit too (XFS); ext4 lets
	// CAP_SYS_RESOURCE through.
	rootBound bool
}

// TestKernelQuota boots one VM with an XFS and an ext4 disk (made with the
// quota and project features) and a blank one, and checks, on the real
// kernel, all that this package does: Detect, SetProject (and its walk),
// SetLimit, Get, Observe and Ensure, against what a tenant's process can
// and cannot write.
func TestKernelQuota(t *testing.T) {
	if vm.Run(t, vm.Options{Disks: []vm.Disk{
		{Name: "xfs", FS: vm.XFS, SizeMiB: 320},
		// 512 MiB: mkfs.ext4 makes 1 KiB blocks on smaller disks.
		{Name: "ext4", FS: vm.Ext4Quota, SizeMiB: 512},
		{Name: "blank", FS: vm.Raw, SizeMiB: 16},
	}}) {
		return
	}
	for _, fs := range []kernelFS{
		{disk: "xfs", fstype: "xfs", full: "ENOSPC", rootBound: true},
		{disk: "ext4", fstype: "ext4", full: "EDQUOT", rootBound: false},
	} {
		t.Run(fs.fstype, func(t *testing.T) { testFS(t, fs) })
	}
	// After the subtests above, which unmount their disks.
	t.Run("without prjquota", testWithoutPrjquota)
	t.Run("ext4 without quota features", testExt4NoFeatures)
	t.Run("tmpfs", testTmpfs)
}

// mountDisk mounts the VM's disk on a new directory, unmounted when the
// test ends.
func mountDisk(t *testing.T, disk, fstype, opts string) string {
	t.Helper()
	dir := openDir(t)
	if err := unix.Mount(vm.Device(t, disk), dir, fstype, 0, opts); err != nil {
		t.Fatalf("mount %s (%s) on %s -o %q: %v", disk, fstype, dir, opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// openDir makes an empty directory the tenant can reach (t.TempDir's
// parent is 0700), removed when the test ends.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/mnt", "quota")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	return dir
}

func mustDetect(t *testing.T, path string) Info {
	t.Helper()
	info, err := Detect("/proc/self/mountinfo", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Detect: %s", info)
	return info
}

func mustGet(t *testing.T, info Info) Usage {
	t.Helper()
	u, err := Get(info, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func testFS(t *testing.T, fs kernelFS) {
	mnt := mountDisk(t, fs.disk, fs.fstype, "prjquota")
	info := mustDetect(t, mnt)
	want := Info{Path: mnt, MountPoint: mnt, FSType: fs.fstype, Dev: info.Dev, Device: vm.Device(t, fs.disk), BlockSize: blk, Accounting: true, Project: true}
	if d := cmp.Diff(want, info); d != "" {
		t.Fatalf("Detect(%s) (-want +got):\n%s", mnt, d)
	}
	if u := mustGet(t, info); u != (Usage{}) {
		t.Errorf("Get of an unused project = %+v, want zero", u)
	}

	// A home with what a tenant's home may already hold.
	home := filepath.Join(mnt, "home")
	mkdirAs(t, home, tenant)
	mkdirAs(t, filepath.Join(home, "sub"), tenant)
	pre := filepath.Join(home, "sub", "pre")
	if err := os.WriteFile(pre, make([]byte, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	chown(t, pre, tenant)
	if err := os.Symlink("/etc", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(home, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(home, "mnt")
	mkdirAs(t, inner, 0)
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(inner, 0) })
	// A file outside the home, in project 0, for the EXDEV check.
	outside := filepath.Join(mnt, "outside")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("SetProject", func(t *testing.T) {
		ch, err := SetProject(home, tenant)
		if err != nil {
			t.Fatal(err)
		}
		wantCh := Changes{Changed: 3, Skipped: 3, ChangedPaths: []string{".", "sub", "sub/pre"},
			SkippedPaths: []string{"fifo (fifo)", "link (symlink)", "mnt (on another file system)"}}
		if d := cmp.Diff(wantCh, sortedChanges(ch)); d != "" {
			t.Errorf("SetProject (-want +got):\n%s", d)
		}
		for _, c := range []struct {
			path    string
			inherit bool
		}{{home, true}, {filepath.Join(home, "sub"), true}, {pre, false}} {
			id, inherit, err := ProjectOf(c.path)
			if err != nil || id != tenant || inherit != c.inherit {
				t.Errorf("ProjectOf(%s) = %d, %t, %v; want %d, %t", c.path, id, inherit, err, tenant, c.inherit)
			}
		}
		// The kernel moved the existing file's blocks and the three inodes
		// to the project.
		u := mustGet(t, info)
		if u.Inodes != 3 || u.Bytes < 100<<10 || u.Bytes > 100<<10+3*blk {
			t.Errorf("Get after SetProject = %+v, want 3 inodes and 100 KiB (+ a block or so per directory)", u)
		}
		// Idempotent.
		if ch, err := SetProject(home, tenant); err != nil || ch.Changed != 0 || ch.Skipped != 3 {
			t.Errorf("SetProject again = %+v, %v; want nothing changed", ch, err)
		}
	})

	t.Run("inherit", func(t *testing.T) {
		d := filepath.Join(home, "sub", "made")
		mkdirAs(t, d, tenant)
		f := filepath.Join(d, "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			path    string
			inherit bool
		}{{d, true}, {f, false}} {
			if id, inherit, err := ProjectOf(c.path); err != nil || id != tenant || inherit != c.inherit {
				t.Errorf("ProjectOf(%s) made after SetProject = %d, %t, %v; want %d, %t", c.path, id, inherit, err, tenant, c.inherit)
			}
		}
		// Another project's file cannot be moved or linked in: mv copies.
		for name, op := range map[string]func(string, string) error{"rename": os.Rename, "link": os.Link} {
			var errno syscall.Errno
			if err := op(outside, filepath.Join(home, "in")); !errors.As(err, &errno) || errno != unix.EXDEV {
				t.Errorf("%s of a project 0 file into the home: %v, want EXDEV", name, err)
			}
		}
		for _, p := range []string{f, d} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("bytes", func(t *testing.T) {
		const limit = 8 << 20
		if err := SetLimit(info, tenant, Limit{Bytes: limit, Inodes: 100}); err != nil {
			t.Fatal(err)
		}
		if u := mustGet(t, info); u.Limit != (Limit{Bytes: limit, Inodes: 100}) || u.Soft != (Limit{}) {
			t.Fatalf("Get after SetLimit = %+v", u)
		}
		base := mustGet(t, info).Bytes
		big := filepath.Join(home, "sub", "big")
		n, errno := asTenant(t, tenantio.Fill, big, 2*limit)
		used := mustGet(t, info).Bytes
		t.Logf("the tenant wrote %d bytes over %d used, stopped by %s; Get says %d used of %d", n, base, errno, used, limit)
		if errno != fs.full {
			t.Errorf("writing past the limit failed with %s, want %s", errno, fs.full)
		}
		// It stops within a chunk of the limit, and Get counts what was
		// written, in whole blocks.
		if base+n > limit || base+n < limit-tenantio.Chunk {
			t.Errorf("the tenant could write %d bytes over %d: want up to the %d limit, within %d", n, base, limit, tenantio.Chunk)
		}
		if used < base+n || used > base+roundUp(n, blk)+blk {
			t.Errorf("Get = %d bytes used after writing %d over %d", used, n, base)
		}
		// XFS holds root to a project limit, ext4 lets root through.
		rootFile := filepath.Join(home, "root")
		err := os.WriteFile(rootFile, make([]byte, tenantio.Chunk), 0o644)
		if fs.rootBound && (err == nil || !strings.Contains(err.Error(), "no space left")) {
			t.Errorf("root writing past the limit: %v, want ENOSPC", err)
		}
		if !fs.rootBound && err != nil {
			t.Errorf("root writing past the limit: %v, want it through (CAP_SYS_RESOURCE)", err)
		}
		if err := os.Remove(rootFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}

		// Raising the limit lets the tenant write on.
		if err := SetLimit(info, tenant, Limit{Bytes: 2 * limit, Inodes: 100}); err != nil {
			t.Fatal(err)
		}
		before := mustGet(t, info).Bytes
		if n, errno := asTenant(t, tenantio.Fill, big, 4<<20); n != 4<<20 || errno != "none" {
			t.Errorf("after raising the limit, the tenant wrote %d of %d bytes (%s)", n, 4<<20, errno)
		}
		if after := mustGet(t, info).Bytes; after < before+4<<20 || after > before+4<<20+2*blk {
			t.Errorf("Get = %d bytes after writing 4 MiB over %d", after, before)
		}
		if id, inherit, err := ProjectOf(big); err != nil || id != tenant || inherit {
			t.Errorf("ProjectOf(the tenant's file) = %d, %t, %v", id, inherit, err)
		}
	})

	t.Run("inodes", func(t *testing.T) {
		have := mustGet(t, info).Inodes
		n, errno := asTenant(t, tenantio.Touch, filepath.Join(home, "sub"), 1000)
		if n != 100-have || errno != fs.full {
			t.Errorf("the tenant made %d files (%s) over %d inodes; want %d, then %s", n, errno, have, 100-have, fs.full)
		}
		if u := mustGet(t, info); u.Inodes != 100 {
			t.Errorf("Get = %+v, want 100 inodes", u)
		}
	})

	t.Run("units", func(t *testing.T) {
		// Bytes are rounded up to the block size.
		if err := SetLimit(info, tenant, Limit{Bytes: 32<<20 + 1, Inodes: 1000}); err != nil {
			t.Fatal(err)
		}
		x, err := info.getXFS(tenant)
		if err != nil {
			t.Fatal(err)
		}
		v, err := info.getVFS(tenant)
		if err != nil {
			t.Fatal(err)
		}
		if x.Limit != (Limit{Bytes: 32<<20 + blk, Inodes: 1000}) {
			t.Errorf("the limit 32 MiB + 1 byte is %+v, want %d bytes", x.Limit, 32<<20+blk)
		}
		// XFS's interface (512-byte basic blocks) and the VFS one (1 KiB
		// blocks for limits, bytes for usage) say the same.
		if x != v {
			t.Errorf("Q_XGETQUOTA says %+v, Q_GETQUOTA %+v", x, v)
		}
		if x.Bytes%blk != 0 {
			t.Errorf("usage %d is not in whole blocks", x.Bytes)
		}
	})

	t.Run("quotactl_fd", func(t *testing.T) {
		byFd := info
		byFd.Device = ""
		u, err := Get(byFd, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if byDev := mustGet(t, info); u != byDev {
			t.Errorf("Get through quotactl_fd = %+v, through %s %+v", u, info.Device, byDev)
		}
		if err := SetLimit(byFd, tenant, Limit{Bytes: 48 << 20, Inodes: 1000}); err != nil {
			t.Fatal(err)
		}
		if u := mustGet(t, info); u.Limit.Bytes != 48<<20 {
			t.Errorf("SetLimit through quotactl_fd: %+v", u)
		}
	})

	t.Run("Observe", func(t *testing.T) {
		want := Limit{Bytes: 64<<20 + 1, Inodes: 1000}
		diffs, _, err := Ensure(info, home, tenant, want)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]host.Difference{{Field: FieldBytes, Want: strconv.Itoa(64<<20 + blk), Have: strconv.Itoa(48 << 20)}}, diffs); d != "" {
			t.Errorf("Ensure (-want +got):\n%s", d)
		}
		if diffs, err := Observe(info, home, tenant, want); err != nil || len(diffs) != 0 {
			t.Errorf("Observe after Ensure = %v, %v", diffs, err)
		}
		// Changed by hand: chattr -p 0 on the home, a soft limit.
		fd, err := unix.Open(home, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		x, err := getXattr(fd)
		if err == nil {
			x.projid, x.xflags = 0, x.xflags&^fsXflagProjInherit
			err = setXattr(fd, x)
		}
		_ = unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		setSoft(t, info, 1<<20)
		wantDiffs := []host.Difference{
			{Field: FieldProject, Want: strconv.Itoa(tenant), Have: "0"},
			{Field: FieldInherit, Want: "true", Have: "false"},
			{Field: FieldSoftBytes, Want: "none", Have: strconv.Itoa(1 << 20)},
		}
		if diffs, err := Observe(info, home, tenant, want); err != nil || !cmp.Equal(wantDiffs, diffs) {
			t.Errorf("Observe after chattr -p and a soft limit = %v, %v; want %v", diffs, err, wantDiffs)
		}
		diffs, ch, err := Ensure(info, home, tenant, want)
		if err != nil || !cmp.Equal(wantDiffs, diffs) || ch.Changed != 1 {
			t.Errorf("Ensure = %v, %+v, %v; want %v and the home set again", diffs, ch, err, wantDiffs)
		}
		if diffs, ch, err := Ensure(info, home, tenant, want); err != nil || len(diffs) != 0 || ch.Changed != 0 {
			t.Errorf("Ensure again = %v, %+v, %v; want nothing", diffs, ch, err)
		}
	})
}

// setSoft sets a soft byte limit on the tenant's project as an admin would
// by hand (setquota, xfs_quota), keeping the hard limits.
func setSoft(t *testing.T, info Info, soft uint64) {
	t.Helper()
	u := mustGet(t, info)
	var err error
	switch info.FSType {
	case "xfs":
		d := xfsLimit(tenant, u.Limit)
		d.blkSoftlimit = soft / bbSize
		err = ctl(info, qcmd(qXSetQLim, xqmPrjQuota), tenant, &d)
	default:
		d := vfsLimit(u.Limit)
		d.bsoftlimit = soft / qifDqblkSize
		err = ctl(info, qcmd(qSetQuota, prjQuota), tenant, &d)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func testWithoutPrjquota(t *testing.T) {
	for _, c := range []struct {
		disk, fstype string
		acct         bool
		reason       string
	}{
		// XFS without quota options has no quota at all.
		{"xfs", "xfs", false, "is mounted without project quota: add prjquota"},
		// ext4 with the quota feature counts usage from the first mount;
		// prjquota turns enforcement on.
		{"ext4", "ext4", true, "counts project usage but does not enforce limits"},
	} {
		mnt := mountDisk(t, c.disk, c.fstype, "")
		info := mustDetect(t, mnt)
		if info.Project || info.Accounting != c.acct || !strings.Contains(info.Reason, c.reason) {
			t.Errorf("Detect(%s without prjquota) = %+v; want Accounting %t and a reason with %q", c.fstype, info, c.acct, c.reason)
		}
		if err := SetLimit(info, tenant, Limit{Bytes: 1 << 20}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("SetLimit on %s without prjquota: %v, want ErrUnsupported", c.fstype, err)
		}
		if _, err := Observe(info, filepath.Join(mnt, "home"), tenant, Limit{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Observe on %s without prjquota: %v, want ErrUnsupported", c.fstype, err)
		}
		if c.acct {
			// The usage of the fill tests is still counted.
			if u, err := Get(info, tenant); err != nil || u.Inodes != 100 {
				t.Errorf("Get on %s without prjquota = %+v, %v; want the 100 inodes of before", c.fstype, u, err)
			}
		}
		// A remount with prjquota does not turn enforcement on (ext4) or
		// quotas at all (XFS): it takes a mount.
		err := unix.Mount(vm.Device(t, c.disk), mnt, c.fstype, unix.MS_REMOUNT, "prjquota")
		if info := mustDetect(t, mnt); info.Project {
			t.Errorf("%s remounted with prjquota (%v): %+v, want no enforcement yet", c.fstype, err, info)
		}
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(vm.Device(t, c.disk), mnt, c.fstype, 0, "prjquota"); err != nil {
			t.Fatal(err)
		}
		if info := mustDetect(t, mnt); !info.Project {
			t.Errorf("%s mounted again with prjquota: %+v", c.fstype, info)
		}
	}
}

// testExt4NoFeatures: ext4 made without the quota and project features
// (busybox's mke2fs, the one in the VM, knows none) counts nothing, and
// refuses project ids.
func testExt4NoFeatures(t *testing.T) {
	dev := vm.Device(t, "blank")
	if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "/bin/mke2fs", Args: []string{"-F", dev}}); err != nil {
		t.Fatal(err)
	}
	mnt := mountDisk(t, "blank", "ext4", "")
	info := mustDetect(t, mnt)
	if info.Project || info.Accounting || !strings.Contains(info.Reason, "needs the quota and project features") {
		t.Errorf("Detect(ext4 without features) = %+v", info)
	}
	d := filepath.Join(mnt, "home")
	mkdirAs(t, d, tenant)
	if _, err := SetProject(d, tenant); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SetProject on ext4 without the project feature: %v, want ErrUnsupported", err)
	}
}

func testTmpfs(t *testing.T) {
	d := t.TempDir() // /tmp is tmpfs in the VM
	info := mustDetect(t, d)
	if info.Project || info.FSType != "tmpfs" || !strings.Contains(info.Reason, "tmpfs at /tmp has no project quota; use XFS") {
		t.Errorf("Detect(%s) = %+v", d, info)
	}
	if _, err := SetProject(d, tenant); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SetProject on tmpfs: %v, want ErrUnsupported", err)
	}
	if _, err := Get(info, tenant); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Get on tmpfs: %v, want ErrUnsupported", err)
	}
}

func mkdirAs(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, dir, uid)
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// sortedChanges sorts the example paths, which come in directory order.
func sortedChanges(c Changes) Changes {
	slices.Sort(c.ChangedPaths)
	slices.Sort(c.SkippedPaths)
	return c
}
