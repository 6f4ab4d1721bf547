package quota

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// MaxExamples bounds the paths Changes lists: a home can hold millions of
// files.
const MaxExamples = 20

// Changes is what SetProject did to a tree.
type Changes struct {
	// Changed counts the files and directories whose project id (or, on a
	// directory, PROJINHERIT flag) SetProject set.
	Changed int
	// Skipped counts the entries it left alone: symlinks, FIFOs, sockets,
	// devices, and what is on another file system (a mount point inside).
	Skipped int
	// ChangedPaths and SkippedPaths are the first MaxExamples of each,
	// relative to the top ("." is the top itself); a skipped one says why:
	// "run/php.sock (socket)".
	ChangedPaths []string
	SkippedPaths []string
}

// errProjectZero refuses project 0, which is every file's project when
// none was set, and on XFS the holder of the default limits.
var errProjectZero = errors.New("quota: project 0 is the default project of every file (and XFS's default limits); use the tenant's uid")

// SetProject gives dir, and everything already in it on the same file
// system, the project id, and sets PROJINHERIT on the directories so that
// what is made in them later gets the id from the kernel. It is idempotent:
// a second run changes nothing. It never follows a symlink (dir itself may
// not be one: it is opened with O_NOFOLLOW, and the walk goes from
// descriptor to descriptor with openat), and only opens directories and
// regular files: FS_IOC_FSSETXATTR needs an open file, and opening a
// FIFO, socket or device has effects (or fails), so those are skipped
// and counted, their inodes staying charged to the project they had.
//
// Setting a project id needs CAP_FOWNER and, on ext4, the project
// feature; no user namespace other than the initial one may change it
// (EINVAL).
func SetProject(dir string, id uint32) (Changes, error) {
	if id == 0 {
		return Changes{}, errProjectZero
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return Changes{}, fmt.Errorf("quota: %w (a symlink is not followed)", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	if err != nil {
		return Changes{}, fmt.Errorf("quota: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd) // read only
		return Changes{}, fmt.Errorf("quota: %w", &os.PathError{Op: "fstat", Path: dir, Err: err})
	}
	w := walker{id: id, dev: st.Dev, top: dir}
	err = w.dir(fd, ".")
	return w.c, err
}

// walker is one SetProject walk.
type walker struct {
	id  uint32
	dev uint64
	top string
	c   Changes
}

// dir sets the project of the directory open as fd, then of what is in
// it; it closes fd.
func (w *walker) dir(fd int, rel string) error {
	defer func() { _ = unix.Close(fd) }() // read only
	if err := w.set(fd, rel, true); err != nil {
		return err
	}
	names, err := readNames(fd)
	if err != nil {
		return w.pathErr("getdents", rel, err)
	}
	for _, name := range names {
		p := path.Join(rel, name)
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT):
			continue // removed since getdents
		case err != nil:
			return w.pathErr("fstatat", p, err)
		case st.Dev != w.dev:
			w.skip(p, "on another file system")
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			cfd, ok, err := w.openAt(fd, name, p, unix.O_DIRECTORY, st)
			if err != nil {
				return err
			}
			if ok {
				if err := w.dir(cfd, p); err != nil {
					return err
				}
			}
		case unix.S_IFREG:
			cfd, ok, err := w.openAt(fd, name, p, 0, st)
			if err != nil {
				return err
			}
			if ok {
				err := w.set(cfd, p, false)
				_ = unix.Close(cfd) // read only
				if err != nil {
					return err
				}
			}
		case unix.S_IFLNK:
			w.skip(p, "symlink")
		case unix.S_IFIFO:
			w.skip(p, "fifo")
		case unix.S_IFSOCK:
			w.skip(p, "socket")
		default:
			w.skip(p, "device")
		}
	}
	return nil
}

// openAt opens name in the directory fd, read only, without following a
// symlink or blocking, and checks it is still the inode fstatat saw: ok is
// false (and the entry skipped) when it was removed or replaced meanwhile.
func (w *walker) openAt(fd int, name, rel string, flags int, want unix.Stat_t) (int, bool, error) {
	cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|flags, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, false, nil
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		w.skip(rel, "replaced while walking")
		return -1, false, nil
	case err != nil:
		return -1, false, w.pathErr("openat", rel, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(cfd, &st); err != nil {
		_ = unix.Close(cfd) // read only
		return -1, false, w.pathErr("fstat", rel, err)
	}
	if st.Dev != want.Dev || st.Ino != want.Ino {
		_ = unix.Close(cfd) // read only
		w.skip(rel, "replaced while walking")
		return -1, false, nil
	}
	return cfd, true, nil
}

// set gives the file open as fd the project, and PROJINHERIT when it is a
// directory, unless it has them.
func (w *walker) set(fd int, rel string, dir bool) error {
	x, err := getXattr(fd)
	if err != nil {
		return w.pathErr("get project of", rel, err)
	}
	want := x
	want.projid = w.id
	if dir {
		want.xflags |= fsXflagProjInherit
	}
	if want == x {
		return nil
	}
	if err := setXattr(fd, want); err != nil {
		return w.pathErr("set project of", rel, err)
	}
	w.c.Changed++
	if len(w.c.ChangedPaths) < MaxExamples {
		w.c.ChangedPaths = append(w.c.ChangedPaths, rel)
	}
	return nil
}

func (w *walker) skip(rel, why string) {
	w.c.Skipped++
	if len(w.c.SkippedPaths) < MaxExamples {
		w.c.SkippedPaths = append(w.c.SkippedPaths, rel+" ("+why+")")
	}
}

func (w *walker) pathErr(op, rel string, err error) error {
	return projectErr(op, path.Join(w.top, rel), err)
}

// projectErr words the kernel's refusals of FS_IOC_FS{GET,SET}XATTR.
func projectErr(op, p string, err error) error {
	pe := &os.PathError{Op: op, Path: p, Err: err}
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY):
		// ext4 without the project feature refuses a project id other than
		// 0 with EOPNOTSUPP; file systems without FS_IOC_FS*XATTR answer
		// ENOTTY.
		return fmt.Errorf("%w: %w", ErrUnsupported, pe)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("quota: %w (only the initial user namespace may change a project id)", pe)
	case errors.Is(err, unix.EOVERFLOW):
		return fmt.Errorf("quota: %w (this ext4 inode has no room for a project id: inodes of 128 bytes cannot have one)", pe)
	}
	return fmt.Errorf("quota: %w", pe)
}

// readNames reads the names in the directory open as fd ("." and ".."
// left out).
func readNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// ProjectOf reads the project id of path, a directory or regular file (a
// symlink is not followed), and whether it has PROJINHERIT.
func ProjectOf(p string) (id uint32, inherit bool, err error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return 0, false, fmt.Errorf("quota: %w", &os.PathError{Op: "lstat", Path: p, Err: err})
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
		return 0, false, fmt.Errorf("quota: %s: not a directory or regular file", p)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, fmt.Errorf("quota: %w", &os.PathError{Op: "open", Path: p, Err: err})
	}
	defer func() { _ = unix.Close(fd) }() // read only
	var ost unix.Stat_t
	if err := unix.Fstat(fd, &ost); err != nil {
		return 0, false, fmt.Errorf("quota: %w", &os.PathError{Op: "fstat", Path: p, Err: err})
	}
	if ost.Dev != st.Dev || ost.Ino != st.Ino {
		return 0, false, fmt.Errorf("quota: %s: replaced while being read", p)
	}
	x, err := getXattr(fd)
	if err != nil {
		return 0, false, projectErr("get project of", p, err)
	}
	return x.projid, x.xflags&fsXflagProjInherit != 0, nil
}
