package quota

import (
	"testing"
	"unsafe"
)

// The kernel's sizes and offsets of the structures this package defines
// (amd64 and arm64; pahole on a 6.1 kernel agrees).
func TestABILayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct fsxattr)", unsafe.Sizeof(fsxattr{}), 28},
		{"offsetof(fsxattr, fsx_projid)", unsafe.Offsetof(fsxattr{}.projid), 12},
		{"sizeof(struct if_dqblk)", unsafe.Sizeof(ifDqblk{}), 72},
		{"offsetof(if_dqblk, dqb_curspace)", unsafe.Offsetof(ifDqblk{}.curspace), 16},
		{"offsetof(if_dqblk, dqb_curinodes)", unsafe.Offsetof(ifDqblk{}.curinodes), 40},
		{"offsetof(if_dqblk, dqb_valid)", unsafe.Offsetof(ifDqblk{}.valid), 64},
		{"sizeof(struct fs_disk_quota)", unsafe.Sizeof(fsDiskQuota{}), 112},
		{"offsetof(fs_disk_quota, d_id)", unsafe.Offsetof(fsDiskQuota{}.id), 4},
		{"offsetof(fs_disk_quota, d_blk_hardlimit)", unsafe.Offsetof(fsDiskQuota{}.blkHardlimit), 8},
		{"offsetof(fs_disk_quota, d_bcount)", unsafe.Offsetof(fsDiskQuota{}.bcount), 40},
		{"offsetof(fs_disk_quota, d_icount)", unsafe.Offsetof(fsDiskQuota{}.icount), 48},
		{"sizeof(struct fs_quota_statv)", unsafe.Sizeof(fsQuotaStatv{}), 160},
		{"offsetof(fs_quota_statv, qs_flags)", unsafe.Offsetof(fsQuotaStatv{}.flags), 2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// The command and request numbers, as strace prints them and the C macros
// make them.
func TestABINumbers(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"QCMD(Q_GETQUOTA, PRJQUOTA)", uint64(qcmd(qGetQuota, prjQuota)), 0x80000702},
		{"QCMD(Q_SETQUOTA, PRJQUOTA)", uint64(qcmd(qSetQuota, prjQuota)), 0x80000802},
		{"QCMD(Q_XGETQUOTA, XQM_PRJQUOTA)", uint64(qcmd(qXGetQuota, xqmPrjQuota)), 0x580302},
		{"QCMD(Q_XSETQLIM, XQM_PRJQUOTA)", uint64(qcmd(qXSetQLim, xqmPrjQuota)), 0x580402},
		{"QCMD(Q_XGETQSTATV, XQM_PRJQUOTA)", uint64(qcmd(qXGetQStatV, xqmPrjQuota)), 0x580802},
		{"QCMD(Q_GETQUOTA, 0x1ff)", uint64(qcmd(qGetQuota, 0x1ff)), 0x800007ff}, // SUBCMDMASK
		{"FS_IOC_FSGETXATTR", uint64(fsIocFSGetXattr), 0x801c581f},
		{"FS_IOC_FSSETXATTR", uint64(fsIocFSSetXattr), 0x401c5820},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}
