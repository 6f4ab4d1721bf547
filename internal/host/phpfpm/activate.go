package phpfpm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Socket activation: wcpd, not php-fpm, owns each master's listening
// socket. It binds it once, keeps it open while masters come and go, and
// hands it to every master it starts (FPM_SOCKETS). So a request never
// finds nobody listening: during a restart, and with Options.IdleStop while
// no master runs at all, connections wait in the socket's backlog until a
// master accepts them.
//
// php-fpm unlinks its listen path when it exits, even an inherited one.
// The path in its config is therefore a private one (heldPath, in a
// root-only directory), and the socket nginx connects to (socketPath) is a
// second hard link to the same socket file, which php-fpm never touches.

// listenBacklog is the socket's backlog: the requests that can wait for a
// master that starts. php-fpm's own default.
const listenBacklog = 511

// listener is a socket wcpd holds for one master.
type listener struct {
	f *os.File // blocking: it is shared with php-fpm, whose workers accept on it
	// ino is the file system inode of the socket file: socketPath names
	// this socket while it has this inode.
	ino uint64
}

func (l *listener) fd() int { return int(l.f.Fd()) } //nolint:gosec // a descriptor fits an int

// heldDir holds the private names of the sockets, the masters' listen paths.
func (m *Manager) heldDir() string       { return filepath.Join(m.opts.RunDir, "held") }
func (m *Manager) heldPath(k key) string { return filepath.Join(m.heldDir(), k.name()+".sock") }

// newListener binds and listens on a new socket for k, owned by uid and the
// web server's group, mode 0660, and links it to socketPath atomically (a
// stale socket file there is replaced, never removed first).
func (m *Manager) newListener(k key, uid int) (*listener, error) {
	if err := ensureDir(m.opts.RunDir, runDirMode); err != nil {
		return nil, err
	}
	if err := ensureDir(m.heldDir(), 0o700); err != nil {
		return nil, err
	}
	held := m.heldPath(k)
	if err := removeFile(held); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for %s: %w", k.name(), err)
	}
	fail := func(op string, err error) (*listener, error) {
		_ = unix.Close(fd)
		_ = removeFile(held)
		return nil, &fs.PathError{Op: op, Path: held, Err: err}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: held}); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return fail("listen", err)
	}
	// The directory is root's, 0700: nobody reaches the socket through
	// this name before its owner and mode are right.
	if err := unix.Lchown(held, uid, m.webGID); err != nil {
		return fail("chown", err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, held, uint32(socketMode), 0); err != nil {
		return fail("chmod", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(held, &st); err != nil {
		return fail("stat", err)
	}
	pub := m.socketPath(k)
	tmp := pub + ".new"
	if err := removeFile(tmp); err != nil {
		return fail("remove", err)
	}
	if err := os.Link(held, tmp); err != nil {
		return fail("link", err)
	}
	if err := os.Rename(tmp, pub); err != nil {
		_ = removeFile(tmp)
		return fail("rename", err)
	}
	return &listener{f: os.NewFile(uintptr(fd), held), ino: st.Ino}, nil
}

// current reports whether socketPath still names l's socket.
func (m *Manager) current(k key, l *listener) bool {
	var st unix.Stat_t
	return unix.Lstat(m.socketPath(k), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK && st.Ino == l.ino
}

// takeListener gets a duplicate of the listening socket of k that the
// running master p holds (wcpd restarted and lost its own): the socket
// bound to heldPath, found in /proc/net/unix, among p's descriptors,
// copied with pidfd_getfd(2). nil when p holds no such socket (a master
// that bound its own, from before wcpd held sockets).
func (m *Manager) takeListener(k key, p *process, bound map[string][]uint64) (*listener, error) {
	if bound == nil {
		var err error
		if bound, err = listeningUnixSockets(); err != nil {
			return nil, err
		}
	}
	inodes := bound[m.heldPath(k)]
	if len(inodes) == 0 {
		return nil, nil
	}
	dir := "/proc/" + strconv.Itoa(p.pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	target := -1
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, ino := range inodes {
			if link == "socket:["+strconv.FormatUint(ino, 10)+"]" {
				target, _ = strconv.Atoi(e.Name())
			}
		}
	}
	if target < 0 {
		return nil, nil
	}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var gerr error
	if err := rc.Control(func(pidfd uintptr) { fd, gerr = unix.PidfdGetfd(int(pidfd), target, 0) }); err != nil { //nolint:gosec // a descriptor fits an int
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("take the socket of %s from pid %d: pidfd_getfd: %w", k.name(), p.pid, gerr)
	}
	// socketPath is trusted to name it when it is a socket file: the
	// master only ever had this one.
	var st unix.Stat_t
	if err := unix.Lstat(m.socketPath(k), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		_ = unix.Close(fd)
		return nil, nil //nolint:nilerr // nginx cannot reach it: a new socket is needed
	}
	return &listener{f: os.NewFile(uintptr(fd), m.heldPath(k)), ino: st.Ino}, nil
}

// listeningUnixSockets maps each bound path of a listening unix socket in
// this network namespace to the sockets' inodes (/proc/net/unix).
func listeningUnixSockets() (map[string][]uint64, error) {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only
	out := map[string][]uint64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fs := strings.Fields(sc.Text())
		const acceptCon = 0x10000 // __SO_ACCEPTCON: listening
		if len(fs) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(fs[3], 16, 32)
		ino, err2 := strconv.ParseUint(fs[6], 10, 64)
		if err1 != nil || err2 != nil || flags&acceptCon == 0 {
			continue
		}
		out[fs[7]] = append(out[fs[7]], ino)
	}
	return out, sc.Err()
}

// closeListener stops watching in's socket and closes it. The socket files
// stay for removeFiles.
func (m *Manager) closeListener(in *instance) {
	if in.ln == nil {
		return
	}
	if m.act != nil {
		m.act.forget(in.ln.fd())
	}
	_ = in.ln.f.Close()
	in.ln = nil
}

// activator starts masters on demand: one goroutine waits (epoll) on the
// sockets whose master does not run, each armed once (EPOLLONESHOT), and
// calls start with the instance's key when a connection waits; start must
// not block.
type activator struct {
	epfd, wake int
	start      func(key)

	mu    sync.Mutex
	keys  map[int]key  // socket descriptor → master
	added map[int]bool // registered with the epoll instance
}

func newActivator(start func(key)) (*activator, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)} //nolint:gosec // a descriptor fits an int32
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &activator{epfd: epfd, wake: wake, start: start, keys: map[int]key{}, added: map[int]bool{}}, nil
}

// arm makes the next waiting connection on fd start k's master (once).
// Level-triggered: a connection that waits already fires at once.
func (a *activator) arm(fd int, k key) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)} //nolint:gosec // a descriptor fits an int32
	op := unix.EPOLL_CTL_ADD
	if a.added[fd] {
		op = unix.EPOLL_CTL_MOD
	}
	if err := unix.EpollCtl(a.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("arm the socket of %s: epoll_ctl: %w", k.name(), err)
	}
	a.added[fd], a.keys[fd] = true, k
	return nil
}

// forget unregisters fd before it is closed.
func (a *activator) forget(fd int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.added[fd] {
		_ = unix.EpollCtl(a.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
	delete(a.added, fd)
	delete(a.keys, fd)
}

// run waits for connections until close. Each fired socket is disarmed
// (EPOLLONESHOT) until arm is called again.
func (a *activator) run() {
	evs := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(a.epfd, evs, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == a.wake {
				return
			}
			a.mu.Lock()
			k, ok := a.keys[fd]
			a.mu.Unlock()
			if ok {
				a.start(k)
			}
		}
	}
}

// close ends run; the caller waits for it before closeFDs.
func (a *activator) close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(a.wake, one[:])
}

func (a *activator) closeFDs() {
	_ = unix.Close(a.epfd)
	_ = unix.Close(a.wake)
}

// activate starts k's master for a connection that waits on its socket.
func (m *Manager) activate(k key) {
	err := m.locked(k, func(in *instance) error {
		if in.ln == nil || in.proc != nil && !in.proc.gone() {
			return nil // removed meanwhile, or running already
		}
		_, bin, err := m.resolve(in.version)
		if err == nil {
			err = m.run.start(context.Background(), in, bin)
		}
		if err != nil {
			// Try again for the next connection, after the backoff: the
			// one that waits now fires again at once.
			in.restartWait = nextDelay(in.restartWait, m.opts)
			m.afterBackoff(in)
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		m.logger(k).Error("cannot start PHP-FPM master on demand", "err", err, "retryIn", m.opts.RestartDelay)
	}
}

// afterBackoff arms in's socket again once its restart backoff has passed.
func (m *Manager) afterBackoff(in *instance) {
	ln, wait := in.ln, in.restartWait
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-m.closing:
			return
		case <-in.stop:
			return
		case <-t.C:
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.ln == ln && in.proc == nil && !in.removed {
			m.arm(in)
		}
	}()
}

// arm makes the next connection on in's socket start its master. Called
// with in locked, when no master runs (and IdleStop is set).
func (m *Manager) arm(in *instance) {
	if m.act == nil || in.ln == nil {
		return
	}
	if err := m.act.arm(in.ln.fd(), in.key); err != nil {
		m.logger(in.key).Error("cannot watch the socket for requests", "err", err)
	}
}

// idleSweep stops masters that had no worker for Options.IdleStop: with
// pm = ondemand a master forks a worker per busy slot and lets it go after
// pm.process_idle_timeout, so no worker means no request in that time.
// One pass reads /proc once for all masters.
func (m *Manager) idleSweep() {
	defer m.wg.Done()
	every := min(max(m.opts.IdleStop/4, 250*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case <-t.C:
		}
		m.sweepOnce()
	}
}

func (m *Manager) sweepOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), m.opts.StartTimeout)
	m.run.sync(ctx)
	cancel()
	now := m.opts.Clock()
	ins := m.instances()
	masters := map[int]*instance{}
	for _, in := range ins {
		if !in.mu.TryLock() {
			continue // busy: applied, started or stopped right now
		}
		if in.proc != nil && !in.removed {
			masters[in.proc.pid] = in
		}
		in.mu.Unlock()
	}
	if len(masters) == 0 {
		return
	}
	busy := workersOf(masters)
	for pid, in := range masters {
		in.mu.Lock()
		switch {
		case in.proc == nil || in.proc.pid != pid || in.removed:
		case busy[pid] || in.busyAt.IsZero():
			in.busyAt = now
		case now.Sub(in.busyAt) >= m.opts.IdleStop:
			m.logger(in.key).Info("stopping idle PHP-FPM master; the next request starts it", "pid", pid,
				"idle", now.Sub(in.busyAt).Round(time.Second))
			if err := m.run.stop(context.Background(), in); err != nil {
				m.logger(in.key).Error("cannot stop idle PHP-FPM master", "err", err)
			} else {
				m.count(func(st *Stats) { st.IdleStops++ })
			}
			m.arm(in)
		}
		in.mu.Unlock()
	}
}

// workersOf reports which of the masters have a child (a worker).
func workersOf[T any](masters map[int]T) map[int]bool {
	busy := map[int]bool{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return busy
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			if _, ok := masters[ppid]; ok {
				busy[ppid] = true
			}
		}
	}
	return busy
}
