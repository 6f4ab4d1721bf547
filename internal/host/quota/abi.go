package quota

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the kernel ABI this package speaks, which golang.org/x/sys/unix
// lacks: the structures of <linux/fs.h>, <linux/quota.h> and
// <linux/dqblk_xfs.h>, their constants, and the raw calls. The layouts are
// those of amd64 and arm64 (the hosts WCP360 runs on; the sizes are checked
// below at compile time and in abi_test.go).

// fsxattr is struct fsxattr (<linux/fs.h>), what FS_IOC_FSGETXATTR reads
// and FS_IOC_FSSETXATTR writes: an inode's extended flags and project id.
// SetProject writes back what it read but fsx_projid and fsx_xflags.
type fsxattr struct {
	xflags     uint32 // FS_XFLAG_*
	extsize    uint32
	nextents   uint32
	projid     uint32
	cowextsize uint32
	pad        [8]byte
}

const (
	// fsXflagProjInherit is FS_XFLAG_PROJINHERIT: on a directory, what is
	// made in it gets the directory's project id (and subdirectories the
	// flag too).
	fsXflagProjInherit = 0x00000200
)

// The ioctl request numbers, made as <asm-generic/ioctl.h>'s _IOR and _IOW
// make them (amd64 and arm64 use the generic encoding): direction, size,
// type and number.
const (
	iocWrite    = 1
	iocRead     = 2
	iocTypShift = 8
	iocSzShift  = 16
	iocDirShift = 30

	// fsIocFSGetXattr is FS_IOC_FSGETXATTR, _IOR('X', 31, struct fsxattr).
	fsIocFSGetXattr = iocRead<<iocDirShift | unsafe.Sizeof(fsxattr{})<<iocSzShift | 'X'<<iocTypShift | 31
	// fsIocFSSetXattr is FS_IOC_FSSETXATTR, _IOW('X', 32, struct fsxattr).
	fsIocFSSetXattr = iocWrite<<iocDirShift | unsafe.Sizeof(fsxattr{})<<iocSzShift | 'X'<<iocTypShift | 32
)

// quotactl(2) commands are QCMD(cmd, type): the command shifted left by
// SUBCMDSHIFT, or-ed with the quota type.
const (
	subCmdShift = 8
	subCmdMask  = 0x00ff
)

// qcmd is the QCMD macro of <linux/quota.h>.
func qcmd(cmd, typ uint32) uint32 { return cmd<<subCmdShift | typ&subCmdMask }

// The quota types. PRJQUOTA (VFS quota: ext4) and XQM_PRJQUOTA (XFS) are
// both 2.
const (
	prjQuota    = 2 // PRJQUOTA
	xqmPrjQuota = 2 // XQM_PRJQUOTA
)

// The VFS quota commands (<linux/quota.h>), which ext4 implements, and
// their struct if_dqblk.
const (
	qGetQuota = 0x800007 // Q_GETQUOTA
	qSetQuota = 0x800008 // Q_SETQUOTA

	// qifDqblkSize is QIF_DQBLKSIZE: if_dqblk counts space limits in 1 KiB
	// blocks (but the usage, dqb_curspace, in bytes).
	qifDqblkSize = 1024

	qifBLimits = 1 // QIF_BLIMITS: dqb_bhardlimit and dqb_bsoftlimit are valid
	qifILimits = 4 // QIF_ILIMITS: dqb_ihardlimit and dqb_isoftlimit are valid
	qifLimits  = qifBLimits | qifILimits
)

// ifDqblk is struct if_dqblk (<linux/quota.h>).
type ifDqblk struct {
	bhardlimit uint64 // 1 KiB blocks
	bsoftlimit uint64 // 1 KiB blocks
	curspace   uint64 // bytes
	ihardlimit uint64
	isoftlimit uint64
	curinodes  uint64
	_          [2]uint64 // dqb_btime, dqb_itime: grace times, unused here
	valid      uint32    // QIF_*
}

// The XFS quota commands (<linux/dqblk_xfs.h>): XQM_CMD(x) is ('X'<<8)+x.
// The generic quota layer answers them for ext4 too, converting units.
const (
	qXGetQuota   = 'X'<<8 + 3 // Q_XGETQUOTA
	qXSetQLim    = 'X'<<8 + 4 // Q_XSETQLIM
	qXGetQStatV  = 'X'<<8 + 8 // Q_XGETQSTATV
	fsDquotVer   = 1          // FS_DQUOT_VERSION
	fsProjQuota  = 2          // FS_PROJ_QUOTA, in d_flags
	fsQStatVVer1 = 1          // FS_QSTATV_VERSION1

	// bbSize is XFS's "basic block": fs_disk_quota counts space (limits and
	// usage) in 512-byte units, whatever the file system's block size.
	bbSize = 512

	fsDqISoft = 1 << 0 // FS_DQ_ISOFT
	fsDqIHard = 1 << 1 // FS_DQ_IHARD
	fsDqBSoft = 1 << 2 // FS_DQ_BSOFT
	fsDqBHard = 1 << 3 // FS_DQ_BHARD
	fsDqLimit = fsDqISoft | fsDqIHard | fsDqBSoft | fsDqBHard

	// The qs_flags of fs_quota_statv: project quota accounted, enforced.
	fsQuotaPdqAcct = 1 << 4 // FS_QUOTA_PDQ_ACCT
	fsQuotaPdqEnfd = 1 << 5 // FS_QUOTA_PDQ_ENFD
)

// fsDiskQuota is struct fs_disk_quota (<linux/dqblk_xfs.h>), what
// Q_XGETQUOTA reads and Q_XSETQLIM writes. Space is in 512-byte basic
// blocks.
type fsDiskQuota struct {
	version      int8   // FS_DQUOT_VERSION
	flags        int8   // FS_{USER,PROJ,GROUP}_QUOTA
	fieldmask    uint16 // FS_DQ_*: what Q_XSETQLIM sets
	id           uint32
	blkHardlimit uint64 // basic blocks
	blkSoftlimit uint64 // basic blocks
	inoHardlimit uint64
	inoSoftlimit uint64
	bcount       uint64 // basic blocks used
	icount       uint64 // inodes used
	// d_itimer, d_btimer, d_iwarns, d_bwarns, d_{i,b,rtb}timer_hi,
	// d_padding2, then the realtime fields d_rtb_hardlimit, d_rtb_softlimit,
	// d_rtbcount, d_rtbtimer, d_rtbwarns, d_padding3, d_padding4: unused
	// here.
	_ [56]byte
}

// fsQuotaStatv is struct fs_quota_statv (<linux/dqblk_xfs.h>), what
// Q_XGETQSTATV reads: which quotas a file system accounts and enforces. It
// is the one state query that XFS and ext4 (through the generic quota
// layer) both answer, with enforcement included. Only qs_flags is read.
type fsQuotaStatv struct {
	version int8   // qs_version: FS_QSTATV_VERSION1, set by the caller
	_       uint8  // qs_pad1
	flags   uint16 // qs_flags: FS_QUOTA_*
	_       uint32 // qs_incoredqs
	// qs_uquota, qs_gquota, qs_pquota: three struct fs_qfilestatv {__u64
	// qfs_ino, qfs_nblks; __u32 qfs_nextents, qfs_pad}.
	_ [3][3]uint64
	_ [3]int32  // qs_btimelimit, qs_itimelimit, qs_rtbtimelimit
	_ [4]uint16 // qs_bwarnlimit, qs_iwarnlimit, qs_rtbwarnlimit, qs_pad3
	_ uint32    // qs_pad4
	_ [7]uint64 // qs_pad2
}

// The kernel's sizes on amd64 and arm64: a mismatch does not compile.
var (
	_ [unsafe.Sizeof(fsxattr{}) - 28]byte
	_ [28 - unsafe.Sizeof(fsxattr{})]byte
	_ [unsafe.Sizeof(ifDqblk{}) - 72]byte
	_ [72 - unsafe.Sizeof(ifDqblk{})]byte
	_ [unsafe.Sizeof(fsDiskQuota{}) - 112]byte
	_ [112 - unsafe.Sizeof(fsDiskQuota{})]byte
	_ [unsafe.Sizeof(fsQuotaStatv{}) - 160]byte
	_ [160 - unsafe.Sizeof(fsQuotaStatv{})]byte
)

// getXattr reads the fsxattr of the open file fd.
func getXattr(fd int) (fsxattr, error) {
	var x fsxattr
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSGetXattr, uintptr(unsafe.Pointer(&x))) //nolint:gosec // the kernel ABI: struct fsxattr
	if e != 0 {
		return x, fmt.Errorf("FS_IOC_FSGETXATTR: %w", e)
	}
	return x, nil
}

// setXattr writes x as the fsxattr of the open file fd.
func setXattr(fd int, x fsxattr) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), fsIocFSSetXattr, uintptr(unsafe.Pointer(&x))) //nolint:gosec // the kernel ABI: struct fsxattr
	if e != 0 {
		return fmt.Errorf("FS_IOC_FSSETXATTR: %w", e)
	}
	return nil
}

// quotactl is quotactl(2) on the file system of the block device special.
func quotactl(special string, cmd, id uint32, addr unsafe.Pointer) error {
	p, err := unix.BytePtrFromString(special)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL, uintptr(cmd), uintptr(unsafe.Pointer(p)), uintptr(id), uintptr(addr), 0, 0) //nolint:gosec // the kernel ABI
	if e != 0 {
		return e
	}
	return nil
}

// quotactlFd is quotactl_fd(2) (Linux 5.14) on the file system of the
// open file fd, which may be an O_PATH descriptor.
func quotactlFd(fd int, cmd, id uint32, addr unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, uintptr(fd), uintptr(cmd), uintptr(id), uintptr(addr), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
