package phpfpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// Modes of what this package writes.
const (
	confMode    fs.FileMode = 0o640 // root:root: only root (the masters) reads configs
	confDirMode fs.FileMode = 0o750
	runDirMode  fs.FileMode = 0o711 // nginx and tenants reach their socket; nobody lists
	socketMode  fs.FileMode = 0o660
	logMode     fs.FileMode = 0o640 // root:<tenant>: the tenant reads its master's log
)

// confFile is one generated file and the Difference field naming it.
type confFile struct {
	field, path string
	content     []byte
}

func (m *Manager) files(r *rendered) []confFile {
	return []confFile{
		{"config.master", m.confPath(r.key), r.master},
		{"config.pool", m.poolPath(r.key), r.poolConf},
	}
}

// Observe lists how the host differs from pool: a config file that differs
// from the rendered one, no master running, a master running another
// binary or another config than the one on disk, a missing or wrong socket.
// A version that is not installed is an error (ErrVersionMissing). A
// running master that is not supervised yet (Adopt was not called) is
// adopted on the way.
func (m *Manager) Observe(ctx context.Context, pool Pool) ([]host.Difference, error) {
	r, err := m.render(pool)
	if err != nil {
		return nil, err
	}
	var ds []host.Difference
	for _, f := range m.files(r) {
		d, err := observeFile(f)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d...)
	}
	err = m.locked(r.key, func(in *instance) error {
		st, ok, err := m.run.status(ctx, in)
		held := false
		if err == nil {
			held, err = m.run.held(ctx, in)
		}
		// (A missing socket file is reported below.)
		if _, serr := os.Lstat(m.socketPath(r.key)); err == nil && serr == nil && !held {
			ds = append(ds, host.Difference{Field: "socket.held", Want: "held by wcpd, named " + m.socketPath(r.key),
				Have: "not held (wcpd restarted while no master ran, or the socket file was removed or replaced)"})
		}
		switch {
		case err != nil:
			return err
		case !ok && m.onDemand():
			return nil // started by the next request
		case !ok:
			ds = append(ds, host.Difference{Field: "master", Want: "running", Have: "not running"})
			return nil
		case !isExe(st.exe, m.exes(r.version)):
			ds = append(ds, host.Difference{Field: "master.binary", Want: r.binary, Have: st.exe})
		case st.deleted:
			ds = append(ds, host.Difference{Field: "master.binary", Want: r.binary + " as installed now",
				Have: st.exe + " replaced since the master started (package upgrade)"})
		}
		if loaded := readLoaded(m.loadedPath(r.key)); loaded != r.hash() {
			ds = append(ds, host.Difference{Field: "master.config", Want: "loaded " + short(r.hash()), Have: "loaded " + short(loaded)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(ds, m.observeSocket(r)...), nil
}

func short(hash string) string {
	if hash == "" {
		return "unknown"
	}
	return "config " + hash[:min(12, len(hash))]
}

func observeFile(f confFile) ([]host.Difference, error) {
	var st unix.Stat_t
	err := unix.Lstat(f.path, &st)
	if errors.Is(err, unix.ENOENT) {
		return []host.Difference{{Field: f.field, Want: fmt.Sprintf("%s (%d bytes)", f.path, len(f.content)), Have: "absent"}}, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return []host.Difference{{Field: f.field, Want: "a regular file", Have: fmt.Sprintf("file type %o", st.Mode&unix.S_IFMT)}}, nil
	}
	var ds []host.Difference
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(b, f.content) {
		ds = append(ds, host.Difference{Field: f.field + ".content", Want: fmt.Sprintf("as rendered (%d bytes)", len(f.content)),
			Have: fmt.Sprintf("%d bytes that differ (edited by hand?)", len(b))})
	}
	if got := fs.FileMode(st.Mode & 0o7777); got != confMode {
		ds = append(ds, host.Difference{Field: f.field + ".mode", Want: fmt.Sprintf("%04o", confMode), Have: fmt.Sprintf("%04o", got)})
	}
	if st.Uid != 0 || st.Gid != 0 {
		ds = append(ds, host.Difference{Field: f.field + ".owner", Want: "0:0", Have: fmt.Sprintf("%d:%d", st.Uid, st.Gid)})
	}
	return ds, nil
}

func (m *Manager) observeSocket(r *rendered) []host.Difference {
	var st unix.Stat_t
	if err := unix.Lstat(m.socketPath(r.key), &st); err != nil {
		return []host.Difference{{Field: "socket", Want: m.socketPath(r.key), Have: "absent"}}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return []host.Difference{{Field: "socket", Want: "a unix socket", Have: fmt.Sprintf("file type %o", st.Mode&unix.S_IFMT)}}
	}
	var ds []host.Difference
	if got := fs.FileMode(st.Mode & 0o7777); got != socketMode {
		ds = append(ds, host.Difference{Field: "socket.mode", Want: fmt.Sprintf("%04o", socketMode), Have: fmt.Sprintf("%04o", got)})
	}
	if int(st.Uid) != r.pool.UID || int(st.Gid) != m.webGID {
		ds = append(ds, host.Difference{Field: "socket.owner",
			Want: fmt.Sprintf("%d:%d (%s:%s)", r.pool.UID, m.webGID, r.tenant, m.opts.WebGroup), Have: fmt.Sprintf("%d:%d", st.Uid, st.Gid)})
	}
	return ds
}

// Apply makes the host match pool: the config files (snapshot, atomic
// write, php-fpm -t, restore on failure), then the master: started when
// none runs, gracefully reloaded when it runs another config, nothing when
// all is as wanted. It returns once the master serves the new config.
func (m *Manager) Apply(ctx context.Context, pool Pool) error {
	r, err := m.render(pool)
	if err != nil {
		return err
	}
	return m.locked(r.key, func(in *instance) error { return m.apply(ctx, in, r) })
}

func (m *Manager) apply(ctx context.Context, in *instance, r *rendered) error {
	if err := ensureLog(r.errorLog, r.pool.GID); err != nil {
		return err
	}
	in.errorLog = r.errorLog
	if err := m.writeConfig(ctx, r); err != nil {
		return err
	}
	if err := m.converge(ctx, in, r); err != nil {
		return err
	}
	return m.repairSocket(r)
}

// converge holds the socket, then starts, reloads or replaces the master
// as needed; with IdleStop a master that does not run is left to the next
// request.
func (m *Manager) converge(ctx context.Context, in *instance, r *rendered) error {
	if err := m.run.listen(ctx, in, r); err != nil {
		return err
	}
	st, ok, err := m.run.status(ctx, in)
	switch {
	case err != nil:
		return err
	case !ok && m.onDemand():
		m.arm(in)
		return nil
	case !ok:
		return m.run.start(ctx, in, r.binary)
	case !isExe(st.exe, m.exes(r.version)):
		m.logger(r.key).Warn("PHP-FPM master runs another binary; restarting it", "pid", st.pid, "have", st.exe, "want", r.binary)
		if err := m.run.stop(ctx, in); err != nil {
			return err
		}
		if m.onDemand() {
			m.arm(in)
			return nil
		}
		return m.run.start(ctx, in, r.binary)
	case st.deleted || readLoaded(m.loadedPath(r.key)) != r.hash():
		// A reload execs the binary again: it also picks up an upgraded one.
		return m.run.reload(ctx, in)
	}
	return nil
}

// ensureListener makes sure wcpd holds the master's socket and that
// socketPath names it. A master that runs with another socket (it bound
// its own, or its socket file was removed or replaced by hand) is stopped:
// nginx could not reach it.
func (m *Manager) ensureListener(ctx context.Context, in *instance, r *rendered) error {
	if in.ln != nil && m.current(r.key, in.ln) {
		return nil
	}
	if in.ln != nil {
		m.logger(r.key).Warn("the PHP-FPM socket file was removed or replaced; making a new socket", "socket", m.socketPath(r.key))
		m.closeListener(in)
	}
	// status adopts a running master that nobody watches, and its socket.
	_, ok, err := m.run.status(ctx, in)
	if err != nil {
		return err
	}
	if in.ln != nil && m.current(r.key, in.ln) {
		return nil
	}
	m.closeListener(in)
	if ok {
		m.logger(r.key).Warn("PHP-FPM master runs with a socket wcpd does not hold; replacing it")
		if err := m.run.stop(ctx, in); err != nil {
			return err
		}
	}
	ln, err := m.newListener(r.key, r.pool.UID)
	if err != nil {
		return fmt.Errorf("socket of the PHP-FPM master of %s: %w", r.name(), err)
	}
	in.ln = ln
	return nil
}

// repairSocket puts back the socket's mode and owner when somebody changed
// them: a reload keeps the socket it inherited as it is.
func (m *Manager) repairSocket(r *rendered) error {
	path := m.socketPath(r.key)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil //nolint:nilerr // php-fpm makes the socket; Observe reports it missing
	}
	if int(st.Uid) != r.pool.UID || int(st.Gid) != m.webGID {
		if err := os.Lchown(path, r.pool.UID, m.webGID); err != nil {
			return err
		}
	}
	if fs.FileMode(st.Mode&0o7777) != socketMode {
		return os.Chmod(path, socketMode)
	}
	return nil
}

// writeConfig writes the files that differ from r, after a snapshot, and
// has php-fpm test them; when it refuses, the snapshot is restored.
func (m *Manager) writeConfig(ctx context.Context, r *rendered) error {
	files := m.files(r)
	var paths []string
	for _, f := range files {
		if ds, err := observeFile(f); err != nil || len(ds) > 0 {
			paths = append(paths, f.path)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	snap, err := m.opts.Snapshots.Take(ctx, SnapshotKind, r.name(), "apply PHP-FPM config", paths)
	if err != nil {
		return fmt.Errorf("snapshot before writing the PHP-FPM config of %s: %w", r.name(), err)
	}
	err = ensureDir(m.opts.ConfDir, confDirMode)
	for _, f := range files {
		if err == nil && slices.Contains(paths, f.path) {
			err = writeAtomic(f.path, f.content, confMode)
		}
	}
	if err == nil {
		err = m.testConfig(ctx, r)
	}
	if err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			ce.Snapshot = snap.ID()
		}
		if rerr := snap.Restore(context.WithoutCancel(ctx)); rerr != nil {
			return fmt.Errorf("%w; restoring snapshot %s also failed: %w", err, snap.ID(), rerr)
		}
		return err
	}
	if err := snap.Commit(); err != nil {
		m.logger(r.key).Warn("cannot mark snapshot committed", "snapshot", snap.ID(), "err", err)
	}
	return nil
}

// Remove stops the master of tenant and version (gracefully: SIGQUIT lets
// running requests finish, then SIGTERM and SIGKILL by the deadline),
// removes its config files (after a snapshot), socket, pid file and marker.
// The error log stays in the tenant's home. Removing what is not there is
// not an error.
func (m *Manager) Remove(ctx context.Context, tenant, version string) error {
	k, err := m.keyOf(tenant, version)
	if err != nil {
		return err
	}
	return m.locked(k, func(in *instance) error {
		in.removed = true
		close(in.stop)
		defer m.forget(in)
		if err := m.run.stop(ctx, in); err != nil {
			return err
		}
		m.closeListener(in)
		return m.removeFiles(ctx, k)
	})
}

func (m *Manager) removeFiles(ctx context.Context, k key) error {
	var confs []string
	for _, p := range []string{m.confPath(k), m.poolPath(k)} {
		if _, err := os.Lstat(p); err == nil {
			confs = append(confs, p)
		}
	}
	if len(confs) > 0 {
		snap, err := m.opts.Snapshots.Take(ctx, SnapshotKind, k.name(), "remove PHP-FPM master", confs)
		if err != nil {
			return fmt.Errorf("snapshot before removing the PHP-FPM config of %s: %w", k.name(), err)
		}
		var errs []error
		for _, p := range confs {
			errs = append(errs, removeFile(p))
		}
		if err := errors.Join(errs...); err != nil {
			return errors.Join(err, snap.Restore(context.WithoutCancel(ctx)))
		}
		if err := snap.Commit(); err != nil {
			m.logger(k).Warn("cannot mark snapshot committed", "snapshot", snap.ID(), "err", err)
		}
	}
	return errors.Join(removeFile(m.socketPath(k)), removeFile(m.heldPath(k)), removeFile(m.pidPath(k)), removeFile(m.loadedPath(k)))
}

// Adopt takes over the masters that run (wcpd restarted): each pid file's
// process is verified and supervised again, not restarted. Stale pid files
// are left for Apply.
func (m *Manager) Adopt(ctx context.Context) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return m.run.adopt(ctx)
}

// markLoaded records which config the running master has loaded: the files
// on disk now.
func (m *Manager) markLoaded(k key) error {
	master, err1 := os.ReadFile(m.confPath(k))
	pool, err2 := os.ReadFile(m.poolPath(k))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	return writeAtomic(m.loadedPath(k), []byte(configHash(master, pool)+"\n"), 0o644)
}

func readLoaded(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 128 {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ensureDir creates dir (parents 0755) and gives it mode, owned by root.
func ensureDir(dir string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil { //nolint:gosec // G301: /etc/wcp360 and /run/wcp360 are traversed by services
		return err
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	if st.Uid != 0 || st.Gid != 0 {
		if err := os.Lchown(dir, 0, 0); err != nil {
			return err
		}
	}
	if fs.FileMode(st.Mode&0o7777) != mode {
		return os.Chmod(dir, mode)
	}
	return nil
}

// writeAtomic replaces path with content, root-owned with mode.
func writeAtomic(path string, content []byte, mode fs.FileMode) error {
	if err := atomicfile.Write(path, content, mode, 0, 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ensureLog creates the master's error log in the tenant's home, root:gid
// 0640, so that the tenant can read what php-fpm says about its PHP. The
// logs directory is root's (the tenant package makes it so): the tenant
// cannot plant a symlink there, and the log itself is opened O_NOFOLLOW.
func ensureLog(path string, gid int) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(logMode))
	if err != nil {
		return fmt.Errorf("PHP-FPM error log (is the tenant's home ready?): %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd) //nolint:errcheck // nothing written
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &fs.PathError{Op: "open", Path: path, Err: errors.New("not a regular file")}
	}
	if st.Uid != 0 || int(st.Gid) != gid {
		if err := unix.Fchown(fd, 0, gid); err != nil {
			return &fs.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	if fs.FileMode(st.Mode&0o7777) != logMode {
		if err := unix.Fchmod(fd, uint32(logMode)); err != nil {
			return &fs.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	return nil
}

// openLog opens the error log for appending, nil when it cannot.
func openLog(path string) *os.File {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	return f
}

func fileSize(path string) int64 {
	if path == "" {
		return 0
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom reads at most limit bytes of path from offset off.
func readFrom(path string, off, limit int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close() //nolint:errcheck // read-only
	b, _ := io.ReadAll(io.NewSectionReader(f, off, limit))
	return string(b)
}

// logTail is what the log says since off (its end when long), for errors.
func logTail(path string, off int64) string {
	if path == "" {
		return "(no log)"
	}
	s := readFrom(path, off, 1<<20)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	if s = cleanLog(s); s == "" {
		return "(nothing in " + path + ")"
	}
	return path + ": " + s
}

var logStampRE = regexp.MustCompile(`^\[[^\]]*\] `)

// cleanLog joins php-fpm's lines without their timestamps, leaving out
// the generic last words.
func cleanLog(s string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		l = strings.TrimSpace(logStampRE.ReplaceAllString(strings.TrimSpace(l), ""))
		if l == "" || l == "ERROR: FPM initialization failed" {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "; ")
}
