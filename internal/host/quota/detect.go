package quota

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	mntinfo "github.com/wcp360/wcp360/internal/host/mountinfo"
)

// ErrUnsupported is wrapped by what cannot be done because the file system
// has no (enforced) project quota: Info.Reason says why.
var ErrUnsupported = errors.New("quota: the file system has no project quota")

// ErrParse is wrapped by Detect's error for a mountinfo it cannot read
// (with mountinfo.ErrParse).
var ErrParse = errors.New("quota: cannot parse")

// Info is what the file system that holds a path offers.
type Info struct {
	// Path is the path asked about, absolute and with symlinks resolved.
	Path string
	// MountPoint, FSType are those of the mount that holds Path.
	MountPoint string
	FSType     string
	// Dev is the file system's device number, "major:minor", as mountinfo
	// has it. Device is its block device node ("/dev/vdb"), found through
	// /sys/dev/block; "" when /dev has no such node (in a container), and
	// quotactl_fd(2) on MountPoint then reaches the file system instead.
	Dev    string
	Device string
	// BlockSize is the file system's block size (statfs f_bsize): XFS keeps
	// space limits in whole blocks, so SetLimit rounds bytes up to it.
	BlockSize uint64
	// Accounting: the kernel counts project usage (Get works).
	Accounting bool
	// Project: project quota is both counted and enforced; SetLimit and the
	// limits mean something.
	Project bool
	// Reason says, when !Project, why, in words an admin can act on.
	Reason string
}

func (i Info) String() string {
	s := fmt.Sprintf("%s on %s (%s", i.Path, i.MountPoint, i.FSType)
	if i.Device != "" {
		s += " on " + i.Device
	}
	s += ")"
	if i.Project {
		return s + ": project quota on"
	}
	return s + ": " + i.Reason
}

// unsupported is ErrUnsupported with i's reason.
func (i Info) unsupported() error {
	return fmt.Errorf("%w: %s", ErrUnsupported, i.Reason)
}

// advice is what a host needs for project quota, as an admin reads it.
const advice = "use XFS mounted with prjquota, or ext4 made with -O quota,project and mounted with prjquota"

// Detect says whether the file system holding path can enforce project
// quotas. mountinfo is normally /proc/self/mountinfo. It only reads (a
// stat, a statfs and Q_XGETQSTATV, which anyone may call); a file system
// without project quota is Project=false with a Reason, not an error.
func Detect(mountinfo, path string) (Info, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return Info{}, fmt.Errorf("quota: %w", err)
	}
	mounts, err := mntinfo.Parse(string(b))
	if err != nil {
		return Info{}, fmt.Errorf("%w %s: %w", ErrParse, mountinfo, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, fmt.Errorf("quota: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return Info{}, fmt.Errorf("quota: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(resolved, &st); err != nil {
		return Info{}, fmt.Errorf("quota: stat %s: %w", resolved, err)
	}
	info, m, err := detect(mounts, resolved)
	if err != nil {
		return Info{}, fmt.Errorf("%s: %w", mountinfo, err)
	}
	if info.Reason != "" {
		return info, nil
	}
	if unix.Major(st.Dev) != m.Major || unix.Minor(st.Dev) != m.Minor {
		return Info{}, fmt.Errorf("quota: %s says %s is on %s, stat says %d:%d: is it another mount namespace's?",
			mountinfo, m.Point, m.Dev(), unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(resolved, &sfs); err != nil {
		return Info{}, fmt.Errorf("quota: statfs %s: %w", resolved, err)
	}
	info.BlockSize = uint64(sfs.Bsize) //nolint:gosec // a block size is positive
	info.Device = deviceNode("/sys", "/dev", m.Major, m.Minor)
	flags, err := info.state()
	sc := syscalls{quotactl: true, quotactlFd: true}
	if refused(err, unix.ENOSYS) {
		sc = probeSyscalls()
	}
	info.Accounting, info.Project, info.Reason = judge(info, m, flags, err, sc)
	return info, nil
}

// detect is what mountinfo alone says of path: the mount, and a Reason for
// file systems that have no project quota at all.
func detect(mounts []mntinfo.Mount, path string) (Info, mntinfo.Mount, error) {
	m, ok := mntinfo.Holding(mounts, path)
	if !ok {
		return Info{}, mntinfo.Mount{}, fmt.Errorf("no mount holds %s", path)
	}
	info := Info{Path: path, MountPoint: m.Point, FSType: m.FSType, Dev: m.Dev()}
	switch m.FSType {
	case "xfs", "ext4":
	case "btrfs":
		info.Reason = fmt.Sprintf("btrfs at %s has qgroups, not project quota, and WCP360 does not drive them; %s", m.Point, advice)
	default:
		info.Reason = fmt.Sprintf("%s at %s has no project quota; %s", m.FSType, m.Point, advice)
	}
	return info, m, nil
}

// judge turns the kernel's answer to Q_XGETQSTATV (flags, or err) into
// Info's Accounting, Project and Reason; sc says which quota system calls
// the kernel has.
//
// The kernel answers ENOSYS for a file system that has no quota
// operations: XFS mounted without quota options, ext4 without the quota
// feature and mounted without quota options (Linux 6.1), as for every file
// system on a kernel built without CONFIG_QUOTACTL.
func judge(info Info, m mntinfo.Mount, flags uint16, err error, sc syscalls) (acct, project bool, reason string) {
	where := fmt.Sprintf("%s at %s", m.FSType, m.Point)
	if info.Device != "" {
		where += " (" + info.Device + ")"
	}
	switch {
	case !sc.quotactl:
		return false, false, fmt.Sprintf("%s: this kernel has no quota support (built without CONFIG_QUOTACTL): %v", where, err)
	case refused(err, unix.ENOSYS) && info.Device == "" && !sc.quotactlFd:
		return false, false, fmt.Sprintf("%s: /dev has no node for its device %s and this kernel has no quotactl_fd(2) (Linux 5.14) to reach it otherwise", where, m.Dev())
	case refused(err, unix.ENOSYS):
		// No quota operations on this file system: flags stay 0.
	case err != nil:
		return false, false, fmt.Sprintf("%s: cannot read its quota state: %v", where, err)
	}
	acct, enfd := flags&fsQuotaPdqAcct != 0, flags&fsQuotaPdqEnfd != 0
	switch {
	case acct && enfd:
		return true, true, ""
	case m.FSType == "xfs" && acct:
		return true, false, where + " counts project usage but does not enforce limits (mounted with pqnoenforce): mount it with prjquota"
	case m.FSType == "xfs":
		return false, false, where + " is mounted without project quota: add prjquota to its mount options, unmount and mount it " +
			"(XFS turns quotas on only when mounting, not on remount; for / use rootflags=prjquota on the kernel command line)"
	case acct:
		return true, false, where + " counts project usage but does not enforce limits: add prjquota to its mount options, " +
			"unmount and mount it (a remount does not turn enforcement on)"
	default:
		return false, false, fmt.Sprintf("%s does not count project usage: it needs the quota and project features "+
			"(tune2fs -O quota,project -Q prjquota on the unmounted file system, inodes of 256 bytes) and the prjquota mount option", where)
	}
}

// syscalls says which quota system calls the kernel has.
type syscalls struct{ quotactl, quotactlFd bool }

// probeSyscalls asks the kernel: quotactl(2) with no device answers ENODEV
// (for any command but Q_SYNC, which would sync every file system), and
// quotactl_fd(2) with a bad descriptor EBADF; both answer ENOSYS when the
// kernel lacks them (no CONFIG_QUOTACTL; before Linux 5.14).
func probeSyscalls() syscalls {
	_, _, e1 := unix.Syscall6(unix.SYS_QUOTACTL, uintptr(qcmd(qGetQuota, prjQuota)), 0, 0, 0, 0, 0)
	_, _, e2 := unix.Syscall6(unix.SYS_QUOTACTL_FD, ^uintptr(0), uintptr(qcmd(qGetQuota, prjQuota)), 0, 0, 0, 0)
	return syscalls{quotactl: e1 != unix.ENOSYS, quotactlFd: e2 != unix.ENOSYS}
}

// state asks the kernel which quotas the file system accounts and enforces
// (Q_XGETQSTATV: XFS answers it, and the generic quota layer for ext4).
func (i Info) state() (uint16, error) {
	s := fsQuotaStatv{version: fsQStatVVer1}
	if err := ctl(i, qcmd(qXGetQStatV, xqmPrjQuota), 0, &s); err != nil {
		return 0, err
	}
	return s.flags, nil
}

// quotactlArg is what a quotactl command reads or writes.
type quotactlArg interface {
	*fsDiskQuota | *ifDqblk | *fsQuotaStatv
}

// ctl runs one quotactl command on i's file system, with arg (of the type
// the command takes) for the kernel to read or write.
func ctl[T quotactlArg](i Info, cmd, id uint32, arg T) error {
	return i.call(cmd, id, unsafe.Pointer(arg)) //nolint:gosec // the kernel ABI: arg is one of its structs
}

// call runs one quotactl command on i's file system: quotactl(2) on its
// block device, which every kernel has, or, when /dev has no node for it
// (in a container), quotactl_fd(2) on an O_PATH descriptor of the mount
// point, which needs no device node but Linux 5.14. What the kernel
// refuses is a *callError.
func (i Info) call(cmd, id uint32, addr unsafe.Pointer) error {
	if i.Device != "" {
		if err := quotactl(i.Device, cmd, id, addr); err != nil {
			return &callError{call: fmt.Sprintf("quotactl(%s, %s, %d)", cmdName(cmd), i.Device, id), err: err}
		}
		return nil
	}
	if i.MountPoint == "" {
		return errors.New("quota: Info has neither Device nor MountPoint (use Detect)")
	}
	fd, err := unix.Open(i.MountPoint, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("quota: %w", &os.PathError{Op: "open", Path: i.MountPoint, Err: err})
	}
	defer func() { _ = unix.Close(fd) }() // O_PATH, nothing to flush
	if err := quotactlFd(fd, cmd, id, addr); err != nil {
		return &callError{call: fmt.Sprintf("quotactl_fd(%s, %s, %d)", i.MountPoint, cmdName(cmd), id), err: err}
	}
	return nil
}

// callError is a quotactl call the kernel refused.
type callError struct {
	call string
	err  error // a unix.Errno
}

func (e *callError) Error() string { return e.call + ": " + e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// refused says whether err is the kernel refusing a quotactl call with
// errno.
func refused(err error, errno unix.Errno) bool {
	var ce *callError
	return errors.As(err, &ce) && errors.Is(ce.err, errno)
}

func cmdName(cmd uint32) string {
	names := map[uint32]string{qGetQuota: "Q_GETQUOTA", qSetQuota: "Q_SETQUOTA", qXGetQuota: "Q_XGETQUOTA", qXSetQLim: "Q_XSETQLIM", qXGetQStatV: "Q_XGETQSTATV"}
	if n, ok := names[cmd>>subCmdShift]; ok {
		return n
	}
	return fmt.Sprintf("%#x", cmd)
}

// deviceNode is the block device node under dev for major:minor, found by
// its name in sys/dev/block/<major>:<minor>/uevent and checked to be that
// device; "" when there is none.
func deviceNode(sys, dev string, major, minor uint32) string {
	b, err := os.ReadFile(filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor), "uevent"))
	if err != nil {
		return ""
	}
	for l := range strings.Lines(string(b)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(l), "DEVNAME=")
		if !ok || name == "" || strings.Contains(name, "..") {
			continue
		}
		p := filepath.Join(dev, name)
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == unix.Mkdev(major, minor) {
			return p
		}
	}
	return ""
}
