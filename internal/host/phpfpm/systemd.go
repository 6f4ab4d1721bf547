package phpfpm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host/sdbus"
)

// Runners, the values of Options.Runner.
const (
	// RunnerAuto (or ""): RunnerSystemd where systemd is PID 1, else RunnerWcpd.
	RunnerAuto = "auto"
	// RunnerWcpd: wcpd starts and watches every master itself (supervise.go).
	RunnerWcpd = "wcpd"
	// RunnerSystemd: every master is a transient systemd unit (systemd.go).
	RunnerSystemd = "systemd"
)

// newRunner returns the runner Options.Runner asks for.
func newRunner(m *Manager) (runner, error) {
	switch m.opts.Runner {
	case RunnerWcpd:
		return &supervisor{m: m}, nil
	case RunnerSystemd:
	case "", RunnerAuto:
		if !sdbus.Booted() {
			return &supervisor{m: m}, nil
		}
	default:
		return nil, fmt.Errorf("phpfpm: Runner %q: want %q, %q or %q", m.opts.Runner, RunnerAuto, RunnerWcpd, RunnerSystemd)
	}
	if m.opts.StartIn != nil {
		m.log.Info("PHP-FPM masters run in systemd slices; Options.StartIn is not used")
	}
	return &systemdRunner{m: m, inodes: map[key]uint64{}, pids: map[key]int{}}, nil
}

// systemdRunner runs each master as a transient systemd unit, over
// systemd's private D-Bus socket (/run/systemd/private: no dbus-daemon):
//
//	wcp360-php-<t>-<v>.socket   ListenStream=<RunDir>/<t>-<v>.sock, <t>:<web group> 0660
//	wcp360-php-<t>-<v>.service  php-fpm<v> --nodaemonize --fpm-config <conf>, Type=notify,
//	                            Slice=wcp360-tenant-<t>.slice, FPM_SOCKETS=<held path>=3
//
// systemd, not wcpd, holds the socket: it binds the name nginx connects
// to, and the service gets it as descriptor 3. The pool's listen path (the
// held path) is only the key FPM_SOCKETS maps to that descriptor: nothing
// is bound there, so php-fpm's unlinking it when it exits touches nothing.
// A master that is not running is started by the next connection (socket
// activation), which is all Options.IdleStop needs from systemd.
type systemdRunner struct {
	m *Manager

	sd sdbus.Conn // systemd; its version tells the properties it knows

	mu sync.Mutex
	// inodes: the inode of the socket file each socket unit bound, taken
	// after it started (or when first seen): the socket file is current
	// while it has this inode.
	inodes map[key]uint64
	// pids: the last main pid seen per master, 0 for none: a new one is a
	// start (Stats.Starts) made by systemd (activation, Restart=).
	pids map[key]int
}

// Unit names. A tenant name may contain '-', which in a slice name means
// nesting: it is escaped as systemd-escape does.
func serviceUnit(k key) string { return "wcp360-php-" + k.name() + ".service" }
func socketUnit(k key) string  { return "wcp360-php-" + k.name() + ".socket" }
func sliceUnit(tenant string) string {
	return "wcp360-tenant-" + strings.ReplaceAll(tenant, "-", `\x2d`) + ".slice"
}

// unitKey parses a unit name of this package.
func unitKey(unit string) (key, bool) {
	rest, ok := strings.CutPrefix(unit, "wcp360-php-")
	if !ok {
		return key{}, false
	}
	name, ok := strings.CutSuffix(rest, ".service")
	if !ok {
		if name, ok = strings.CutSuffix(rest, ".socket"); !ok {
			return key{}, false
		}
	}
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return key{}, false
	}
	k := key{name[:i], name[i+1:]}
	return k, nameRE.MatchString(k.tenant) && versionRE.MatchString(k.version)
}

// Unit states, as systemd names them.
const (
	stateActive       = "active"
	stateReloading    = "reloading"
	stateActivating   = "activating"
	stateDeactivating = "deactivating"
	loadLoaded        = "loaded"
)

// errSystemd wraps what systemd answered.
var errSystemd = sdbus.ErrSystemd

// dbusConn returns the connection to systemd (sdbus.Conn).
func (s *systemdRunner) dbusConn() (*sddbus.Conn, error) { return s.sd.Get(context.Background()) }

func leadingInt(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, _ := strconv.Atoi(s[:i])
	return n
}

// unitStates returns the load and active state of units ("" when systemd
// does not know one).
func (s *systemdRunner) unitStates(ctx context.Context, units ...string) (map[string]sddbus.UnitStatus, error) {
	c, err := s.dbusConn()
	if err != nil {
		return nil, err
	}
	us, err := c.ListUnitsByNamesContext(ctx, units)
	if err != nil {
		return nil, fmt.Errorf("%w: list units %v: %w", errSystemd, units, err)
	}
	out := make(map[string]sddbus.UnitStatus, len(us))
	for _, u := range us {
		out[u.Name] = u
	}
	return out, nil
}

// job runs a job-returning call and waits for the job's result.
func (s *systemdRunner) job(ctx context.Context, what string, call func(c *sddbus.Conn, ch chan<- string) (int, error)) error {
	return s.sd.Job(ctx, what, call)
}

// socketProps and serviceProps are the units of a master.
func (s *systemdRunner) socketProps(r *rendered) []sddbus.Property {
	m := s.m
	return []sddbus.Property{
		sddbus.PropDescription(fmt.Sprintf("PHP %s FastCGI socket of tenant %s (WCP360)", r.version, r.tenant)),
		{Name: "Listen", Value: dbus.MakeVariant([]struct{ Type, Path string }{{"Stream", m.socketPath(r.key)}})},
		{Name: "SocketUser", Value: dbus.MakeVariant(strconv.Itoa(r.pool.UID))},
		{Name: "SocketGroup", Value: dbus.MakeVariant(strconv.Itoa(m.webGID))},
		{Name: "SocketMode", Value: dbus.MakeVariant(uint32(socketMode))},
		{Name: "DirectoryMode", Value: dbus.MakeVariant(uint32(runDirMode))},
		{Name: "Backlog", Value: dbus.MakeVariant(uint32(listenBacklog))},
	}
}

func (s *systemdRunner) serviceProps(r *rendered) []sddbus.Property {
	m := s.m
	usec := func(d time.Duration) dbus.Variant { return dbus.MakeVariant(uint64(d / time.Microsecond)) } //nolint:gosec // positive durations
	props := []sddbus.Property{
		sddbus.PropDescription(fmt.Sprintf("PHP %s FPM master of tenant %s (WCP360)", r.version, r.tenant)),
		// php-fpm says READY=1 once its pool listens: a start job ends then.
		sddbus.PropType("notify"),
		// (go-systemd's "uncleanIsFailure" is systemd's ignore-failure flag: false.)
		sddbus.PropExecStart([]string{r.binary, "--nodaemonize", "--fpm-config", m.confPath(r.key)}, false),
		{Name: "Environment", Value: dbus.MakeVariant([]string{"FPM_SOCKETS=" + m.heldPath(r.key) + "=3"})},
		sddbus.PropSlice(sliceUnit(r.tenant)),
		// SIGQUIT: running requests finish (process_control_timeout); then
		// SIGKILL for whatever is left of the cgroup.
		{Name: "KillMode", Value: dbus.MakeVariant("mixed")},
		{Name: "KillSignal", Value: dbus.MakeVariant(int32(syscall.SIGQUIT))},
		{Name: "TimeoutStopUSec", Value: usec(m.opts.StopTimeout)},
		{Name: "TimeoutStartUSec", Value: usec(m.opts.StartTimeout)},
		{Name: "Restart", Value: dbus.MakeVariant("on-failure")},
		{Name: "RestartUSec", Value: usec(m.opts.RestartDelay)},
		// Never give up: a master that keeps failing is retried (a
		// start-limit-hit service would take its socket down too).
		{Name: "StartLimitIntervalUSec", Value: usec(0)},
	}
	if leadingInt(s.sd.Version()) >= 254 {
		// Backoff, as wcpd's own supervisor does (systemd 254 and later).
		steps := 0
		for d := m.opts.RestartDelay; d < m.opts.MaxRestartDelay; d *= 2 {
			steps++
		}
		props = append(props,
			sddbus.Property{Name: "RestartSteps", Value: dbus.MakeVariant(uint32(steps))}, //nolint:gosec // a few dozen at most
			sddbus.Property{Name: "RestartMaxDelayUSec", Value: usec(m.opts.MaxRestartDelay)})
	}
	return props
}

// unitsMatch reports whether the loaded units are the ones r wants: the
// same socket owner and mode, the same binary. (Only these can change
// while wcpd runs; a transient unit cannot be edited, it is replaced.)
func (s *systemdRunner) unitsMatch(ctx context.Context, r *rendered) bool {
	c, err := s.dbusConn()
	if err != nil {
		return false
	}
	sp, err := c.GetUnitTypePropertiesContext(ctx, socketUnit(r.key), "Socket")
	if err != nil {
		return false
	}
	user, _ := sp["SocketUser"].(string)
	group, _ := sp["SocketGroup"].(string)
	mode, _ := sp["SocketMode"].(uint32)
	if user != strconv.Itoa(r.pool.UID) || group != strconv.Itoa(s.m.webGID) || fs.FileMode(mode) != socketMode {
		return false
	}
	ep, err := c.GetServicePropertyContext(ctx, serviceUnit(r.key), "ExecStart")
	if err != nil {
		return false
	}
	execs, _ := ep.Value.Value().([][]any)
	if len(execs) != 1 || len(execs[0]) == 0 {
		return false
	}
	path, _ := execs[0][0].(string)
	return path == r.binary
}

// current reports whether the socket file is the one k's socket unit
// bound (its inode as recorded; the first sight is trusted, as after a
// wcpd restart: only root writes RunDir).
func (s *systemdRunner) current(k key) bool {
	var st unix.Stat_t
	if err := unix.Lstat(s.m.socketPath(k), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ino, ok := s.inodes[k]; ok {
		return ino == st.Ino
	}
	s.inodes[k] = st.Ino
	return true
}

func (s *systemdRunner) listen(ctx context.Context, in *instance, r *rendered) error {
	k := in.key
	svc, sock := serviceUnit(k), socketUnit(k)
	states, err := s.unitStates(ctx, svc, sock)
	if err != nil {
		return err
	}
	if states[sock].ActiveState != stateActive || !s.current(k) || !s.unitsMatch(ctx, r) {
		if states[sock].LoadState == loadLoaded || states[svc].LoadState == loadLoaded {
			s.m.logger(k).Warn("PHP-FPM units differ from what is wanted (socket gone, owner or binary changed); replacing them",
				"socket", states[sock].ActiveState, "service", states[svc].ActiveState)
		}
		if err := s.removeUnits(ctx, in); err != nil {
			return err
		}
		if err := s.createUnits(ctx, r); err != nil {
			return err
		}
	}
	// The .loaded marker says what the running master loaded, or what the
	// next one will: one that systemd starts (a connection, Restart=)
	// loads the files on disk now, which Apply wrote and tested.
	if pid, err := s.mainPID(ctx, k); err != nil {
		return err
	} else if pid == 0 {
		return s.m.markLoaded(k)
	}
	return nil
}

// createUnits makes the socket unit (started: systemd binds the socket)
// and its service (loaded, not started), in one transaction.
func (s *systemdRunner) createUnits(ctx context.Context, r *rendered) error {
	k := r.key
	if err := ensureDir(s.m.opts.RunDir, runDirMode); err != nil {
		return err
	}
	// A socket file of the wcpd runner, say: systemd binds a new one.
	if err := removeFile(s.m.socketPath(k)); err != nil {
		return err
	}
	aux := []sddbus.PropertyCollection{{Name: serviceUnit(k), Properties: s.serviceProps(r)}}
	err := s.job(ctx, "start "+socketUnit(k), func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StartTransientUnitAux(ctx, socketUnit(k), "fail", s.socketProps(r), aux, ch)
	})
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.m.socketPath(k), &st); err != nil {
		return &fs.PathError{Op: "stat", Path: s.m.socketPath(k), Err: err}
	}
	s.mu.Lock()
	s.inodes[k] = st.Ino
	s.mu.Unlock()
	s.m.logger(k).Info("created PHP-FPM units", "socket", socketUnit(k), "service", serviceUnit(k), "slice", sliceUnit(k.tenant))
	return nil
}

// removeUnits stops k's units and waits until systemd has unloaded them
// (a transient unit's name is free again only then).
func (s *systemdRunner) removeUnits(ctx context.Context, in *instance) error {
	k := in.key
	units := []string{serviceUnit(k), socketUnit(k)}
	states, err := s.unitStates(ctx, units...)
	if err != nil {
		return err
	}
	c, err := s.dbusConn()
	if err != nil {
		return err
	}
	for _, u := range units {
		if states[u].LoadState != loadLoaded {
			continue
		}
		if st := states[u].ActiveState; st != "inactive" && st != "failed" {
			if err := s.job(ctx, "stop "+u, func(c *sddbus.Conn, ch chan<- string) (int, error) {
				return c.StopUnitContext(ctx, u, "replace", ch)
			}); err != nil {
				return err
			}
		}
		_ = c.ResetFailedUnitContext(ctx, u) // not failed: nothing to reset
	}
	if in.proc != nil {
		in.proc.release()
		in.proc = nil
	}
	s.mu.Lock()
	delete(s.inodes, k)
	s.pids[k] = 0
	s.mu.Unlock()
	deadline := time.NewTimer(s.m.opts.StartTimeout)
	defer deadline.Stop()
	for {
		states, err := s.unitStates(ctx, units...)
		if err != nil {
			return err
		}
		if states[units[0]].LoadState != loadLoaded && states[units[1]].LoadState != loadLoaded {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w: %s still loaded after %s", errSystemd, units, s.m.opts.StartTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// mainPID is the main pid of k's service, 0 when it does not run. A start
// or stop under way is waited for (up to StartTimeout).
func (s *systemdRunner) mainPID(ctx context.Context, k key) (int, error) {
	svc := serviceUnit(k)
	deadline := time.NewTimer(s.m.opts.StartTimeout)
	defer deadline.Stop()
	for {
		states, err := s.unitStates(ctx, svc)
		if err != nil {
			return 0, err
		}
		switch u := states[svc]; u.ActiveState {
		case stateActive, stateReloading:
			c, err := s.dbusConn()
			if err != nil {
				return 0, err
			}
			p, err := c.GetServicePropertyContext(ctx, svc, "MainPID")
			if err != nil {
				return 0, fmt.Errorf("%w: MainPID of %s: %w", errSystemd, svc, err)
			}
			pid, _ := p.Value.Value().(uint32)
			return int(pid), nil
		case stateActivating, stateDeactivating:
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-deadline.C:
				return 0, fmt.Errorf("%w: %s is still %s (%s) after %s", errSystemd, svc, u.ActiveState, u.SubState, s.m.opts.StartTimeout)
			case <-time.After(10 * time.Millisecond):
			}
		default:
			return 0, nil
		}
	}
}

func (s *systemdRunner) status(ctx context.Context, in *instance) (status, bool, error) {
	m := s.m
	pid, err := s.mainPID(ctx, in.key)
	if err != nil {
		return status{}, false, err
	}
	if pid <= 0 {
		if in.proc != nil {
			in.proc.release()
			in.proc = nil
		}
		s.seen(in.key, 0)
		return status{}, false, nil
	}
	if in.proc == nil || in.proc.pid != pid || in.proc.gone() {
		if in.proc != nil {
			in.proc.release()
			in.proc = nil
		}
		p, err := watch(pid, m.opts.Clock())
		if err != nil {
			return status{}, false, nil //nolint:nilerr // exited since: not running
		}
		// Verified after pidfd_open, as the supervisor does: the unit's
		// main process is this version's php-fpm running our config.
		pi, err := readProc(pid)
		if err != nil || !strings.HasPrefix(filepath.Base(pi.exe), "php-fpm") || !pi.isMaster(m.confPath(in.key)) {
			p.release()
			return status{}, false, fmt.Errorf("%w: the main process %d of %s is not the PHP-FPM master of %s",
				errSystemd, pid, serviceUnit(in.key), m.confPath(in.key))
		}
		in.proc = p
		in.busyAt = m.opts.Clock()
		s.seen(in.key, pid)
	}
	pi, err := readProc(in.proc.pid)
	if err != nil {
		return status{}, false, nil //nolint:nilerr // gone since: not running
	}
	return status{pid: in.proc.pid, exe: pi.exe, deleted: pi.deleted}, true, nil
}

// seen records k's main pid; a new one after a known state is a start
// that systemd made.
func (s *systemdRunner) seen(k key, pid int) {
	s.mu.Lock()
	last, known := s.pids[k]
	s.pids[k] = pid
	s.mu.Unlock()
	if known && pid > 0 && pid != last {
		s.m.count(func(st *Stats) { st.Starts++ })
		s.m.logger(k).Info("systemd started the PHP-FPM master", "pid", pid)
	}
}

func (s *systemdRunner) start(ctx context.Context, in *instance, _ string) error {
	m := s.m
	k := in.key
	off := fileSize(in.errorLog)
	s.mu.Lock()
	delete(s.pids, k) // counted here, not by seen
	s.mu.Unlock()
	if err := s.job(ctx, "start "+serviceUnit(k), func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StartUnitContext(ctx, serviceUnit(k), "replace", ch)
	}); err != nil {
		return fmt.Errorf("start PHP-FPM master of %s: %w: %s", k.name(), err, logTail(in.errorLog, off))
	}
	_, ok, err := s.status(ctx, in)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("start PHP-FPM master of %s: %s is not running: %s", k.name(), serviceUnit(k), logTail(in.errorLog, off))
	}
	m.count(func(st *Stats) { st.Starts++ })
	if err := m.markLoaded(k); err != nil {
		return err
	}
	m.logger(k).Info("started PHP-FPM master", "pid", in.proc.pid, "unit", serviceUnit(k))
	return nil
}

func (s *systemdRunner) reload(ctx context.Context, in *instance) error {
	m := s.m
	p := in.proc
	off := fileSize(in.errorLog)
	c, err := s.dbusConn()
	if err != nil {
		return err
	}
	// SIGUSR2 to the main process only: php-fpm re-executes itself (same
	// pid, so systemd's MainPID holds) with the new config.
	if err := c.KillUnitWithTarget(ctx, serviceUnit(in.key), sddbus.Main, int32(syscall.SIGUSR2)); err != nil {
		return fmt.Errorf("reload PHP-FPM master of %s: %w: %w", in.name(), errSystemd, err)
	}
	if in.errorLog != "" {
		if err := waitLog(ctx, in.errorLog, off, readyLine, p, ControlTimeout+m.opts.StartTimeout); err != nil {
			return fmt.Errorf("reload PHP-FPM master of %s: %w: %s", in.name(), err, logTail(in.errorLog, off))
		}
	}
	m.logger(in.key).Info("reloaded PHP-FPM master", "pid", p.pid)
	return m.markLoaded(in.key)
}

// stop stops the service: systemd sends SIGQUIT, and SIGKILL to the whole
// cgroup after StopTimeout. The socket unit stays (the next connection
// starts the master again) unless the instance is removed.
func (s *systemdRunner) stop(ctx context.Context, in *instance) error {
	k := in.key
	if in.removed {
		return s.removeUnits(ctx, in)
	}
	pid := 0
	if in.proc != nil {
		pid = in.proc.pid
		in.proc.release()
		in.proc = nil
	}
	states, err := s.unitStates(ctx, serviceUnit(k))
	if err != nil {
		return err
	}
	if st := states[serviceUnit(k)].ActiveState; st == "inactive" || st == "failed" || st == "" {
		return nil
	}
	if err := s.job(ctx, "stop "+serviceUnit(k), func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, serviceUnit(k), "replace", ch)
	}); err != nil {
		return fmt.Errorf("stop PHP-FPM master of %s: %w", k.name(), err)
	}
	s.seen(k, 0)
	s.m.logger(k).Info("stopped PHP-FPM master", "pid", pid, "unit", serviceUnit(k))
	return nil
}

func (s *systemdRunner) held(ctx context.Context, in *instance) (bool, error) {
	states, err := s.unitStates(ctx, socketUnit(in.key))
	if err != nil {
		return false, err
	}
	return states[socketUnit(in.key)].ActiveState == stateActive && s.current(in.key), nil
}

func (s *systemdRunner) adopt(ctx context.Context) error {
	c, err := s.dbusConn()
	if err != nil {
		return err
	}
	us, err := c.ListUnitsByPatternsContext(ctx, nil, []string{"wcp360-php-*.service", "wcp360-php-*.socket"})
	if err != nil {
		return fmt.Errorf("adopt PHP-FPM masters: %w: %w", errSystemd, err)
	}
	keys := map[key]bool{}
	for _, u := range us {
		if k, ok := unitKey(u.Name); ok && u.LoadState == loadLoaded {
			keys[k] = true
		}
	}
	var errs []error
	for k := range keys {
		errs = append(errs, s.m.locked(k, func(in *instance) error {
			_, ok, err := s.status(ctx, in)
			if err == nil && ok {
				s.m.logger(k).Info("adopted a running PHP-FPM master", "pid", in.proc.pid, "unit", serviceUnit(k))
			}
			return err
		}))
	}
	return errors.Join(errs...)
}

// sync picks up the masters systemd started or restarted on its own, and
// forgets those that stopped, so that the idle sweep sees them.
func (s *systemdRunner) sync(ctx context.Context) {
	c, err := s.dbusConn()
	if err != nil {
		s.m.log.Warn("cannot list the PHP-FPM units", "err", err)
		return
	}
	us, err := c.ListUnitsByPatternsContext(ctx, []string{stateActive, stateReloading}, []string{"wcp360-php-*.service"})
	if err != nil {
		s.m.log.Warn("cannot list the PHP-FPM units", "err", err)
		return
	}
	running := map[string]bool{}
	for _, u := range us {
		running[u.Name] = true
	}
	ins := s.m.instances()
	for _, in := range ins {
		if !in.mu.TryLock() {
			continue // busy: applied, started or stopped right now
		}
		up := running[serviceUnit(in.key)]
		switch {
		case in.removed:
		case up && (in.proc == nil || in.proc.gone()):
			if _, _, err := s.status(ctx, in); err != nil {
				s.m.logger(in.key).Warn("cannot read the PHP-FPM master's state", "err", err)
			}
		case !up && in.proc != nil:
			in.proc.release()
			in.proc = nil
		}
		in.mu.Unlock()
	}
}

func (s *systemdRunner) close() error {
	ins := s.m.instances()
	for _, in := range ins {
		in.mu.Lock()
		if in.proc != nil {
			in.proc.release()
			in.proc = nil
		}
		in.mu.Unlock()
	}
	s.sd.Close()
	return nil
}
