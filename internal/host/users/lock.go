package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultLockTimeout is how long Begin waits for the locks when
// DB.LockTimeout is zero: glibc's lckpwdf waits 15 s, and shadow-utils'
// prefix mode tries 15 times a second apart.
const DefaultLockTimeout = 15 * time.Second

// Poll intervals while a lock is busy: start short (our own transactions
// last milliseconds), grow to a few polls a second.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// locks is what a transaction holds.
type locks struct {
	pwd   *os.File // <root>/etc/.pwd.lock with an OFD write lock
	files []string // <file>.lock we created, in the order taken
	pid   int
	// done, when set, runs once after release (DB.Begin's in-process turn).
	done func()
}

// acquireLocks takes pwdLock (like lckpwdf) and then <file>.lock for every
// file (like commonio_lock_nowait), waiting until ctx ends. On failure it
// releases what it took.
func acquireLocks(ctx context.Context, start time.Time, pwdLock string, files []string) (*locks, error) {
	l := &locks{pid: os.Getpid()}
	f, err := lockPwd(ctx, start, pwdLock)
	if err != nil {
		return nil, err
	}
	l.pwd = f
	for _, file := range files {
		if err := lockFile(ctx, start, file, l.pid); err != nil {
			return nil, errors.Join(err, l.release())
		}
		l.files = append(l.files, file)
	}
	return l, nil
}

// release undoes acquireLocks in reverse order: the <file>.lock files
// (only while they still name us), then .pwd.lock.
func (l *locks) release() error {
	var errs []error
	for i := len(l.files) - 1; i >= 0; i-- {
		lock := l.files[i] + ".lock"
		b, err := os.ReadFile(lock)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("releasing %s: %w", lock, err))
		default:
			pid, perr := parsePid(b)
			if perr != nil || pid != l.pid {
				errs = append(errs, fmt.Errorf("releasing %s: it no longer names pid %d (%q); left alone", lock, l.pid, b))
				continue
			}
			if err := os.Remove(lock); err != nil {
				errs = append(errs, fmt.Errorf("releasing %s: %w", lock, err))
			}
		}
	}
	l.files = nil
	if l.pwd != nil {
		// Closing the only descriptor of the open file description drops
		// the OFD lock.
		if err := l.pwd.Close(); err != nil {
			errs = append(errs, fmt.Errorf("releasing %s: %w", l.pwd.Name(), err))
		}
		l.pwd = nil
	}
	if l.done != nil {
		l.done()
		l.done = nil
	}
	return errors.Join(errs...)
}

// wait sleeps for the next poll, or returns a LockError when ctx ends.
func wait(ctx context.Context, start time.Time, delay *time.Duration, mkErr func() *LockError) error {
	t := time.NewTimer(*delay)
	defer t.Stop()
	*delay = min(*delay*2, pollMax)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		e := mkErr()
		e.Waited = time.Since(start)
		if !errors.Is(context.Cause(ctx), errLockTimeout) {
			e.Err = context.Cause(ctx)
		}
		return e
	}
}

// errLockTimeout is the cause of the context Begin waits under when
// DB.LockTimeout (rather than the caller's context) runs out.
var errLockTimeout = errors.New("lock timeout")

// lockPwd opens path like lckpwdf (O_WRONLY|O_CREAT, 0600, close-on-exec)
// and takes an OFD write lock on the whole file, polling until ctx ends.
func lockPwd(ctx context.Context, start time.Time, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	delay := pollMin
	for {
		var lerr error
		cerr := rc.Control(func(fd uintptr) {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
			lerr = unix.FcntlFlock(fd, unix.F_OFD_SETLK, &lk)
		})
		if cerr != nil {
			lerr = cerr
		}
		switch {
		case lerr == nil:
			return f, nil
		case errors.Is(lerr, unix.EAGAIN), errors.Is(lerr, unix.EACCES), errors.Is(lerr, unix.EINTR):
		default:
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, lerr)
		}
		if err := wait(ctx, start, &delay, func() *LockError { return &LockError{Path: path} }); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
}

// lockBusy is a <file>.lock that someone else holds.
type lockBusy struct {
	pid    int    // the live holder, when the file names one
	reason string // why the file does not name a pid we can judge
}

// lockFile takes <file>.lock the way shadow-utils does, retrying while it
// is busy until ctx ends.
func lockFile(ctx context.Context, start time.Time, file string, pid int) error {
	lock := file + ".lock"
	delay := pollMin
	for {
		busy, err := tryLockFile(file, lock, pid)
		if err != nil {
			return fmt.Errorf("locking %s: %w", lock, err)
		}
		if busy == nil {
			return nil
		}
		if err := wait(ctx, start, &delay, func() *LockError {
			return &LockError{Path: lock, PID: busy.pid, Reason: busy.reason}
		}); err != nil {
			return err
		}
	}
}

// tryLockFile is one attempt of shadow-utils' do_lock_file: write
// "<pid>\0" to <file>.<pid>, link it to <file>.lock, and take over a lock
// whose process is gone. It returns nil, nil when we hold the lock.
func tryLockFile(file, lock string, pid int) (*lockBusy, error) {
	tmp := file + "." + strconv.Itoa(pid)
	if err := writePidFile(tmp, pid); err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(tmp) }()

	err := os.Link(tmp, lock)
	if err == nil {
		return nil, checkLinkCount(tmp, lock, pid)
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	b, err := os.ReadFile(lock)
	if errors.Is(err, fs.ErrNotExist) {
		return &lockBusy{reason: "released while we looked"}, nil
	}
	if err != nil {
		return nil, err
	}
	holder, err := parsePid(b)
	if err != nil {
		// commonio refuses such a lock too; only a human can judge it.
		return &lockBusy{reason: fmt.Sprintf("existing lock file %s: %v", lock, err)}, nil
	}
	// A lock naming our own pid is stale: every transaction of this
	// process takes .pwd.lock first, so none of them can be holding it.
	if holder != pid && processAlive(holder) {
		return &lockBusy{pid: holder}, nil
	}
	if err := os.Remove(lock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing stale lock of pid %d: %w", holder, err)
	}
	if err := os.Link(tmp, lock); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &lockBusy{reason: "taken by another program while we removed a stale lock"}, nil
		}
		return nil, err
	}
	return nil, checkLinkCount(tmp, lock, pid)
}

// checkLinkCount is commonio's check_link_count: right after the link,
// <file>.<pid> must have exactly two names.
func checkLinkCount(tmp, lock string, pid int) error {
	var st unix.Stat_t
	if err := unix.Stat(tmp, &st); err != nil {
		return fmt.Errorf("stat %s: %w", tmp, err)
	}
	if st.Nlink != 2 {
		if b, err := os.ReadFile(lock); err == nil {
			if p, err := parsePid(b); err == nil && p == pid {
				_ = os.Remove(lock)
			}
		}
		return fmt.Errorf("%s: lock file already used (nlink: %d)", tmp, st.Nlink)
	}
	return nil
}

// writePidFile writes "<pid>\0" (what do_lock_file writes) and syncs it.
func writePidFile(path string, pid int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(strconv.AppendInt(nil, int64(pid), 10), 0))
	if werr == nil {
		werr = unix.Fdatasync(int(f.Fd()))
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// parsePid reads the pid of a lock file: decimal digits, then optionally
// the NUL shadow-utils writes or a newline.
func parsePid(b []byte) (int, error) {
	s := bytes.TrimRight(b, "\x00\n")
	if len(s) == 0 {
		return 0, errors.New("no pid in it")
	}
	n, err := strconv.Atoi(string(s))
	if err != nil || n <= 0 || s[0] == '+' {
		return 0, fmt.Errorf("invalid pid %q", s)
	}
	return n, nil
}

// processAlive is kill(pid, 0): EPERM means the process exists too.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
