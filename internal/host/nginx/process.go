package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Ready means serving. After SIGHUP the master parses the new
// configuration, starts new workers, sleeps 100 ms, and only then asks the
// old workers to shut down; until each old worker has handled that, it
// keeps accepting connections and answers them with the OLD configuration
// (a new site falls through to the default server). So a reload is "in
// effect" only once every worker that existed before the signal is gone or
// has retitled itself "nginx: worker process is shutting down" (it closes
// its listening sockets right after retitling, in the same function, with
// nothing that blocks in between) and at least one new worker runs. We poll
// the master's children in /proc every pollInterval and require that state
// on two consecutive polls, so the old worker has also finished closing
// its listeners. An old worker that is shutting down still completes the
// requests it had already accepted, with the old configuration: those
// began before the change was made.
const pollInterval = 5 * time.Millisecond

// proc is one process as /proc shows it.
type proc struct {
	pid   int
	title string // the command line, NULs as spaces: "nginx: worker process"
}

// readProc returns the process, or ok=false when it does not exist.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return proc{}, false
	}
	return proc{pid: pid, title: strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))}, true
}

func isMaster(p proc) bool { return strings.HasPrefix(p.title, "nginx: master process") }

// children lists the processes whose parent is pid.
func children(pid int) ([]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if p, ok := readProc(n); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// activeWorkers are the children of the master that are workers and not
// shutting down.
func activeWorkers(master int) (map[int]bool, error) {
	cs, err := children(master)
	if err != nil {
		return nil, err
	}
	ws := map[int]bool{}
	for _, c := range cs {
		if strings.HasPrefix(c.title, "nginx: worker process") && !strings.Contains(c.title, "shutting down") {
			ws[c.pid] = true
		}
	}
	return ws, nil
}

// masterPID returns the running master named by the pid file, or 0.
func (m *Manager) masterPID() (int, error) {
	pidFile, err := m.pidFile()
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, nil //nolint:nilerr // a garbled pid file names no master
	}
	if p, ok := readProc(pid); ok && isMaster(p) {
		return pid, nil
	}
	return 0, nil
}

// mainConf reads nginx.conf.
func (m *Manager) mainConf() (mainConf, error) {
	data, err := os.ReadFile(m.opts.MainConf)
	if err != nil {
		return mainConf{}, err
	}
	mc, err := readMainConf(data, m.httpConf())
	if err != nil {
		return mainConf{}, fmt.Errorf("%s: %w", m.opts.MainConf, err)
	}
	return mc, nil
}

// pidFile is nginx.conf's pid directive, else the compiled-in default.
func (m *Manager) pidFile() (string, error) {
	mc, err := m.mainConf()
	if err != nil {
		return "", err
	}
	if mc.pid != "" {
		if !filepath.IsAbs(mc.pid) {
			return "", fmt.Errorf("%s: relative pid path %q is not supported", m.opts.MainConf, mc.pid)
		}
		return mc.pid, nil
	}
	m.capsMu.Lock()
	defer m.capsMu.Unlock()
	if m.caps != nil && m.caps.PidPath != "" {
		return m.caps.PidPath, nil
	}
	return "/run/nginx.pid", nil
}

// reload signals the master (starting one when none runs) and waits until
// the new configuration answers every new connection.
func (m *Manager) reload(ctx context.Context) error {
	pid, err := m.masterPID()
	if err != nil {
		return err
	}
	if pid == 0 {
		return m.start(ctx)
	}
	old, err := activeWorkers(pid)
	if err != nil {
		return err
	}
	log := m.masterLog()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload nginx (pid %d): %w", pid, err)
	}
	if err := m.waitServing(ctx, pid, old, log); err != nil {
		return err
	}
	m.count(func(s *Stats) { s.Reloads++ })
	return nil
}

// waitServing waits until none of the old workers accepts connections and a
// new worker runs (see pollInterval).
func (m *Manager) waitServing(ctx context.Context, master int, old map[int]bool, log *logTail) error {
	ctx, cancel := context.WithTimeout(ctx, m.opts.ReloadTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	okPolls := 0
	for {
		if p, ok := readProc(master); !ok || !isMaster(p) {
			return fmt.Errorf("nginx master %d exited during the reload (see its error log)", master)
		}
		now, err := activeWorkers(master)
		if err != nil {
			return err
		}
		stillOld, fresh := false, 0
		for w := range now {
			if old[w] {
				stillOld = true // it still accepts connections
			} else {
				fresh++
			}
		}
		if msg := log.emergencies(master); msg != "" {
			// The master refused the configuration and keeps the old one.
			return &ReloadError{NginxMessage: msg}
		}
		if !stillOld && fresh > 0 {
			okPolls++
			if okPolls >= 2 {
				return nil
			}
		} else {
			okPolls = 0
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx master %d did not put the new configuration in effect within %s "+
				"(its old workers still serve; see its error log): %w", master, m.opts.ReloadTimeout, ctx.Err())
		case <-t.C:
		}
	}
}

// start starts the master (which daemonizes) and waits until it serves.
func (m *Manager) start(ctx context.Context) error {
	out, err := os.CreateTemp("", "wcp360-nginx-start-*")
	if err != nil {
		return err
	}
	defer func() { _ = out.Close(); _ = os.Remove(out.Name()) }()
	// An *os.File as output: the daemonized master inherits no pipe that
	// would keep us waiting.
	p, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: m.opts.NginxBin, Args: []string{"-c", m.opts.MainConf}}, out)
	if err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	if err := p.Wait(); err != nil {
		msg, _ := os.ReadFile(out.Name())
		return fmt.Errorf("start nginx: %w: %s", err, strings.TrimSpace(string(msg)))
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.ReloadTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		pid, err := m.masterPID()
		if err != nil {
			return err
		}
		if pid != 0 {
			ws, err := activeWorkers(pid)
			if err != nil {
				return err
			}
			if len(ws) > 0 {
				m.count(func(s *Stats) { s.Starts++ })
				m.opts.Logger.Info("nginx started", "pid", pid)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nginx started but no master with workers appeared within %s: %w", m.opts.ReloadTimeout, ctx.Err())
		case <-t.C:
		}
	}
}

// logTail reads what the master appends to its error log after a signal,
// so that a reload it refuses (EMFILE, a port it cannot bind) fails at
// once with nginx's message instead of after ReloadTimeout.
type logTail struct {
	path   string
	offset int64
}

// masterLog is the master's error log from its current end, or nil when
// nginx.conf sends it elsewhere than a file.
func (m *Manager) masterLog() *logTail {
	mc, err := m.mainConf()
	if err != nil || !filepath.IsAbs(mc.errorLog) {
		return nil
	}
	st, err := os.Stat(mc.errorLog)
	if err != nil {
		return nil
	}
	return &logTail{path: mc.errorLog, offset: st.Size()}
}

// emergencies returns the [emerg] and [alert] lines of the master pid
// written since the offset ("" if none).
func (l *logTail) emergencies(pid int) string {
	if l == nil {
		return ""
	}
	f, err := os.Open(l.path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 64<<10)
	n, _ := f.ReadAt(buf, l.offset)
	var out []string
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		for _, level := range []string{"[emerg] ", "[alert] "} {
			if strings.Contains(line, level+strconv.Itoa(pid)+"#") {
				out = append(out, nginxMessage(line))
			}
		}
	}
	return strings.Join(out, "; ")
}
