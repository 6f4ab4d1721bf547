package phpfpm

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/templates"
)

// Defaults of Options.
const (
	DefaultRunDir          = "/run/wcp360/php"
	DefaultConfDir         = "/etc/wcp360/php-fpm"
	DefaultWebGroup        = "www-data"
	DefaultBinDir          = "/usr/sbin"
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 2 * time.Minute
	DefaultStartTimeout    = 15 * time.Second
	// ControlTimeout is process_control_timeout: how long a graceful reload
	// or stop lets running requests finish.
	ControlTimeout = 10 * time.Second
	// DefaultStopTimeout is how long Remove waits after SIGQUIT before
	// SIGTERM, and again before SIGKILL.
	DefaultStopTimeout = ControlTimeout + 5*time.Second
)

// SnapshotKind is the snapshot kind of a master's config files; the
// snapshot name is "<tenant>-<version>".
const SnapshotKind = "PHPFPM"

// Errors, matched with errors.Is.
var (
	// ErrVersionMissing: the PHP version asked for is not installed. The
	// error is a *VersionMissingError naming the installed ones.
	ErrVersionMissing = errors.New("PHP version not installed")
	// ErrInvalidPool: a Pool field cannot be rendered safely.
	ErrInvalidPool = errors.New("invalid PHP-FPM pool")
	// ErrConfigRejected: `php-fpm -t` refused the rendered config. The
	// error is a *ConfigError with php-fpm's message.
	ErrConfigRejected = errors.New("php-fpm rejected the configuration")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("PHP-FPM manager closed")
)

// VersionMissingError is ErrVersionMissing with the details.
type VersionMissingError struct {
	Version   string   // "" when none is installed at all
	Installed []string // sorted
}

func (e *VersionMissingError) Error() string {
	installed := "none"
	if len(e.Installed) > 0 {
		installed = strings.Join(e.Installed, ", ")
	}
	if e.Version == "" {
		return fmt.Sprintf("no PHP-FPM is installed (looked for php-fpm<X.Y>; installed: %s)", installed)
	}
	return fmt.Sprintf("PHP %s is not installed (php-fpm%s; installed: %s)", e.Version, e.Version, installed)
}

// Is makes errors.Is(err, ErrVersionMissing) true.
func (e *VersionMissingError) Is(target error) bool { return target == ErrVersionMissing }

// ConfigError is ErrConfigRejected with php-fpm's own words.
type ConfigError struct {
	Tenant, Version string
	// Message is php-fpm's output, without timestamps.
	Message string
	// Snapshot is the id of the snapshot the previous config was restored from.
	Snapshot string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("php-fpm%s -t rejected the config of tenant %s: %s (previous config restored from snapshot %s)",
		e.Version, e.Tenant, e.Message, e.Snapshot)
}

// Is makes errors.Is(err, ErrConfigRejected) true.
func (e *ConfigError) Is(target error) bool { return target == ErrConfigRejected }

// Options configure a Manager. Zero values take the defaults above.
type Options struct {
	// RunDir holds sockets, pid files and .loaded markers.
	RunDir string
	// ConfDir holds the generated, root-owned configs.
	ConfDir string
	// Snapshots records the configs before Apply and Remove change them. Required.
	Snapshots *snapshot.Store
	// WebGroup is the group of the web server: the socket's group.
	WebGroup string
	// Clock is the time source (restart backoff). Defaults to the wall clock.
	Clock func() time.Time
	// Logger reports restarts and adoptions. Defaults to discarding.
	Logger *slog.Logger
	// Binaries maps a PHP version ("8.2") to its php-fpm binary. nil
	// detects BinDir/php-fpm<X.Y> at every call, so a PHP version installed
	// while wcpd runs is seen at once.
	Binaries map[string]string
	// BinDir is where detection looks; /usr/sbin by default.
	BinDir string
	// StartIn, when set, places each master in its tenant's cgroup(s):
	// it calls start, which forks the master, so that the master is born
	// inside them (cgroup.Driver's StartIn); cgroupFD is a cgroup2
	// directory for SysProcAttr.UseCgroupFD, or -1. nil leaves the masters
	// in wcpd's cgroup.
	StartIn func(tenant string, start func(cgroupFD int) error) error
	// RestartDelay is the first delay before restarting a master that
	// died; it doubles up to MaxRestartDelay.
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	// StartTimeout bounds the wait for a new master's socket.
	StartTimeout time.Duration
	// StopTimeout is the graceful (SIGQUIT) part of stopping a master.
	StopTimeout time.Duration
	// IdleStop, when positive, makes masters start on demand: Apply only
	// writes and tests the config and holds the socket; the first
	// connection starts the master (it waits in the socket's backlog
	// meanwhile, ~20 ms), and a master that had no worker for IdleStop is
	// stopped again. An idle tenant then costs no process at all. 0 keeps
	// every master running.
	IdleStop time.Duration
	// Runner is who starts and watches the masters: RunnerSystemd (a
	// transient unit per master, Slice= per tenant, systemd holding the
	// socket), RunnerWcpd (wcpd itself), or RunnerAuto (""): systemd
	// where it is PID 1.
	Runner string
}

// Manager runs the PHP-FPM masters of all tenants. It is safe for
// concurrent use; operations on one (tenant, version) are serialised,
// different ones run in parallel.
type Manager struct {
	opts   Options
	log    *slog.Logger
	tmpl   *template.Template
	webGID int
	run    runner

	tests   tester
	mu      sync.Mutex
	stats   Stats
	inst    map[key]*instance
	act     *activator // nil unless IdleStop is set
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// key names one master.
type key struct{ tenant, version string }

// name is "<tenant>-<version>": file names and the snapshot name.
func (k key) name() string { return k.tenant + "-" + k.version }

// New checks opts and returns a Manager. It starts nothing: call Adopt.
func New(opts Options) (*Manager, error) {
	opts.RunDir = cmp.Or(opts.RunDir, DefaultRunDir)
	opts.ConfDir = cmp.Or(opts.ConfDir, DefaultConfDir)
	opts.WebGroup = cmp.Or(opts.WebGroup, DefaultWebGroup)
	opts.BinDir = cmp.Or(opts.BinDir, DefaultBinDir)
	opts.RestartDelay = cmp.Or(opts.RestartDelay, DefaultRestartDelay)
	opts.MaxRestartDelay = max(cmp.Or(opts.MaxRestartDelay, DefaultMaxRestartDelay), opts.RestartDelay)
	opts.StartTimeout = cmp.Or(opts.StartTimeout, DefaultStartTimeout)
	opts.StopTimeout = cmp.Or(opts.StopTimeout, DefaultStopTimeout)
	if opts.Clock == nil {
		opts.Clock = time.Now //nolint:forbidigo // the default clock
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Snapshots == nil {
		return nil, errors.New("phpfpm: Options.Snapshots is required")
	}
	for _, d := range []string{opts.RunDir, opts.ConfDir, opts.BinDir} {
		if !filepath.IsAbs(d) || filepath.Clean(d) != d || !safePathRE.MatchString(d) {
			return nil, fmt.Errorf("phpfpm: directory %q must be an absolute, clean path of [A-Za-z0-9._/-]", d)
		}
	}
	if !nameRE.MatchString(opts.WebGroup) {
		return nil, fmt.Errorf("phpfpm: WebGroup %q is not a group name", opts.WebGroup)
	}
	g, err := user.LookupGroup(opts.WebGroup)
	if err != nil {
		return nil, fmt.Errorf("phpfpm: web server group: %w", err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return nil, fmt.Errorf("phpfpm: web server group %s: gid %q", opts.WebGroup, g.Gid)
	}
	for v, bin := range opts.Binaries {
		if !versionRE.MatchString(v) || !filepath.IsAbs(bin) {
			return nil, fmt.Errorf("phpfpm: Binaries[%q] = %q: want a version X.Y and an absolute path", v, bin)
		}
	}
	tmpl, err := template.New("php-fpm").Option("missingkey=error").ParseFS(templates.FS, "php-fpm/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("phpfpm: templates: %w", err)
	}
	m := &Manager{opts: opts, log: opts.Logger, tmpl: tmpl, webGID: gid,
		inst: map[key]*instance{}, closing: make(chan struct{})}
	if m.run, err = newRunner(m); err != nil {
		return nil, err
	}
	if opts.IdleStop < 0 {
		return nil, fmt.Errorf("phpfpm: IdleStop %s is negative", opts.IdleStop)
	}
	if opts.IdleStop > 0 {
		if m.act, err = newActivator(func(k key) {
			m.wg.Add(1) // the run goroutine holds the count above zero
			go func() {
				defer m.wg.Done()
				m.activate(k)
			}()
		}); err != nil {
			return nil, fmt.Errorf("phpfpm: %w", err)
		}
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			m.act.run()
		}()
		go m.idleSweep()
	}
	return m, nil
}

// Stats counts what the Manager did since New.
type Stats struct {
	// Starts counts masters started (by Apply, a restart or a request);
	// IdleStops, masters stopped after Options.IdleStop without work.
	Starts, IdleStops int
	// Tests counts php-fpm -t runs; TestedPools, the pools they tested
	// (more than Tests when Applies were tested together).
	Tests, TestedPools int
	// Running is the number of masters running now.
	Running int
}

// Stats returns the counters and how many masters run.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	st := m.stats
	m.mu.Unlock()
	ins := m.instances()
	for _, in := range ins {
		in.mu.Lock()
		if in.proc != nil && !in.proc.exited() {
			st.Running++
		}
		in.mu.Unlock()
	}
	return st
}

func (m *Manager) count(f func(*Stats)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.stats)
}

// onDemand reports whether masters start on the first request.
func (m *Manager) onDemand() bool { return m.act != nil }

var (
	versionRE  = regexp.MustCompile(`^[0-9]{1,2}\.[0-9]{1,2}$`)
	binaryRE   = regexp.MustCompile(`^php-fpm([0-9]{1,2}\.[0-9]{1,2})$`)
	safePathRE = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	// nameRE is a Linux user or group name that is safe in a config.
	nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// binaries maps each installed version to its binary.
func (m *Manager) binaries() map[string]string {
	if m.opts.Binaries != nil {
		return m.opts.Binaries
	}
	found := map[string]string{}
	entries, err := os.ReadDir(m.opts.BinDir)
	if err != nil {
		return found
	}
	for _, e := range entries {
		sub := binaryRE.FindStringSubmatch(e.Name())
		if sub == nil {
			continue
		}
		p := filepath.Join(m.opts.BinDir, e.Name())
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			found[sub[1]] = p
		}
	}
	return found
}

// Versions returns the installed PHP versions, oldest first.
func (m *Manager) Versions() []string {
	bins := m.binaries()
	vs := make([]string, 0, len(bins))
	for v := range bins {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, compareVersions)
	return vs
}

// compareVersions orders "8.2" before "8.10".
func compareVersions(a, b string) int {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	return cmp.Or(cmp.Compare(num(am), num(bm)), cmp.Compare(num(an), num(bn)), strings.Compare(a, b))
}

// resolve returns the version asked for ("" = newest installed) and its
// binary, or a *VersionMissingError.
func (m *Manager) resolve(version string) (string, string, error) {
	bins := m.binaries()
	if version == "" {
		vs := m.Versions()
		if len(vs) == 0 {
			return "", "", &VersionMissingError{}
		}
		version = vs[len(vs)-1]
	}
	bin, ok := bins[version]
	if !ok {
		return "", "", &VersionMissingError{Version: version, Installed: m.Versions()}
	}
	return version, bin, nil
}

// keyOf checks a tenant and version for Remove and Socket: the version need
// not be installed any more, "" is the newest installed.
func (m *Manager) keyOf(tenant, version string) (key, error) {
	if !nameRE.MatchString(tenant) {
		return key{}, fmt.Errorf("%w: tenant %q is not a user name", ErrInvalidPool, tenant)
	}
	if version == "" {
		v, _, err := m.resolve("")
		if err != nil {
			return key{}, err
		}
		version = v
	}
	if !versionRE.MatchString(version) {
		return key{}, fmt.Errorf("%w: version %q is not X.Y", ErrInvalidPool, version)
	}
	return key{tenant, version}, nil
}

// Socket is the FastCGI socket of the tenant's master for version ("" =
// newest installed; "" when none is).
func (m *Manager) Socket(tenant, version string) string {
	if version == "" {
		v, _, err := m.resolve("")
		if err != nil {
			return ""
		}
		version = v
	}
	return m.socketPath(key{tenant, version})
}

func (m *Manager) socketPath(k key) string { return filepath.Join(m.opts.RunDir, k.name()+".sock") }
func (m *Manager) pidPath(k key) string    { return filepath.Join(m.opts.RunDir, k.name()+".pid") }
func (m *Manager) loadedPath(k key) string { return filepath.Join(m.opts.RunDir, k.name()+".loaded") }
func (m *Manager) confPath(k key) string   { return filepath.Join(m.opts.ConfDir, k.name()+".conf") }
func (m *Manager) poolPath(k key) string   { return filepath.Join(m.opts.ConfDir, k.name()+".pool.conf") }

// errorLogPath is the master's error log in the tenant's home.
func errorLogPath(home, version string) string {
	return filepath.Join(home, "logs", "php-fpm-"+version+".log")
}

// instance is the state of one master while wcpd runs.
type instance struct {
	key
	// mu serialises Apply, Remove and restarts of this master.
	mu sync.Mutex
	// removed: Remove is done with it; a new instance replaces it.
	removed bool
	// proc is the running master as the supervisor knows it, or nil.
	proc *process
	// errorLog is the master's log, "" until known.
	errorLog string
	// stop is closed by Remove: the supervisor goroutine ends.
	stop        chan struct{}
	supervised  bool
	restartWait time.Duration // the supervisor's current backoff
	// restarting: the master died and the supervisor brings it back.
	restarting bool
	// ln is the socket wcpd holds for the master, nil until Apply (or
	// adoption) made or found it.
	ln *listener
	// busyAt is when the master last had a worker (IdleStop).
	busyAt time.Time
}

// instance returns the live instance of k, creating it.
func (m *Manager) instance(k key) (*instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	in := m.inst[k]
	if in == nil {
		in = &instance{key: k, stop: make(chan struct{})}
		m.inst[k] = in
	}
	return in, nil
}

// locked runs f with the live instance of k locked.
func (m *Manager) locked(k key, f func(in *instance) error) error {
	for {
		in, err := m.instance(k)
		if err != nil {
			return err
		}
		in.mu.Lock()
		if in.removed {
			in.mu.Unlock()
			continue
		}
		err = f(in)
		in.mu.Unlock()
		return err
	}
}

// instances lists the live instances. Lock order: an instance, then the
// Manager, never the other way: callers lock each instance after this.
func (m *Manager) instances() []*instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	ins := make([]*instance, 0, len(m.inst))
	for _, in := range m.inst {
		ins = append(ins, in)
	}
	return ins
}

// forget drops a removed instance from the map.
func (m *Manager) forget(in *instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inst[in.key] == in {
		delete(m.inst, in.key)
	}
}

func (m *Manager) logger(k key) *slog.Logger {
	return m.log.With("tenant", k.tenant, "php", k.version)
}

// Close stops supervising. The masters keep running; a new Manager's Adopt
// takes them over.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.closing)
	m.mu.Unlock()
	if m.act != nil {
		m.act.close()
	}
	m.wg.Wait()
	err := m.run.close()
	if m.act != nil {
		m.act.closeFDs()
	}
	return err
}
