package quota

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// Limit is a project's hard limits; 0 is none.
type Limit struct {
	Bytes  uint64
	Inodes uint64
}

// Usage is what a project uses on a file system, and its limits.
type Usage struct {
	Bytes  uint64
	Inodes uint64
	Limit  Limit
	// Soft are the soft limits, which WCP360 does not use (SetLimit clears
	// them): one set by hand (xfs_quota, setquota) shows here.
	Soft Limit
}

// SetLimit sets the hard limits of project id on info's file system, and
// clears its soft limits. Bytes are rounded up to the file system's block
// size (Info.BlockSize), which is what XFS keeps anyway. Going over a
// limit fails writes with EDQUOT, which XFS reports as ENOSPC for project
// quota; XFS holds root to it too, ext4 lets processes with
// CAP_SYS_RESOURCE through.
func SetLimit(info Info, id uint32, l Limit) error {
	if id == 0 {
		return errProjectZero
	}
	if !info.Project {
		return info.unsupported()
	}
	l.Bytes = info.roundBytes(l.Bytes)
	switch info.FSType {
	case "xfs":
		d := xfsLimit(id, l)
		return ctl(info, qcmd(qXSetQLim, xqmPrjQuota), id, &d)
	case "ext4":
		d := vfsLimit(l)
		return ctl(info, qcmd(qSetQuota, prjQuota), id, &d)
	}
	return info.unsupported()
}

// Get reads the usage and limits of project id on info's file system,
// which must count project usage (Info.Accounting). A project that has
// nothing and no limits is a zero Usage.
func Get(info Info, id uint32) (Usage, error) {
	if !info.Accounting {
		return Usage{}, info.unsupported()
	}
	switch info.FSType {
	case "xfs":
		return info.getXFS(id)
	case "ext4":
		return info.getVFS(id)
	}
	return Usage{}, info.unsupported()
}

// getXFS is Get through Q_XGETQUOTA, XFS's own interface (which the
// generic quota layer also answers for ext4).
func (i Info) getXFS(id uint32) (Usage, error) {
	var d fsDiskQuota
	err := ctl(i, qcmd(qXGetQuota, xqmPrjQuota), id, &d)
	if refused(err, unix.ENOENT) {
		return Usage{}, nil // XFS: a project that never had usage or limits
	}
	if err != nil {
		return Usage{}, err
	}
	return xfsUsage(d), nil
}

// getVFS is Get through Q_GETQUOTA, the VFS quota interface that ext4
// implements (and XFS answers too).
func (i Info) getVFS(id uint32) (Usage, error) {
	var d ifDqblk
	err := ctl(i, qcmd(qGetQuota, prjQuota), id, &d)
	if refused(err, unix.ENOENT) {
		return Usage{}, nil // XFS: a project that never had usage or limits
	}
	if err != nil {
		return Usage{}, err
	}
	return vfsUsage(d), nil
}

// roundBytes rounds b up to the file system's block size.
func (i Info) roundBytes(b uint64) uint64 {
	return roundUp(b, max(i.BlockSize, 1))
}

// xfsLimit is the fs_disk_quota that sets l (and no soft limits) on
// project id: space in 512-byte basic blocks.
func xfsLimit(id uint32, l Limit) fsDiskQuota {
	return fsDiskQuota{
		version:      fsDquotVer,
		flags:        fsProjQuota,
		fieldmask:    fsDqLimit,
		id:           id,
		blkHardlimit: ceilDiv(l.Bytes, bbSize),
		inoHardlimit: l.Inodes,
	}
}

// xfsUsage reads an fs_disk_quota: space in 512-byte basic blocks.
func xfsUsage(d fsDiskQuota) Usage {
	return Usage{
		Bytes:  mulSat(d.bcount, bbSize),
		Inodes: d.icount,
		Limit:  Limit{Bytes: mulSat(d.blkHardlimit, bbSize), Inodes: d.inoHardlimit},
		Soft:   Limit{Bytes: mulSat(d.blkSoftlimit, bbSize), Inodes: d.inoSoftlimit},
	}
}

// vfsLimit is the if_dqblk that sets l (and no soft limits): space limits
// in 1 KiB blocks.
func vfsLimit(l Limit) ifDqblk {
	return ifDqblk{bhardlimit: ceilDiv(l.Bytes, qifDqblkSize), ihardlimit: l.Inodes, valid: qifLimits}
}

// vfsUsage reads an if_dqblk: limits in 1 KiB blocks, but dqb_curspace in
// bytes.
func vfsUsage(d ifDqblk) Usage {
	return Usage{
		Bytes:  d.curspace,
		Inodes: d.curinodes,
		Limit:  Limit{Bytes: mulSat(d.bhardlimit, qifDqblkSize), Inodes: d.ihardlimit},
		Soft:   Limit{Bytes: mulSat(d.bsoftlimit, qifDqblkSize), Inodes: d.isoftlimit},
	}
}

// ceilDiv is n/d rounded up, without overflow.
func ceilDiv(n, d uint64) uint64 {
	q := n / d
	if n%d != 0 {
		q++
	}
	return q
}

// roundUp is n rounded up to a multiple of unit, at most the largest
// multiple of unit a uint64 holds.
func roundUp(n, unit uint64) uint64 {
	q := ceilDiv(n, unit)
	if q > math.MaxUint64/unit {
		return math.MaxUint64 / unit * unit
	}
	return q * unit
}

// mulSat is n*unit, or the largest uint64 when that overflows.
func mulSat(n, unit uint64) uint64 {
	if n > math.MaxUint64/unit {
		return math.MaxUint64
	}
	return n * unit
}

func (u Usage) String() string {
	return fmt.Sprintf("%d bytes of %s, %d inodes of %s", u.Bytes, limitString(u.Limit.Bytes), u.Inodes, limitString(u.Limit.Inodes))
}

func limitString(n uint64) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}
