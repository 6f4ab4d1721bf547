package nginx

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/wcp360/wcp360/internal/host/snapshot"
)

// Defaults of Options.
const (
	DefaultNginxBin          = "/usr/sbin/nginx"
	DefaultMainConf          = "/etc/nginx/nginx.conf"
	DefaultDir               = "/etc/nginx/wcp360"
	DefaultCustomDir         = "/etc/wcp360/nginx/custom"
	DefaultACMEDir           = "/var/lib/wcp360/acme/challenges"
	DefaultDistroDefaultSite = "/etc/nginx/sites-enabled/default"
	DefaultWindow            = 100 * time.Millisecond
	DefaultReloadTimeout     = 2 * time.Minute
	DefaultCommandTimeout    = 5 * time.Minute
)

// Snapshot kinds (snapshot.Store's kind/name): one resource per site file,
// and one for the files EnsureRunning installs.
const (
	SnapshotKindSite = "nginx-site"
	SnapshotKindBase = "nginx-base"
)

// Options configure a Manager. Zero values take the defaults above.
type Options struct {
	// NginxBin is the nginx program.
	NginxBin string
	// MainConf is nginx.conf. EnsureRunning adds ONE include line for
	// Dir/wcp360.conf at the end of its http block, idempotently, and keeps
	// every other byte.
	MainConf string
	// Dir holds our files: wcp360.conf (http level), default.conf and the
	// default server's self-signed certificate, sites/<domain>.conf.
	Dir string
	// CustomDir holds the admin-only include points: CustomDir/<domain>/*.conf
	// is included inside that domain's server block. CustomDir is created
	// root:root 0755. A domain's directory (and CustomDir) is included only
	// while it is a real directory owned by root and not writable by group
	// or others, with only root-owned, not group/other-writable regular
	// files in it; otherwise Apply leaves it out and reports ErrUnsafeCustomDir.
	CustomDir string
	// ACMEDir serves /.well-known/acme-challenge/ of every site.
	ACMEDir string
	// DistroDefaultSite is the distribution's default site link
	// (Debian/Ubuntu: sites-enabled/default). It claims default_server on
	// port 80, which the WCP360 default server needs: when it is a symbolic
	// link, EnsureRunning removes the link (snapshotted; the site stays in
	// sites-available). "-" leaves it alone.
	DistroDefaultSite string
	// SharedErrorLog, when set, is the one error log of every site instead
	// of <LogDir>/<domain>.error.log. nginx's master opens each error log
	// at every reload (a descriptor each, twice during a reload, and a list
	// it searches linearly: +0.45 s of nginx -t per 10,000 files); a host
	// with a low descriptor limit or tens of thousands of sites may prefer
	// one file, at the price of tenants not seeing nginx's errors.
	SharedErrorLog string
	// Snapshots saves every file before it changes. Required.
	Snapshots *snapshot.Store
	// Window is how long the first change of a batch waits for others to
	// join it before the batch's one `nginx -t` and one reload.
	Window time.Duration
	// ReloadTimeout bounds the wait for a reload to be in effect.
	ReloadTimeout time.Duration
	// CommandTimeout bounds one nginx run (nginx -t of 10,000 sites takes
	// seconds).
	CommandTimeout time.Duration
	// Clock is the time source (the default certificate's dates, logs).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Stats count what the Manager did, for tests and benchmarks.
type Stats struct {
	// Tests counts nginx -t runs; Reloads, reloads signalled and confirmed
	// in effect; Starts, masters started.
	Tests, Reloads, Starts int
	// Writes counts site files written or removed.
	Writes int
	// BatchSizes is the number of changes in each batch, in order.
	BatchSizes []int
}

// Manager renders and applies nginx sites. It is safe for concurrent use;
// changes of different domains that arrive within Options.Window share one
// `nginx -t` and one reload.
type Manager struct {
	opts Options
	tmpl templateSet

	capsMu sync.Mutex
	caps   *Caps

	// domainLocks serialise the changes of one domain (under mu). A change
	// holds its domain's lock until its batch's outcome: a lock per domain,
	// so that a burst of thousands of domains can all join one batch.
	domainLocks map[string]*domainLock

	// files is held shared by a change while it writes its file and joins
	// the pending batch, and exclusively by a batch from its nginx -t until
	// its reload is in effect: nginx always loads exactly what was tested.
	files sync.RWMutex

	mu      sync.Mutex
	pending *batch
	stats   Stats
}

// New checks opts and returns a Manager. It touches nothing on the host.
func New(opts Options) (*Manager, error) {
	if opts.Snapshots == nil {
		return nil, errors.New("nginx: Options.Snapshots is required")
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&opts.NginxBin, DefaultNginxBin)
	def(&opts.MainConf, DefaultMainConf)
	def(&opts.Dir, DefaultDir)
	def(&opts.CustomDir, DefaultCustomDir)
	def(&opts.ACMEDir, DefaultACMEDir)
	def(&opts.DistroDefaultSite, DefaultDistroDefaultSite)
	for what, p := range map[string]string{"MainConf": opts.MainConf, "Dir": opts.Dir,
		"CustomDir": opts.CustomDir, "ACMEDir": opts.ACMEDir} {
		if err := checkPath(what, p); err != nil {
			return nil, fmt.Errorf("nginx: Options.%w", err)
		}
	}
	if opts.SharedErrorLog != "" {
		if err := checkPath("SharedErrorLog", opts.SharedErrorLog); err != nil {
			return nil, fmt.Errorf("nginx: Options.%w", err)
		}
	}
	if opts.DistroDefaultSite != "-" && !filepath.IsAbs(opts.DistroDefaultSite) {
		return nil, errors.New("nginx: Options.DistroDefaultSite must be absolute or \"-\"")
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.ReloadTimeout <= 0 {
		opts.ReloadTimeout = DefaultReloadTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.Clock == nil {
		return nil, errors.New("nginx: Options.Clock is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ts, err := loadTemplates()
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	return &Manager{opts: opts, tmpl: ts, domainLocks: map[string]*domainLock{}}, nil
}

// Stats returns a copy of the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.BatchSizes = slices.Clone(s.BatchSizes)
	return s
}

func (m *Manager) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

type domainLock struct {
	mu    sync.Mutex
	users int
}

func (m *Manager) lockDomain(domain string) (unlock func()) {
	m.mu.Lock()
	l := m.domainLocks[domain]
	if l == nil {
		l = &domainLock{}
		m.domainLocks[domain] = l
	}
	l.users++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.users--; l.users == 0 {
			delete(m.domainLocks, domain)
		}
		m.mu.Unlock()
	}
}

// Paths.

// SitePath is the site file of a domain.
func (m *Manager) SitePath(domain string) string {
	return filepath.Join(m.opts.Dir, "sites", domain+".conf")
}
func (m *Manager) sitesDir() string          { return filepath.Join(m.opts.Dir, "sites") }
func (m *Manager) httpConf() string          { return filepath.Join(m.opts.Dir, "wcp360.conf") }
func (m *Manager) defaultConf() string       { return filepath.Join(m.opts.Dir, "default.conf") }
func (m *Manager) defaultCert() string       { return filepath.Join(m.opts.Dir, "default.crt") }
func (m *Manager) defaultKey() string        { return filepath.Join(m.opts.Dir, "default.key") }
func (m *Manager) customDir(d string) string { return filepath.Join(m.opts.CustomDir, d) }

// accessLog and errorLog are a site's log files.
func (m *Manager) accessLog(s Site) string { return filepath.Join(s.LogDir, s.Domain+".access.log") }
func (m *Manager) errorLog(s Site) string {
	if m.opts.SharedErrorLog != "" {
		return m.opts.SharedErrorLog
	}
	return filepath.Join(s.LogDir, s.Domain+".error.log")
}
