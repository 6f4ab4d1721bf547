package isolation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/quota"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/tenantio"
	"github.com/wcp360/wcp360/internal/testutil/vm"
)

// quotaTenant is the uid (and gid, and so the project id) of the kernel
// test's tenant, "acme".
const quotaTenant = 20001

// quotaBlk is the block size of the VM's file systems (mkfs defaults).
const quotaBlk = 4096

// The spec's disk limits, and what they are in bytes (whole blocks: no
// rounding).
const (
	specLimits  = `{"limits":{"disk":{"bytes":"8Mi","inodes":100}}}`
	specRaised  = `{"limits":{"disk":{"bytes":"16Mi","inodes":100}}}`
	limitBytes  = 8 << 20
	raisedBytes = 16 << 20
)

// quotaStepFS is a file system the Quota step keeps project quotas on, and
// the errno of a write past a project's limit: XFS says ENOSPC, ext4 EDQUOT.
type quotaStepFS struct{ disk, fstype, full string }

// TestKernelQuotaStep boots one VM with an XFS and an ext4 disk (the latter
// made with the quota and project features) and runs the Tenant
// controller's DiskQuota step on them as the controller would: Observe,
// Apply, ReportStatus and Remove on a tenant's row, against what the
// tenant's process can write, drift made by hand and a raised limit; then
// on file systems without project quota (tmpfs, XFS and ext4 mounted
// without prjquota), where it changes nothing and says why.
func TestKernelQuotaStep(t *testing.T) {
	if vm.Run(t, vm.Options{Disks: []vm.Disk{
		{Name: "xfs", FS: vm.XFS, SizeMiB: 320},
		// 512 MiB: mkfs.ext4 makes 1 KiB blocks on smaller disks.
		{Name: "ext4", FS: vm.Ext4Quota, SizeMiB: 512},
	}}) {
		return
	}
	now := time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, fs := range []quotaStepFS{
		{disk: "xfs", fstype: "xfs", full: "ENOSPC"},
		{disk: "ext4", fstype: "ext4", full: "EDQUOT"},
	} {
		t.Run(fs.fstype, func(t *testing.T) { testQuotaStep(t, fs, now) })
	}
	// After the subtests above, which unmount their disks.
	t.Run("without project quota", func(t *testing.T) { testQuotaStepUnsupported(t, now) })
}

func testQuotaStep(t *testing.T, fs quotaStepFS, now time.Time) {
	ctx := t.Context()
	root := mountQuotaDisk(t, fs.disk, fs.fstype, "prjquota")
	info, err := quota.Detect("/proc/self/mountinfo", root)
	if err != nil || !info.Project {
		t.Fatalf("Detect(%s) = %s, %v; want project quota", root, info, err)
	}
	// The home as the account part makes it, with a file already in it.
	home := filepath.Join(root, "acme")
	mkdirOwned(t, home, quotaTenant)
	pre := filepath.Join(home, "pre")
	if err := os.WriteFile(pre, make([]byte, 100<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	chownTenant(t, pre, quotaTenant)

	q := &Quota{WWWRoot: root, Clock: func() time.Time { return now }}
	row := quotaRow(t, home, specLimits, 1)

	// A new home: not in the project, no limits.
	observeQuota(t, q, row, []host.Difference{
		{Field: quota.FieldProject, Want: strconv.Itoa(quotaTenant), Have: "0"},
		{Field: quota.FieldInherit, Want: "true", Have: "false"},
		{Field: quota.FieldBytes, Want: strconv.Itoa(limitBytes), Have: "none"},
		{Field: quota.FieldInodes, Want: "100", Have: "none"},
	})
	applyQuota(t, q, row)
	observeQuota(t, q, row, nil)
	for _, c := range []struct {
		path    string
		inherit bool
	}{{home, true}, {pre, false}} {
		if id, inherit, err := quota.ProjectOf(c.path); err != nil || id != quotaTenant || inherit != c.inherit {
			t.Errorf("ProjectOf(%s) after Apply = %d, %t, %v; want %d, %t", c.path, id, inherit, err, quotaTenant, c.inherit)
		}
	}

	st := reportQuota(t, q, row)
	d := *st.Resources.Disk
	// The pre-existing file, and on ext4 a block for the directory.
	if d.UsedBytes < 100<<10 || d.UsedBytes > 100<<10+2*quotaBlk {
		t.Errorf("UsedBytes = %d, want the 100 KiB file (+ a block or two)", d.UsedBytes)
	}
	wantDisk := v1alpha1.DiskStatus{Quota: true, FileSystem: fs.fstype + " " + root, Project: quotaTenant,
		UsedBytes: d.UsedBytes, UsedInodes: 2, LimitBytes: limitBytes, LimitInodes: 100}
	if diff := cmp.Diff(wantDisk, d); diff != "" {
		t.Errorf("status.resources.disk after Apply (-want +got):\n%s", diff)
	}
	if !st.Resources.ObservedAt.Equal(now) {
		t.Errorf("status.resources.observedAt = %s, want the clock's %s", st.Resources.ObservedAt, now)
	}
	if c, ok := conditions.Get(st.Conditions, ConditionDiskQuota); ok {
		t.Errorf("ReportStatus on %s with project quota set %+v, want no DiskQuota condition (the controller's)", fs.fstype, c)
	}

	t.Run("limit", func(t *testing.T) {
		base := d.UsedBytes
		big := filepath.Join(home, "big")
		n, errno := fillAsTenant(t, big, 2*limitBytes)
		st := reportQuota(t, q, row)
		d := *st.Resources.Disk
		t.Logf("the tenant wrote %d bytes over %d used, stopped by %s; status says %d bytes, %d inodes used of %d",
			n, base, errno, d.UsedBytes, d.UsedInodes, d.LimitBytes)
		if errno != fs.full {
			t.Errorf("writing past the limit failed with %s, want %s", errno, fs.full)
		}
		if base+n > limitBytes || base+n < limitBytes-tenantio.Chunk {
			t.Errorf("the tenant could write %d bytes over %d: want up to the %d limit, within %d", n, base, limitBytes, tenantio.Chunk)
		}
		if d.UsedBytes < base+n || d.UsedBytes > base+roundUp(n, quotaBlk)+quotaBlk || d.UsedBytes > limitBytes {
			t.Errorf("UsedBytes = %d after writing %d over %d, want that (in whole blocks) and at most the limit", d.UsedBytes, n, base)
		}
		if d.UsedInodes != 3 || d.LimitBytes != limitBytes || d.LimitInodes != 100 || !d.Quota {
			t.Errorf("status.resources.disk = %+v, want 3 inodes used and the limits", d)
		}
		u, err := quota.Get(info, quotaTenant)
		if err != nil {
			t.Fatal(err)
		}
		if u.Bytes != d.UsedBytes || u.Inodes != d.UsedInodes {
			t.Errorf("the kernel says %+v, the status %+v", u, d)
		}
		if got := q.Usage(); !cmp.Equal(map[string]quota.Usage{"acme": u}, got) {
			t.Errorf("Usage() = %+v, want acme: %+v", got, u)
		}
	})

	t.Run("drift", func(t *testing.T) {
		// chattr -p 0 on the home by hand; a file made meanwhile is in
		// project 0.
		clearProject(t, home)
		during := filepath.Join(home, "during")
		if err := os.WriteFile(during, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if id, _, err := quota.ProjectOf(during); err != nil || id != 0 {
			t.Fatalf("ProjectOf(a file made in the cleared home) = %d, %v; want 0", id, err)
		}
		observeQuota(t, q, row, []host.Difference{
			{Field: quota.FieldProject, Want: strconv.Itoa(quotaTenant), Have: "0"},
			{Field: quota.FieldInherit, Want: "true", Have: "false"},
		})
		applyQuota(t, q, row)
		observeQuota(t, q, row, nil)
		for _, c := range []struct {
			path    string
			inherit bool
		}{{home, true}, {during, false}} {
			if id, inherit, err := quota.ProjectOf(c.path); err != nil || id != quotaTenant || inherit != c.inherit {
				t.Errorf("ProjectOf(%s) after Apply = %d, %t, %v; want %d, %t", c.path, id, inherit, err, quotaTenant, c.inherit)
			}
		}
		if d := reportQuota(t, q, row).Resources.Disk; d.UsedInodes != 4 {
			t.Errorf("status.resources.disk = %+v after Apply, want the file made meanwhile counted (4 inodes)", d)
		}
	})

	t.Run("raised", func(t *testing.T) {
		row := row
		row.Spec, row.Generation = json.RawMessage(specRaised), 2
		observeQuota(t, q, row, []host.Difference{
			{Field: quota.FieldBytes, Want: strconv.Itoa(raisedBytes), Have: strconv.Itoa(limitBytes)},
		})
		applyQuota(t, q, row)
		observeQuota(t, q, row, nil)
		before := reportQuota(t, q, row).Resources.Disk.UsedBytes
		if n, errno := fillAsTenant(t, filepath.Join(home, "big"), 4<<20); n != 4<<20 || errno != "none" {
			t.Errorf("after raising the limit, the tenant wrote %d of %d bytes (%s)", n, 4<<20, errno)
		}
		d := reportQuota(t, q, row).Resources.Disk
		if d.LimitBytes != raisedBytes || d.UsedBytes < before+4<<20 || d.UsedBytes > before+4<<20+2*quotaBlk {
			t.Errorf("status.resources.disk = %+v after writing 4 MiB over %d, want that used of %d", d, before, raisedBytes)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		row := row
		row.Spec, row.Generation = json.RawMessage(specRaised), 2
		// A row that never had an account never had a project: nothing to
		// clear.
		noAccount := row
		noAccount.Status = nil
		if err := q.Remove(ctx, noAccount); err != nil {
			t.Errorf("Remove(a row without an account) = %v", err)
		}
		if u, err := quota.Get(info, quotaTenant); err != nil || u.Limit.Bytes != raisedBytes {
			t.Errorf("Get after Remove(a row without an account) = %+v, %v; want the limit kept", u, err)
		}

		if err := q.Remove(ctx, row); err != nil {
			t.Fatalf("Remove = %v", err)
		}
		u, err := quota.Get(info, quotaTenant)
		if err != nil || u.Limit != (quota.Limit{}) || u.Soft != (quota.Limit{}) {
			t.Errorf("Get after Remove = %+v, %v; want no limits", u, err)
		}
		if got := q.Usage(); len(got) != 0 {
			t.Errorf("Usage() after Remove = %+v, want none", got)
		}
		// Past the old limit now.
		if n, errno := fillAsTenant(t, filepath.Join(home, "big"), 8<<20); n != 8<<20 || errno != "none" {
			t.Errorf("after Remove, the tenant wrote %d of %d bytes (%s)", n, 8<<20, errno)
		}
		if u, err := quota.Get(info, quotaTenant); err != nil || u.Bytes <= raisedBytes {
			t.Errorf("Get after writing past the removed limit = %+v, %v", u, err)
		}
		// What the step would set again, were the tenant still there.
		observeQuota(t, q, row, []host.Difference{
			{Field: quota.FieldBytes, Want: strconv.Itoa(raisedBytes), Have: "none"},
			{Field: quota.FieldInodes, Want: "100", Have: "none"},
		})
	})
}

// testQuotaStepUnsupported runs the step where the homes' file system has
// no project quota: it changes nothing, reports why, and marks DiskQuota
// False (QuotaUnsupported) only when the spec asks for disk limits.
func testQuotaStepUnsupported(t *testing.T, now time.Time) {
	for _, c := range []struct {
		name   string
		root   func(t *testing.T) string
		fstype string
		// acct: the kernel counts project usage all the same, and the
		// status shows it.
		acct   bool
		reason string
	}{
		// /tmp is tmpfs in the VM.
		{"tmpfs", func(t *testing.T) string { return t.TempDir() }, "tmpfs", false, "has no project quota"},
		// The disks of testQuotaStep, the homes still on them.
		{"xfs without prjquota", func(t *testing.T) string { return mountQuotaDisk(t, "xfs", "xfs", "") },
			"xfs", false, "is mounted without project quota: add prjquota"},
		{"ext4 without prjquota", func(t *testing.T) string { return mountQuotaDisk(t, "ext4", "ext4", "") },
			"ext4", true, "counts project usage but does not enforce limits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			root := c.root(t)
			home := filepath.Join(root, "acme")
			if err := os.MkdirAll(home, 0o755); err != nil {
				t.Fatal(err)
			}
			chownTenant(t, home, quotaTenant)
			info, err := quota.Detect("/proc/self/mountinfo", root)
			if err != nil {
				t.Fatal(err)
			}
			if info.Project || info.FSType != c.fstype || info.Accounting != c.acct || !strings.Contains(info.Reason, c.reason) {
				t.Fatalf("Detect(%s) = %+v; want %s, Accounting %t and a reason with %q", root, info, c.fstype, c.acct, c.reason)
			}
			wantDisk := v1alpha1.DiskStatus{Reason: info.Reason, FileSystem: info.FSType + " " + info.MountPoint}
			if c.acct {
				u, err := quota.Get(info, quotaTenant)
				if err != nil || u.Inodes == 0 {
					t.Fatalf("Get on %s = %+v, %v; want the usage of before", c.name, u, err)
				}
				wantDisk.Project, wantDisk.UsedBytes, wantDisk.UsedInodes = quotaTenant, u.Bytes, u.Inodes
			}
			q := &Quota{WWWRoot: root, Clock: func() time.Time { return now }}

			row := quotaRow(t, home, specLimits, 1)
			if diffs, err := q.Observe(ctx, row); diffs != nil || err != nil {
				t.Errorf("Observe = %v, %v; want nothing to compare", diffs, err)
			}
			if snap, err := q.Apply(ctx, row, nil); snap != "" || err != nil {
				t.Errorf("Apply = %q, %v; want nothing done", snap, err)
			}
			st := reportQuota(t, q, row)
			if diff := cmp.Diff(wantDisk, *st.Resources.Disk); diff != "" {
				t.Errorf("status.resources.disk (-want +got):\n%s", diff)
			}
			wantCond := v1alpha1.Condition{Type: ConditionDiskQuota, Status: v1alpha1.ConditionFalse, Reason: ReasonQuotaUnsupported,
				Message: "spec.limits.disk is not enforced: " + info.Reason, LastTransitionTime: now, ObservedGeneration: 1}
			if diff := cmp.Diff([]v1alpha1.Condition{wantCond}, st.Conditions); diff != "" {
				t.Errorf("conditions with disk limits in the spec (-want +got):\n%s", diff)
			}

			// No disk limits asked: nothing is missing.
			row = quotaRow(t, home, `{}`, 2)
			st = reportQuota(t, q, row)
			if diff := cmp.Diff(wantDisk, *st.Resources.Disk); diff != "" {
				t.Errorf("status.resources.disk without disk limits (-want +got):\n%s", diff)
			}
			if len(st.Conditions) != 0 {
				t.Errorf("conditions without disk limits in the spec = %+v, want none", st.Conditions)
			}
			if err := q.Remove(ctx, row); err != nil {
				t.Errorf("Remove = %v", err)
			}
		})
	}
}

// quotaRow is the tenant acme's row as the Quota step gets it: spec, and
// the account the account part reported.
func quotaRow(t *testing.T, home, spec string, generation int64) store.Resource {
	t.Helper()
	st, err := json.Marshal(v1alpha1.Status{Account: &v1alpha1.AccountStatus{
		User: "acme", UID: quotaTenant, GID: quotaTenant, Home: home, Shell: "/usr/sbin/nologin"}})
	if err != nil {
		t.Fatal(err)
	}
	return store.Resource{Kind: v1alpha1.KindTenant, Name: "acme", Tenant: "acme",
		Spec: json.RawMessage(spec), Status: st, Generation: generation}
}

func observeQuota(t *testing.T, q *Quota, row store.Resource, want []host.Difference) {
	t.Helper()
	diffs, err := q.Observe(t.Context(), row)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if len(want) == 0 && len(diffs) == 0 {
		return
	}
	if d := cmp.Diff(want, diffs); d != "" {
		t.Errorf("Observe (-want +got):\n%s", d)
	}
}

func applyQuota(t *testing.T, q *Quota, row store.Resource) {
	t.Helper()
	if snap, err := q.Apply(t.Context(), row, nil); err != nil || snap != "" {
		t.Fatalf("Apply = %q, %v; want no snapshot and no error", snap, err)
	}
}

// reportQuota is ReportStatus into a new status, as the controller
// rebuilds it.
func reportQuota(t *testing.T, q *Quota, row store.Resource) v1alpha1.Status {
	t.Helper()
	var st v1alpha1.Status
	if err := q.ReportStatus(t.Context(), row, &st); err != nil {
		t.Fatalf("ReportStatus: %v", err)
	}
	if st.Resources == nil || st.Resources.Disk == nil {
		t.Fatalf("ReportStatus wrote no status.resources.disk: %+v", st)
	}
	return st
}

// fillAsTenant appends up to n bytes to path as the tenant's uid and gid
// and returns how many it wrote and the errno that stopped it ("none").
func fillAsTenant(t *testing.T, path string, n uint64) (uint64, string) {
	t.Helper()
	return tenantio.Run(t, quotaTenant, tenantio.Fill, path, n)
}

// mountQuotaDisk mounts the VM's disk on a new directory under /mnt,
// which the tenant can reach (t.TempDir's parent is 0700), unmounted and
// removed when the test ends.
func mountQuotaDisk(t *testing.T, disk, fstype, opts string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/mnt", "isolation")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	if err := unix.Mount(vm.Device(t, disk), dir, fstype, 0, opts); err != nil {
		t.Fatalf("mount %s (%s) on %s -o %q: %v", disk, fstype, dir, opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir // the file system's root: 0755, as mkfs makes it
}

func mkdirOwned(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chownTenant(t, dir, uid)
}

func chownTenant(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func roundUp(n, to uint64) uint64 { return (n + to - 1) / to * to }

// fsxattr is struct fsxattr (<linux/fs.h>), which golang.org/x/sys/unix
// lacks: clearProject changes a home as chattr -p would, which the quota
// package (rightly) offers no call for.
type fsxattr struct {
	xflags     uint32
	extsize    uint32
	nextents   uint32
	projid     uint32
	cowextsize uint32
	pad        [8]byte
}

// FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR, _IOR/_IOW('X', 31/32, struct
// fsxattr) in the generic encoding of amd64 and arm64; and
// FS_XFLAG_PROJINHERIT.
const (
	fsIocFSGetXattr    = 2<<30 | unsafe.Sizeof(fsxattr{})<<16 | 'X'<<8 | 31
	fsIocFSSetXattr    = 1<<30 | unsafe.Sizeof(fsxattr{})<<16 | 'X'<<8 | 32
	fsXflagProjInherit = 0x200
)

// The kernel's size of struct fsxattr: a mismatch does not compile.
var (
	_ [unsafe.Sizeof(fsxattr{}) - 28]byte
	_ [28 - unsafe.Sizeof(fsxattr{})]byte
)

// clearProject sets dir's project id to 0 and clears its PROJINHERIT, as
// `chattr -p 0 -P` (or a restore from an archive) would.
func clearProject(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Close(fd) }()
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSGetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		t.Fatalf("FS_IOC_FSGETXATTR %s: %v", dir, e)
	}
	x.projid, x.xflags = 0, x.xflags&^fsXflagProjInherit
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSSetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		t.Fatalf("FS_IOC_FSSETXATTR %s: %v", dir, e)
	}
}
