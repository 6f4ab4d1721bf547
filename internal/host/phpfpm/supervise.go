package phpfpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// runner starts, reloads, stops and finds masters. The Manager calls it
// with the instance locked (but sync and close). supervisor is wcpd's own;
// systemdRunner (systemd.go: one transient unit per master, Slice= per
// tenant, over D-Bus) is the other.
type runner interface {
	// listen makes sure the master's socket exists, is held (by wcpd or
	// systemd) and is named by socketPath; a master running with another
	// socket is stopped.
	listen(ctx context.Context, in *instance, r *rendered) error
	// held reports whether socketPath names the socket held for in.
	held(ctx context.Context, in *instance) (bool, error)
	// sync, before an idle sweep, picks up the masters started behind
	// the Manager's back (systemd's socket activation and Restart=).
	sync(ctx context.Context)
	// status returns the running master of in, verified, or ok false.
	status(ctx context.Context, in *instance) (st status, ok bool, err error)
	// start starts the master (none is running) and returns once its
	// socket accepts connections.
	start(ctx context.Context, in *instance, binary string) error
	// reload makes the running master load its config again, gracefully,
	// and returns once it has.
	reload(ctx context.Context, in *instance) error
	// stop stops the master gracefully, by force after the timeout (and
	// kills the workers it leaves). Remove marks the instance removed
	// first, so that it is not restarted.
	stop(ctx context.Context, in *instance) error
	// adopt finds the masters that run (after a wcpd restart) and watches them.
	adopt(ctx context.Context) error
	// close stops watching; the masters run on.
	close() error
}

// status is what the Manager wants to know about a running master.
type status struct {
	pid     int
	exe     string
	deleted bool // its binary was replaced (a package upgrade) since it started
}

// supervisor is wcpd supervising the masters itself: each runs in a
// session of its own, watched through a pidfd, restarted with backoff.
type supervisor struct{ m *Manager }

func (s *supervisor) listen(ctx context.Context, in *instance, r *rendered) error {
	return s.m.ensureListener(ctx, in, r)
}

func (s *supervisor) held(_ context.Context, in *instance) (bool, error) {
	return in.ln != nil && s.m.current(in.key, in.ln), nil
}

// sync has nothing to do: wcpd starts every master itself.
func (s *supervisor) sync(context.Context) {}

// stableAfter resets the restart backoff of a master that ran this long.
const stableAfter = time.Minute

// exes are the paths /proc/<pid>/exe may show for version's binary.
func (m *Manager) exes(version string) []string {
	bin, ok := m.binaries()[version]
	if !ok {
		bin = filepath.Join(m.opts.BinDir, "php-fpm"+version)
	}
	out := []string{bin}
	if r, err := filepath.EvalSymlinks(bin); err == nil && r != bin {
		out = append(out, r)
	}
	return out
}

func isExe(exe string, exes []string) bool { return slices.Contains(exes, exe) }

// find verifies the master named by k's pid file and watches it; nil when
// none runs.
func (s *supervisor) find(k key) *process {
	m := s.m
	pid := readPidFile(m.pidPath(k))
	if pid <= 0 {
		return nil
	}
	p, err := watch(pid, m.opts.Clock())
	if err != nil {
		return nil
	}
	// Verified after pidfd_open: a pid recycled since cannot pass, and the
	// pidfd keeps naming the verified process.
	pi, err := readProc(pid)
	// The executable may be another than the version's binary now (Apply
	// replaces such a master); the config named is what makes it ours.
	if err != nil || !strings.HasPrefix(filepath.Base(pi.exe), "php-fpm") || !pi.isMaster(m.confPath(k)) || p.gone() {
		p.release()
		return nil
	}
	return p
}

func (s *supervisor) status(_ context.Context, in *instance) (status, bool, error) {
	if in.proc != nil && in.proc.gone() {
		// The supervisor goroutine restarts it; until then it is not running.
		return status{}, false, nil
	}
	if in.proc == nil {
		p := s.find(in.key)
		if p == nil {
			return status{}, false, nil
		}
		s.m.logger(in.key).Info("adopted a running PHP-FPM master", "pid", p.pid)
		in.proc = p
		in.busyAt = s.m.opts.Clock()
		if in.ln == nil {
			ln, err := s.m.takeListener(in.key, p, nil)
			if err != nil {
				s.m.logger(in.key).Warn("cannot take over the master's socket; Apply replaces the master", "err", err)
			}
			in.ln = ln
		}
		s.supervise(in)
	}
	pi, err := readProc(in.proc.pid)
	if err != nil {
		return status{}, false, nil //nolint:nilerr // gone since: not running
	}
	return status{pid: in.proc.pid, exe: pi.exe, deleted: pi.deleted}, true, nil
}

func (s *supervisor) start(ctx context.Context, in *instance, binary string) error {
	m := s.m
	k := in.key
	if p := s.find(k); p != nil {
		p.release()
		return fmt.Errorf("start PHP-FPM master of %s: one runs already", k.name())
	}
	if in.ln == nil {
		return fmt.Errorf("start PHP-FPM master of %s: wcpd holds no socket for it", k.name())
	}
	s.killLeftovers(k, readPidFile(m.pidPath(k)))
	if err := ensureDir(m.opts.RunDir, runDirMode); err != nil {
		return err
	}
	// The socket wcpd holds is the master's descriptor 3; FPM_SOCKETS
	// makes php-fpm use it for its listen path instead of binding.
	c := cmdrun.Cmd{Path: binary, Args: []string{"--nodaemonize", "--fpm-config", m.confPath(k)}, Setsid: true,
		ExtraFiles: []*os.File{in.ln.f}, Env: []string{"FPM_SOCKETS=" + m.heldPath(k) + "=3"}}
	logOff := fileSize(in.errorLog)
	// The master's stdout and stderr (what it says before it opens its
	// error_log, and around a reload) go to its error log: a file, never a
	// pipe to wcpd, which would break when wcpd exits.
	var out io.Writer
	if f := openLog(in.errorLog); f != nil {
		defer f.Close() //nolint:errcheck // the master has its own copy
		out = f
	}
	// The master outlives this call and wcpd: it must not end with ctx.
	var cp *cmdrun.Process
	startIt := func(cgroupFD int) error {
		if cgroupFD >= 0 {
			c.UseCgroupFD, c.CgroupFD = true, cgroupFD
		}
		var err error
		cp, err = cmdrun.Start(context.WithoutCancel(ctx), c, out)
		return err
	}
	var err error
	if m.opts.StartIn != nil {
		err = m.opts.StartIn(k.tenant, startIt)
	} else {
		err = startIt(-1)
	}
	if err != nil {
		return fmt.Errorf("start PHP-FPM master of %s: %w", k.name(), err)
	}
	p, err := watch(cp.Pid(), m.opts.Clock())
	if err != nil {
		return fmt.Errorf("start PHP-FPM master of %s: exited at once: %s", k.name(), logTail(in.errorLog, logOff))
	}
	if err := s.waitStarted(ctx, in, p); err != nil {
		_ = p.signal(syscall.SIGKILL)
		p.wait(5 * time.Second)
		p.release()
		return fmt.Errorf("start PHP-FPM master of %s: %w: %s", k.name(), err, logTail(in.errorLog, logOff))
	}
	in.proc = p
	in.busyAt = m.opts.Clock()
	m.count(func(st *Stats) { st.Starts++ })
	if err := m.markLoaded(k); err != nil {
		return err
	}
	m.logger(k).Info("started PHP-FPM master", "pid", p.pid)
	s.supervise(in)
	return nil
}

// waitStarted waits until the master wrote its pid file, which php-fpm does
// after it bound its socket.
func (s *supervisor) waitStarted(ctx context.Context, in *instance, p *process) error {
	m := s.m
	deadline := time.NewTimer(m.opts.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if readPidFile(m.pidPath(in.key)) == p.pid {
			if _, err := os.Stat(m.socketPath(in.key)); err == nil {
				return nil
			}
		}
		select {
		case <-p.done:
			return errors.New("the master exited while starting")
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no socket after %s", m.opts.StartTimeout)
		case <-tick.C:
		}
	}
}

// readyLine is what php-fpm logs when it serves, after a start or a reload.
const readyLine = "ready to handle connections"

func (s *supervisor) reload(ctx context.Context, in *instance) error {
	m := s.m
	p := in.proc
	off := fileSize(in.errorLog)
	if err := p.signal(syscall.SIGUSR2); err != nil {
		return fmt.Errorf("reload PHP-FPM master of %s: %w", in.name(), err)
	}
	// php-fpm lets running requests finish (process_control_timeout), then
	// re-executes itself with the new config; the socket stays open, so
	// requests meanwhile wait in its backlog. Its log says when it is done.
	if in.errorLog != "" {
		if err := waitLog(ctx, in.errorLog, off, readyLine, p, ControlTimeout+m.opts.StartTimeout); err != nil {
			return fmt.Errorf("reload PHP-FPM master of %s: %w: %s", in.name(), err, logTail(in.errorLog, off))
		}
	}
	m.logger(in.key).Info("reloaded PHP-FPM master", "pid", p.pid)
	return m.markLoaded(in.key)
}

// waitLog waits until the file has line after offset off.
func waitLog(ctx context.Context, path string, off int64, line string, p *process, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(readFrom(path, off, 1<<20), line) {
			return nil
		}
		select {
		case <-p.done:
			return errors.New("the master exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not confirmed after %s", timeout)
		case <-tick.C:
		}
	}
}

func (s *supervisor) stop(ctx context.Context, in *instance) error {
	m := s.m
	p := in.proc
	if p == nil {
		p = s.find(in.key)
	}
	in.proc = nil
	if p == nil {
		s.killLeftovers(in.key, readPidFile(m.pidPath(in.key)))
		return nil
	}
	defer p.release()
	log := m.logger(in.key)
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGQUIT, m.opts.StopTimeout}, {syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		if err := p.signal(step.sig); errors.Is(err, errGone) {
			break
		} else if err != nil {
			return err
		}
		if waitCtx(ctx, p, step.wait) {
			break
		}
		log.Warn("PHP-FPM master did not stop in time", "pid", p.pid, "signal", step.sig.String())
	}
	if !p.gone() {
		return fmt.Errorf("stop PHP-FPM master of %s: pid %d survived SIGKILL", in.name(), p.pid)
	}
	s.killLeftovers(in.key, p.pid)
	log.Info("stopped PHP-FPM master", "pid", p.pid)
	return nil
}

// killLeftovers kills the workers that the dead master pid (the leader of
// their process group) left behind: they still listen on the socket, and
// php-fpm refuses to start while somebody does.
func (s *supervisor) killLeftovers(k key, pid int) {
	if pid <= 0 {
		return
	}
	if n := killLeftovers(pid, s.m.exes(k.version), k.tenant); n > 0 {
		s.m.logger(k).Warn("killed workers left behind by a dead PHP-FPM master", "master", pid, "workers", n)
	}
}

// waitCtx waits up to d for the process to exit; when ctx ends it stops
// waiting at once (the caller escalates).
func waitCtx(ctx context.Context, p *process, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return p.gone()
}

func (s *supervisor) adopt(ctx context.Context) error {
	m := s.m
	entries, err := os.ReadDir(m.opts.RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("adopt PHP-FPM masters: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(name, '-')
		if i < 0 {
			continue
		}
		k := key{name[:i], name[i+1:]}
		if !nameRE.MatchString(k.tenant) || !versionRE.MatchString(k.version) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, m.locked(k, func(in *instance) error {
			_, ok, err := s.status(ctx, in)
			if err == nil && ok && in.ln == nil {
				m.logger(k).Warn("adopted a PHP-FPM master whose socket wcpd does not hold; Apply replaces it")
			}
			if err == nil && !ok {
				// Its master is gone: a stale pid file. Apply starts a new one.
				m.logger(k).Info("PHP-FPM master is not running; not adopted", "pidFile", m.pidPath(k))
			}
			return err
		}))
	}
	return errors.Join(errs...)
}

// supervise starts in's supervisor goroutine unless it runs.
func (s *supervisor) supervise(in *instance) {
	if in.supervised {
		return
	}
	// Added under m.mu, so that Close, which sets closed under m.mu and
	// then waits, never misses one.
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.closed {
		return
	}
	in.supervised = true
	s.m.wg.Add(1)
	go s.loop(in)
}

// loop watches in's master and restarts it, with backoff, when it exits
// without being asked to (with IdleStop: arms its socket again, after the
// backoff, so that the next request starts it). It ends when the master is
// stopped on purpose or removed, or the Manager closed.
func (s *supervisor) loop(in *instance) {
	m := s.m
	defer m.wg.Done()
	log := m.logger(in.key)
	for {
		in.mu.Lock()
		p := in.proc
		if p == nil && !in.restarting {
			// Stopped on purpose (idle, replaced, removed): start supervises again.
			in.supervised = false
			in.mu.Unlock()
			return
		}
		in.mu.Unlock()
		if p != nil {
			select {
			case <-m.closing:
				return
			case <-in.stop:
				return
			case <-p.done:
			}
			in.mu.Lock()
			if in.proc != p { // stopped or replaced on purpose
				in.mu.Unlock()
				p.release()
				continue
			}
			in.proc = nil
			in.restarting = true
			in.mu.Unlock()
			ran := m.opts.Clock().Sub(p.started)
			if ran >= stableAfter {
				in.restartWait = 0
			}
			p.release()
			s.killLeftovers(in.key, p.pid)
			log.Warn("PHP-FPM master exited; restarting", "pid", p.pid, "ran", ran.Round(time.Millisecond),
				"restartIn", nextDelay(in.restartWait, m.opts), "onDemand", m.onDemand())
		}
		in.restartWait = nextDelay(in.restartWait, m.opts)
		t := time.NewTimer(in.restartWait)
		select {
		case <-m.closing:
			t.Stop()
			return
		case <-in.stop:
			t.Stop()
			return
		case <-t.C:
		}
		in.mu.Lock()
		if in.removed {
			in.mu.Unlock()
			return
		}
		var err error
		switch {
		case in.proc != nil: // Apply started one meanwhile
			in.restarting = false
		case m.onDemand():
			in.restarting = false
			m.arm(in)
		default:
			var bin string
			if _, bin, err = m.resolve(in.version); err == nil {
				err = s.start(context.Background(), in, bin)
			}
			in.restarting = err != nil
		}
		in.mu.Unlock()
		if err != nil {
			log.Error("cannot restart PHP-FPM master", "err", err, "retryIn", nextDelay(in.restartWait, m.opts))
		}
	}
}

func nextDelay(d time.Duration, o Options) time.Duration {
	if d == 0 {
		return o.RestartDelay
	}
	return min(2*d, o.MaxRestartDelay)
}

func (s *supervisor) close() error {
	ins := s.m.instances()
	for _, in := range ins {
		in.mu.Lock()
		if in.proc != nil {
			in.proc.release()
			in.proc = nil
		}
		// A running master keeps its copy of the socket; a stopped one's
		// socket ends here, until the next wcpd's Apply makes a new one.
		s.m.closeListener(in)
		in.mu.Unlock()
	}
	return nil
}

// gone reports whether the process has exited, without waiting for the
// watching goroutine.
func (p *process) gone() bool {
	if p.exited() {
		return true
	}
	rc, err := p.fd.SyscallConn()
	if err != nil {
		return true
	}
	var exited bool
	if err := rc.Control(func(fd uintptr) { exited = pidfdExited(int(fd)) }); err != nil { //nolint:gosec // a descriptor fits an int
		return true
	}
	return exited
}

// openCgroup opens the tenant's cgroup directory for CLONE_INTO_CGROUP.
func readPidFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 32 {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}
