package nginx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors of the host's state, matched with errors.Is.
var (
	// ErrUnsafeCustomDir: a domain's admin include directory (or a file in
	// it, or CustomDir) is not root-owned, is writable by group or others,
	// or is not a plain directory/file. It is not included; a human must fix it.
	ErrUnsafeCustomDir = errors.New("custom include directory is not safe to include")
	// ErrUnsafeLogDir: the log directory or one of its parents can be
	// changed by someone other than root. nginx's master opens the error
	// log there as root, so a tenant could point it at any file.
	ErrUnsafeLogDir = errors.New("log directory is not safe for nginx's master to write in")
	// ErrNoLogDir: the log directory does not exist (yet): the tenant's
	// home is not laid out. Retry later.
	ErrNoLogDir = errors.New("log directory does not exist")
)

// readIfExists returns the file's content, or nil and false when it is missing.
func readIfExists(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// rootOnly reports why st cannot be trusted as written by root only ("" if it can).
func rootOnly(st fs.FileInfo) string {
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !ok:
		return "no owner information"
	case sys.Uid != 0:
		return fmt.Sprintf("owned by uid %d, not root", sys.Uid)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Sprintf("mode %04o is writable by group or others", st.Mode().Perm())
	}
	return ""
}

// customDirSafe reports whether the domain's admin include directory exists
// and may be included. A missing directory is (false, nil); an unsafe one
// is (false, error matching ErrUnsafeCustomDir).
func (m *Manager) customDirSafe(domain string) (bool, error) {
	dir := m.customDir(domain)
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unsafe := func(p, why string) (bool, error) {
		return false, fmt.Errorf("%w: %s: %s", ErrUnsafeCustomDir, p, why)
	}
	top, err := os.Lstat(m.opts.CustomDir)
	if err != nil {
		return false, err
	}
	if !top.IsDir() {
		return unsafe(m.opts.CustomDir, "not a directory")
	}
	if why := rootOnly(top); why != "" {
		return unsafe(m.opts.CustomDir, why)
	}
	if !st.IsDir() {
		return unsafe(dir, "not a directory (symbolic links are not followed)")
	}
	if why := rootOnly(st); why != "" {
		return unsafe(dir, why)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return false, err
		}
		if !fi.Mode().IsRegular() {
			return unsafe(p, "not a regular file (symbolic links are not followed)")
		}
		if why := rootOnly(fi); why != "" {
			return unsafe(p, why)
		}
	}
	return true, nil
}

// checkLogDir makes sure nginx's master, running as root, can open the
// site's error log without a tenant being able to redirect it: the log
// directory and all its parents are root-owned and not group/other-writable.
func checkLogDir(dir string) (gid int, err error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNoLogDir, dir)
	}
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		return 0, fmt.Errorf("%w: %s is not a directory", ErrUnsafeLogDir, dir)
	}
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return 0, err
		}
		if why := rootOnly(fi); why != "" && fi.Mode()&fs.ModeSticky == 0 {
			return 0, fmt.Errorf("%w: %s is %s", ErrUnsafeLogDir, p, why)
		}
		if p == "/" {
			break
		}
	}
	return int(st.Sys().(*syscall.Stat_t).Gid), nil
}

// ensureLogs creates the site's log files when missing, so that the tenant
// (the log directory's group) can read them: the error log root:<group>
// 0640 (the master opens it), the access log <worker user>:<group> 0640
// (the workers open it, see http.conf.tmpl). Existing files are kept, but
// must be regular files.
func (m *Manager) ensureLogs(s Site, workerUID int) error {
	gid, err := checkLogDir(s.LogDir)
	if err != nil {
		return err
	}
	type logFile struct {
		path string
		uid  int
	}
	logs := []logFile{{m.accessLog(s), workerUID}}
	if m.opts.SharedErrorLog == "" {
		logs = append(logs, logFile{m.errorLog(s), 0})
	}
	for _, f := range logs {
		fd, err := unix.Open(f.path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
		if errors.Is(err, unix.EEXIST) {
			fi, err := os.Lstat(f.path)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%w: %s is not a regular file", ErrUnsafeLogDir, f.path)
			}
			// The workers open the access log: it must be theirs.
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok && (int(sys.Uid) != f.uid || int(sys.Gid) != gid) {
				if err := os.Lchown(f.path, f.uid, gid); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", f.path, err)
		}
		err = errors.Join(unix.Fchown(fd, f.uid, gid), unix.Fchmod(fd, 0o640))
		err = errors.Join(err, unix.Close(fd))
		if err != nil {
			return fmt.Errorf("create %s: %w", f.path, err)
		}
	}
	return nil
}

// lookupUID is the uid of a user name ("nobody" when empty, nginx's default).
func lookupUID(name string) (int, error) {
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("nginx worker user: %w", err)
	}
	return strconv.Atoi(u.Uid)
}
