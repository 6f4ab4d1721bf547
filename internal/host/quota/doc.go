// Package quota puts each tenant's home under a project quota of its own,
// Go-native: ioctls and quotactl(2), no xfs_quota or setquota.
//
// The project id of a tenant is its uid. SetProject gives it to the home
// and to everything already in it (FS_IOC_FSSETXATTR: struct fsxattr's
// fsx_projid), and sets FS_XFLAG_PROJINHERIT on the directories, so that
// the kernel gives the id to whatever is made there later. SetLimit sets
// the project's hard limits (bytes, inodes) and Get reads its usage and
// limits; Observe compares a home and its limits with a spec and returns
// the differences (host.Difference), Ensure corrects them.
//
//	info, err := quota.Detect("/proc/self/mountinfo", "/srv/www/acme")
//	if !info.Project { ... info.Reason ... }
//	diffs, changes, err := quota.Ensure(info, "/srv/www/acme", uid, quota.Limit{Bytes: 10 << 30, Inodes: 200000})
//
// Detect says whether the file system holding a path can do it: the mount
// from mountinfo, its block device found from mountinfo's major:minor
// through /sys/dev/block, and the kernel's own answer (Q_XGETQSTATV), which
// says whether project usage is counted (Info.Accounting) and limits
// enforced (Info.Project); when not, Info.Reason says what an admin has to
// do. Only XFS and ext4 are driven; what cannot be done wraps
// ErrUnsupported.
//
// # Kernel facts (checked on Linux 6.1 by TestKernelQuota, in a VM)
//
//   - XFS has project quota when mounted with prjquota (pqnoenforce counts
//     without enforcing); quotas are turned on at mount only, never by a
//     remount. Mounted without quota options it has no quota operations at
//     all: quotactl answers ENOSYS.
//   - ext4 needs the quota and project features (mkfs.ext4 -O
//     quota,project, or tune2fs on the unmounted file system) and counts
//     project usage from its first mount; the prjquota mount option turns
//     enforcement on, and a remount does not. Without the quota feature
//     (and quota mount options) quotactl answers ENOSYS; without the
//     project feature a project id other than 0 is EOPNOTSUPP.
//   - A write past the limit fails with ENOSPC on XFS (a project is a
//     directory tree whose space ran out) and EDQUOT on ext4. XFS holds
//     root to the limit; ext4 lets CAP_SYS_RESOURCE through.
//   - Units: XFS's struct fs_disk_quota counts space (limits and usage) in
//     512-byte basic blocks; the VFS struct if_dqblk counts space limits in
//     1 KiB blocks (QIF_DQBLKSIZE) but usage (dqb_curspace) in bytes. XFS
//     keeps limits in whole file system blocks, so SetLimit rounds bytes up
//     to the block size on both. Both interfaces work on both file systems
//     (the generic quota layer converts); this package uses each file
//     system's own: Q_XSETQLIM/Q_XGETQUOTA on XFS, Q_SETQUOTA/Q_GETQUOTA on
//     ext4.
//   - XFS answers ENOENT for a project that never had usage or limits; Get
//     reads that as zero.
//   - Changing a file's project id moves its usage to the new project.
//     Under a PROJINHERIT directory, a rename or hard link from another
//     project is EXDEV (mv falls back to a copy, which inherits), so a tree
//     set once stays set and Observe reads only the home.
//   - FS_IOC_FSGETXATTR/FSSETXATTR need an open file: symlinks cannot take
//     them (opening follows the link), FIFOs answer ENOTTY, and opening
//     sockets and devices fails or has effects. SetProject leaves these
//     alone and says so; their inodes stay charged to their old project.
//   - Only the initial user namespace may change a project id (EINVAL
//     elsewhere), and project 0 is every file's default (and, on XFS, the
//     holder of the default limits): it is refused.
//
// quotactl(2) takes the block device's path. Where /dev has no node for it
// (in a container), Detect leaves Info.Device empty and this package uses
// quotactl_fd(2) (Linux 5.14) on an O_PATH descriptor of the mount point
// instead: the device path works on every kernel, the descriptor where
// there is no device node; both are checked to agree in the VM.
//
// The structures and constants golang.org/x/sys/unix lacks (struct
// fsxattr, if_dqblk, fs_disk_quota, fs_quota_statv, the Q_* commands and
// the QCMD macro) are in abi.go, their sizes checked at compile time.
package quota
