package phpfpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// Pool is the desired PHP of one tenant for one PHP version: one master,
// one pool.
type Pool struct {
	// Tenant is the Linux user and group the workers run as, and the pool's name.
	Tenant string
	// UID and GID are the tenant's (never root): the socket's owner, the log's group.
	UID, GID int
	// Home is the tenant's home; open_basedir, sessions, tmp and logs are in it.
	Home string
	// Version is "8.2"; "" is the newest installed.
	Version string
	// PM is ondemand (default), dynamic or static.
	PM string
	// MaxChildren is pm.max_children; 0 is DefaultMaxChildren.
	MaxChildren int
	// MemoryLimit is memory_limit in bytes; 0 is DefaultMemoryLimit.
	MemoryLimit int64
	// MaxExecutionTime is max_execution_time in seconds; 0 is
	// DefaultMaxExecutionTime. A worker still busy MaxExecutionTime +
	// TerminateGrace later (wall clock) is killed (request_terminate_timeout).
	MaxExecutionTime int
	// IdleTimeout is pm.process_idle_timeout (ondemand); 0 is DefaultIdleTimeout.
	IdleTimeout time.Duration
	// UploadMaxSize sets upload_max_filesize and post_max_size in bytes; 0 keeps PHP's.
	UploadMaxSize int64
	// INI holds further php.ini settings, from v1alpha1's allow-list only,
	// rendered as php_admin_value (scripts cannot ini_set them).
	INI map[string]string
}

// Defaults of Pool.
const (
	DefaultPM               = "ondemand"
	DefaultMaxChildren      = 5
	DefaultMemoryLimit      = 128 << 20
	DefaultMaxExecutionTime = 30
	DefaultIdleTimeout      = 10 * time.Second
	// TerminateGrace is added to max_execution_time (CPU time) for
	// request_terminate_timeout (wall clock), so that PHP's own, clean
	// timeout fires first.
	TerminateGrace = 10 * time.Second
	// MaxRequests recycles a worker after this many requests (leaks).
	MaxRequests = 500
)

// Limits of Pool, as in apis/v1alpha1.
const (
	MaxINISettings = 100
	MaxINIKey      = 64
	MaxINIValue    = 256
)

var (
	// homeRE keeps a home path safe in an INI value and in open_basedir.
	homeRE   = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
	iniKeyRE = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	// iniValueRE: nothing that ends the line, quotes, comments, opens a
	// section, assigns or expands (${...}); v1alpha1 allows the same set.
	iniValueRE = regexp.MustCompile(`^[A-Za-z0-9 _.,:/+*~&|^!()%@-]*$`)
)

// normalize fills the defaults and validates p. It does not resolve Version.
func (p Pool) normalize() (Pool, error) {
	if p.PM == "" {
		p.PM = DefaultPM
	}
	if p.MaxChildren == 0 {
		p.MaxChildren = DefaultMaxChildren
	}
	if p.MemoryLimit == 0 {
		p.MemoryLimit = DefaultMemoryLimit
	}
	if p.MaxExecutionTime == 0 {
		p.MaxExecutionTime = DefaultMaxExecutionTime
	}
	if p.IdleTimeout == 0 {
		p.IdleTimeout = DefaultIdleTimeout
	}
	if err := p.validate(); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalidPool, err)
	}
	return p, nil
}

func (p Pool) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nameRE.MatchString(p.Tenant) {
		bad("tenant %q is not a Linux user name", p.Tenant)
	}
	if p.UID <= 0 || p.GID <= 0 || p.UID > 1<<31-2 || p.GID > 1<<31-2 {
		bad("uid %d and gid %d must be positive (never root)", p.UID, p.GID)
	}
	if !homeRE.MatchString(p.Home) || filepath.Clean(p.Home) != p.Home || p.Home == "/" {
		bad("home %q must be an absolute, clean path of [A-Za-z0-9._/-], not /", p.Home)
	}
	if p.Version != "" && !versionRE.MatchString(p.Version) {
		bad("version %q is not X.Y", p.Version)
	}
	switch p.PM {
	case "ondemand", "dynamic", "static":
	default:
		bad("pm %q is not ondemand, dynamic or static", p.PM)
	}
	if p.MaxChildren < 1 || p.MaxChildren > 1000 {
		bad("maxChildren %d is not in 1..1000", p.MaxChildren)
	}
	if p.MemoryLimit < 16<<20 || p.MemoryLimit > 16<<30 {
		bad("memoryLimit %d is not in 16 MiB..16 GiB", p.MemoryLimit)
	}
	if p.MaxExecutionTime < 1 || p.MaxExecutionTime > 86400 {
		bad("maxExecutionTime %d is not in 1..86400 seconds", p.MaxExecutionTime)
	}
	if p.IdleTimeout < time.Second || p.IdleTimeout > 24*time.Hour || p.IdleTimeout%time.Second != 0 {
		bad("idleTimeout %s is not whole seconds in 1s..24h", p.IdleTimeout)
	}
	if p.UploadMaxSize < 0 || p.UploadMaxSize > 16<<30 {
		bad("uploadMaxSize %d is not in 0..16 GiB", p.UploadMaxSize)
	}
	if len(p.INI) > MaxINISettings {
		bad("ini: %d settings, at most %d", len(p.INI), MaxINISettings)
	}
	for _, k := range slices.Sorted(maps.Keys(p.INI)) {
		if err := checkINI(k, p.INI[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if p.UploadMaxSize != 0 && p.INI["post_max_size"] != "" {
		bad("ini post_max_size: set by uploadMaxSize")
	}
	return errors.Join(errs...)
}

// checkINI refuses a php.ini setting that is not allow-listed, or that could
// change the config's structure.
func checkINI(k, v string) error {
	switch {
	case len(k) == 0 || len(k) > MaxINIKey || !iniKeyRE.MatchString(k):
		return fmt.Errorf("ini key %q: must be a php.ini name of [a-z0-9_.], at most %d bytes", k, MaxINIKey)
	case !v1alpha1.INIKeyAllowed(k):
		return fmt.Errorf("ini key %q: this php.ini setting cannot be set per tenant", k)
	case len(v) > MaxINIValue:
		return fmt.Errorf("ini %s: value longer than %d bytes", k, MaxINIValue)
	case !iniValueRE.MatchString(v) || strings.TrimSpace(v) != v:
		return fmt.Errorf("ini %s: value %q must use only letters, digits, inner spaces and _.,:/+*~&|^!()%%@-", k, v)
	}
	return nil
}

// rendered is everything Apply and Observe need about one master.
type rendered struct {
	key
	pool     Pool
	binary   string
	master   []byte // <t>-<v>.conf
	poolConf []byte // <t>-<v>.pool.conf
	errorLog string
}

// hash identifies the config pair, as in the .loaded marker.
func configHash(master, pool []byte) string {
	h := sha256.New()
	h.Write(master)
	h.Write([]byte{0})
	h.Write(pool)
	return hex.EncodeToString(h.Sum(nil))
}

func (r *rendered) hash() string { return configHash(r.master, r.poolConf) }

// view is what the templates see.
type view struct {
	Tenant, Version, WebGroup                                   string
	PidFile, ErrorLog, PoolConf, Socket, Listen                 string
	ControlTimeout                                              int
	PM                                                          string
	MaxChildren, StartServers, MinSpareServers, MaxSpareServers int
	IdleTimeout, MaxRequests, TerminateTimeout                  int
	MemoryLimit                                                 string
	MaxExecutionTime                                            int
	OpenBasedir, SessionDir, TmpDir, UploadMaxSize              string
	INI                                                         []iniSetting
}

type iniSetting struct{ Key, Value string }

// render validates pool, resolves its version and renders both files.
func (m *Manager) render(pool Pool) (*rendered, error) {
	p, err := pool.normalize()
	if err != nil {
		return nil, err
	}
	version, bin, err := m.resolve(p.Version)
	if err != nil {
		return nil, err
	}
	p.Version = version
	k := key{p.Tenant, version}
	r := &rendered{key: k, pool: p, binary: bin, errorLog: errorLogPath(p.Home, version)}
	v := view{
		Tenant: p.Tenant, Version: version, WebGroup: m.opts.WebGroup,
		PidFile: m.pidPath(k), ErrorLog: r.errorLog, PoolConf: m.poolPath(k), Socket: m.socketPath(k), Listen: m.heldPath(k),
		ControlTimeout: int(ControlTimeout / time.Second),
		PM:             p.PM, MaxChildren: p.MaxChildren,
		StartServers: min(2, p.MaxChildren), MinSpareServers: 1, MaxSpareServers: min(3, p.MaxChildren),
		IdleTimeout: int(p.IdleTimeout / time.Second), MaxRequests: MaxRequests,
		TerminateTimeout: p.MaxExecutionTime + int(TerminateGrace/time.Second),
		MemoryLimit:      iniBytes(p.MemoryLimit), MaxExecutionTime: p.MaxExecutionTime,
		OpenBasedir: p.Home + "/:/dev/urandom",
		SessionDir:  filepath.Join(p.Home, "php", "sessions"),
		TmpDir:      filepath.Join(p.Home, "tmp"),
	}
	if p.UploadMaxSize > 0 {
		v.UploadMaxSize = iniBytes(p.UploadMaxSize)
	}
	for _, k := range slices.Sorted(maps.Keys(p.INI)) {
		v.INI = append(v.INI, iniSetting{k, p.INI[k]})
	}
	if r.master, err = m.exec("master.conf.tmpl", v); err != nil {
		return nil, err
	}
	if r.poolConf, err = m.exec("pool.conf.tmpl", v); err != nil {
		return nil, err
	}
	return r, nil
}

func (m *Manager) exec(name string, v view) ([]byte, error) {
	var b bytes.Buffer
	if err := m.tmpl.ExecuteTemplate(&b, name, v); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// iniBytes writes a byte count the way php.ini does: "256M", or plain bytes.
func iniBytes(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	default:
		return strconv.FormatInt(n, 10)
	}
}
