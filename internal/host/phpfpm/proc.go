package phpfpm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is a master watched through a pidfd: signals go to exactly that
// process even after its pid is recycled, and done is closed when it exits,
// whether or not it is wcpd's child.
type process struct {
	pid     int
	started time.Time // by the Manager's clock, for the backoff
	fd      *os.File  // the pidfd, registered with the runtime's poller
	done    chan struct{}
}

// errGone: the process is not there (any more).
var errGone = errors.New("process gone")

// watch opens a pidfd on pid and closes done when the process exits.
func watch(pid int, started time.Time) (*process, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("pid %d: %w", pid, errGone)
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	p := &process{pid: pid, started: started, fd: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), done: make(chan struct{})}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		_ = p.fd.Close()
		return nil, err
	}
	go func() {
		// Read calls the function, then waits for the pidfd to become
		// readable (the process exited) and calls it again. It returns an
		// error only when release closed the pidfd: done stays open then.
		if err := rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd)) }); err == nil { //nolint:gosec // a descriptor fits an int
			close(p.done)
		}
	}()
	return p, nil
}

// pidfdExited polls a pidfd without waiting.
func pidfdExited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}} //nolint:gosec // a descriptor fits an int32
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process, through its pidfd.
func (p *process) signal(sig syscall.Signal) error {
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) //nolint:gosec // a descriptor fits an int
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.ESRCH) {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, errGone)
	}
	if serr != nil {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, serr)
	}
	return nil
}

// wait waits up to d for the process to exit.
func (p *process) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// release stops watching; the process runs on.
func (p *process) release() { _ = p.fd.Close() }

// procInfo is what /proc says about a process.
type procInfo struct {
	exe     string // executable, without a " (deleted)" suffix
	deleted bool   // the executable was replaced or removed since it started
	cmdline string // arguments joined by spaces
	pgrp    int
	start   uint64 // start time in clock ticks since boot
	zombie  bool
}

func readProc(pid int) (procInfo, error) {
	var pi procInfo
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return pi, fmt.Errorf("pid %d: %w", pid, errGone)
	}
	// pid (comm) state ppid pgrp session ... field 22 is starttime.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return pi, fmt.Errorf("pid %d: unreadable stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return pi, fmt.Errorf("pid %d: unreadable stat", pid)
	}
	pi.zombie = f[0] == "Z" || f[0] == "X"
	pi.pgrp, _ = strconv.Atoi(f[2])
	pi.start, _ = strconv.ParseUint(f[19], 10, 64)
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		pi.exe, pi.deleted = strings.CutSuffix(exe, " (deleted)")
	}
	if cl, err := os.ReadFile(dir + "/cmdline"); err == nil {
		pi.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
	}
	return pi, nil
}

// isMaster reports whether pi is a php-fpm master of conf (the caller
// checks the executable).
func (pi procInfo) isMaster(conf string) bool {
	if pi.zombie {
		return false
	}
	// The master rewrites its title to "php-fpm: master process (<conf>)";
	// before that (and right after a reload's exec) it is the command line.
	return strings.Contains(pi.cmdline, "master process ("+conf+")") ||
		strings.HasSuffix(pi.cmdline, " --fpm-config "+conf)
}

// leftoverWorkers lists the workers of tenant's pool that a dead master
// (its process group pgid) left behind, opened as pidfds.
func leftoverWorkers(pgid int, exes []string, tenant string) []*process {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	isWorker := func(pi procInfo) bool {
		return pi.pgrp == pgid && !pi.zombie && isExe(pi.exe, exes) &&
			pi.cmdline == "php-fpm: pool "+tenant
	}
	var ps []*process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if pi, err := readProc(pid); err != nil || !isWorker(pi) {
			continue
		}
		p, err := watch(pid, time.Time{})
		if err != nil {
			continue
		}
		// Checked again once the pidfd is open: it cannot be another process now.
		if pi, err := readProc(pid); err != nil || !isWorker(pi) || p.exited() {
			p.release()
			continue
		}
		ps = append(ps, p)
	}
	return ps
}

// killLeftovers SIGKILLs the workers a dead master left behind (they still
// listen on its socket) and waits a little for them to go.
func killLeftovers(pgid int, exes []string, tenant string) int {
	if errors.Is(unix.Kill(-pgid, 0), unix.ESRCH) {
		return 0 // nobody is left in the group: no need to read /proc
	}
	ps := leftoverWorkers(pgid, exes, tenant)
	for _, p := range ps {
		_ = p.signal(syscall.SIGKILL)
	}
	for _, p := range ps {
		p.wait(2 * time.Second)
		p.release()
	}
	return len(ps)
}
