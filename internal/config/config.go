// Package config is the configuration engine of the wcpd daemon.
//
// # Sources and precedence
//
// The effective configuration is built from three layers, later layers
// winning over earlier ones, and merged with a private [viper.Viper]
// instance (never viper's global one):
//
//  1. built-in defaults ([Default]);
//  2. the YAML file, [DefaultPath] unless [LoadOptions.Path] says otherwise;
//     a missing file is fine unless [LoadOptions.Required] is set (an
//     explicit --config was given);
//  3. WCP_* environment variables.
//
// # File keys
//
// Keys are camelCase and case-sensitive, nested one level under a section:
//
//	node: web1                       # DNS label; defaults to the short host name
//	database: {url: "postgres:///wcp360?host=/run/postgresql", maxConns: 10, connectTimeout: 5s}
//	paths: {binDir: /opt/wcp360/bin, configDir: /etc/wcp360, stateDir: /var/lib/wcp360, runDir: /run/wcp360, wwwRoot: /srv/www}
//	api: {socket: /run/wcp360/wcpd.sock, socketMode: 0600, shutdownTimeout: 15s}
//	log: {level: info, format: text}
//	controllers: {workers: 4, resyncInterval: 10m, shutdownTimeout: 30s, backoffBase: 100ms, backoffMax: 5m, rateLimit: 50, rateBurst: 100}
//	uids: {min: 20000, max: 59999}
//	acme: {directory: "https://acme-v02.api.letsencrypt.org/directory", email: "", caBundle: "", eabKid: "", eabHmacKey: "",
//	       retryBase: 1m, retryMax: 1h,
//	       dns: {provider: "", env: {}, envFile: "", resolvers: [], checkAuthoritative: true,
//	             propagationTimeout: 0s, pollingInterval: 0s, sequenceInterval: 0s, forAll: false}}
//
// Keys are nested one level under a section, except acme.dns, a section
// inside acme. acme.dns.env is a mapping of setting names to strings,
// acme.dns.resolvers a list of strings, checkAuthoritative and forAll
// booleans.
//
// Durations are Go duration strings ("90s", "1h30m"); a bare number is a type
// error. socketMode is always read as octal digits, like chmod: 0600, 0o600,
// 600 and "0600" all mean rw-------; 384 is refused (8 is not an octal digit).
//
// # Environment variables
//
// Every key has exactly one variable: "WCP_", then the key path with "." turned
// into "_" and each camelCase word boundary turned into "_", upper-cased:
//
//	node                        WCP_NODE
//	database.url                WCP_DATABASE_URL
//	database.maxConns           WCP_DATABASE_MAX_CONNS
//	paths.stateDir              WCP_PATHS_STATE_DIR
//	api.socketMode              WCP_API_SOCKET_MODE
//	log.level                   WCP_LOG_LEVEL
//	controllers.resyncInterval  WCP_CONTROLLERS_RESYNC_INTERVAL (short alias: WCP_RESYNC_INTERVAL)
//	uids.min                    WCP_UIDS_MIN
//
// [EnvVar] returns the name for a key. A variable that is set, even to the
// empty string, is a value: WCP_LOG_LEVEL= is an error, not "unset". A list
// is comma-separated (WCP_ACME_DNS_RESOLVERS=10.0.0.53:53,10.0.1.53:53), a
// mapping is a YAML flow mapping (WCP_ACME_DNS_ENV='{RFC2136_NAMESERVER:
// "10.0.0.53"}'), a boolean is true or false.
//
// Any other WCP_* variable is an error (a typo such as WCP_DATABSE_URL must
// not be silently ignored), except the variables that belong to other tools:
// WCP_CONFIG (the config file path, read by cmd/wcpd), WCP_SOCKET and
// WCP_TOKEN (the wcp client), WCP_SANDBOX, WCP_SANDBOX_* and
// WCP_REQUIRE_SANDBOX (the test sandbox), WCP_DEMO_HOST (make demo) and
// everything starting with WCP_TEST_ (test harnesses, e.g.
// WCP_TEST_DATABASE_URL).
//
// # Errors
//
// Loading is strict: unknown keys, duplicate keys, wrong types and values out
// of range are all reported, together, as an [Errors] value whose entries are
// [*FieldError]s naming the key and where the value came from (file:line or
// the environment variable). Match the class with errors.Is against
// [ErrUnknownKey], [ErrWrongType] and [ErrInvalidValue].
//
// # Reloading
//
// On SIGHUP the daemon loads the configuration again. If [Load] fails, the
// running configuration is kept as a whole. Otherwise [Config.ReloadChanges]
// tells which changed keys take effect live (log level, resync interval,
// retry rate limit) and which need a restart (everything else: node,
// database, paths, socket, log format, workers, backoff, uid range);
// [Config.WithReloadable] builds the configuration to run with: the new
// reloadable values, the old values for everything else.
package config

import (
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"
)

// DefaultPath is the configuration file read when [LoadOptions.Path] is empty.
const DefaultPath = "/etc/wcp360/wcpd.yaml"

// Config is the configuration of one wcpd process. The zero value is not
// useful; start from [Default] or [Load].
type Config struct {
	// Node is this host's name in the shared database: a lower-case DNS
	// label (RFC 1123, at most 63 characters). Defaults to the short host
	// name.
	Node string `yaml:"node"`
	// Database says how to reach PostgreSQL.
	Database Database `yaml:"database"`
	// Paths are the directories wcpd owns or writes to.
	Paths Paths `yaml:"paths"`
	// API is the local control socket.
	API API `yaml:"api"`
	// Log configures the process logger.
	Log Log `yaml:"log"`
	// Controllers tunes the reconcile loops.
	Controllers Controllers `yaml:"controllers"`
	// Web is the web server and PHP the host runs the tenants' sites with.
	Web Web `yaml:"web"`
	// UIDs is the range tenant users are allocated from.
	UIDs UIDRange `yaml:"uids"`
	// Auth configures logins.
	Auth Auth `yaml:"auth"`
	// Isolation is how tenants' limits are enforced.
	Isolation Isolation `yaml:"isolation"`
	// ACME is the certificate authority of domains with spec.tls.mode acme.
	ACME ACME `yaml:"acme"`
}

// ACME is the certificate authority (RFC 8555) that issues the
// certificates of domains with spec.tls.mode acme.
type ACME struct {
	// Directory is the CA's ACME directory URL (https); "" turns ACME
	// off: acme domains keep their self-signed placeholder and say so.
	Directory string `yaml:"directory"`
	// Email is the account's contact address; "" registers none.
	Email string `yaml:"email"`
	// CABundle is a PEM file of extra roots trusted for the directory's
	// HTTPS (a private CA, pebble in tests); "" trusts the system's.
	CABundle string `yaml:"caBundle"`
	// EABKid and EABHMACKey are the external account binding the CA hands
	// out (key id, base64url HMAC key): both or neither. The key is a
	// secret: [Config.YAML] redacts it.
	EABKid     string `yaml:"eabKid"`
	EABHMACKey string `yaml:"eabHmacKey"`
	// RetryBase is the wait after a domain's first failed order, doubled
	// after each further failure up to RetryMax (unless the CA's
	// Retry-After says otherwise), 1s..1h.
	RetryBase time.Duration `yaml:"retryBase"`
	// RetryMax caps that wait, RetryBase..24h.
	RetryMax time.Duration `yaml:"retryMax"`
	// DNS is the DNS-01 challenge: wildcard names need it.
	DNS ACMEDNS `yaml:"dns"`
}

// ACMEDNS configures DNS-01 through one of the DNS providers of
// internal/host/acme (acme.DNSProviders); Provider "" turns it off.
type ACMEDNS struct {
	// Provider names the DNS provider (rfc2136, exec, httpreq,
	// cloudflare, route53, pdns, hetzner, digitalocean).
	Provider string `yaml:"provider"`
	// Env are the provider's settings and credentials under lego's names
	// (CLOUDFLARE_DNS_API_TOKEN, RFC2136_NAMESERVER, ...); never put in
	// the process environment. Values are secrets: [Config.YAML] redacts
	// them all.
	Env map[string]string `yaml:"env"`
	// EnvFile is a file of KEY=value lines with more of them (0600, owned
	// by wcpd's user), read at start; a key may not be in both.
	EnvFile string `yaml:"envFile"`
	// Resolvers are the DNS servers (host:port) asked for zones and for
	// the TXT record before the CA is told to look; none: the system's.
	Resolvers []string `yaml:"resolvers"`
	// CheckAuthoritative also waits for every authoritative server of
	// the zone to answer the record.
	CheckAuthoritative bool `yaml:"checkAuthoritative"`
	// PropagationTimeout, PollingInterval and SequenceInterval tune the
	// wait for the record (0: the provider's default).
	PropagationTimeout time.Duration `yaml:"propagationTimeout"`
	PollingInterval    time.Duration `yaml:"pollingInterval"`
	SequenceInterval   time.Duration `yaml:"sequenceInterval"`
	// ForAll proves every name over DNS-01, not only wildcards and
	// domains that ask for dns-01.
	ForAll bool `yaml:"forAll"`
}

// Isolation is how the tenants' limits (spec.limits) are enforced.
type Isolation struct {
	// Cgroups picks the cgroup driver: auto (systemd slices where systemd
	// is PID 1 and cgroup2 has the controllers, else cgroup2 written
	// directly, else the cgroup v1 controllers), systemd, cgroup2,
	// cgroup1, or none (no limit enforced; status says so).
	Cgroups string `yaml:"cgroups"`
	// Subtree is the cgroup WCP360's tenants live under (cgroup2 and
	// cgroup1: <mount>/<subtree>/<tenant>).
	Subtree string `yaml:"subtree"`
	// PressureStall and PressureWindow are the PSI trigger that records a
	// PressureStall event on a tenant: some of its tasks stalled for
	// PressureStall within PressureWindow.
	PressureStall  time.Duration `yaml:"pressureStall"`
	PressureWindow time.Duration `yaml:"pressureWindow"`
	// CPUPeriod is the CFS period every tenant's cpu limit is enforced
	// over: the quota is the limit's share of it (cpu 50% with 10ms is
	// 5ms of CPU per 10ms). 100ms is the kernel's and systemd's default.
	CPUPeriod time.Duration `yaml:"cpuPeriod"`
}

// The values of isolation.cgroups.
const (
	CgroupsAuto    = "auto"
	CgroupsSystemd = "systemd"
	CgroupsV2      = "cgroup2"
	CgroupsV1      = "cgroup1"
	CgroupsNone    = "none"
)

// Auth configures who may log in to the panel with a Linux password.
type Auth struct {
	// AdminGroup names a Linux group whose members log in as admins,
	// besides root; "" is root only.
	AdminGroup string `yaml:"adminGroup"`
}

// Web is the web server and PHP of the host.
type Web struct {
	// Nginx is the nginx binary.
	Nginx string `yaml:"nginx"`
	// NginxConfig is nginx's main configuration file; WCP360 adds one
	// include line to it and changes nothing else.
	NginxConfig string `yaml:"nginxConfig"`
	// NginxDir holds WCP360's nginx files: the http include, the default
	// server and one file per domain in sites/.
	NginxDir string `yaml:"nginxDir"`
	// PHPBinDir is where the php-fpm<X.Y> binaries are looked for.
	PHPBinDir string `yaml:"phpBinDir"`
	// WebUser is the user nginx's workers run as; it joins every tenant's
	// group to read the sites.
	WebUser string `yaml:"webUser"`
	// PHPIdleStop makes PHP start on demand: wcpd holds each tenant's
	// socket, the first request starts the tenant's PHP-FPM master, and a
	// master without work for this long is stopped. 0 keeps every master
	// running.
	PHPIdleStop time.Duration `yaml:"phpIdleStop"`
}

// Database says how to reach PostgreSQL.
type Database struct {
	// URL is a postgres:// or postgresql:// connection URL. It may hold a
	// password; [Config.YAML] redacts it.
	URL string `yaml:"url"`
	// MaxConns is the size of the connection pool, 1..1000.
	MaxConns int `yaml:"maxConns"`
	// ConnectTimeout bounds one connection attempt, 1s..5m.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
}

// Paths are the directories wcpd owns or writes to. All are clean absolute
// paths.
type Paths struct {
	BinDir    string `yaml:"binDir"`    // helper binaries
	ConfigDir string `yaml:"configDir"` // configuration
	StateDir  string `yaml:"stateDir"`  // state and snapshots
	RunDir    string `yaml:"runDir"`    // runtime files (pid, locks)
	WWWRoot   string `yaml:"wwwRoot"`   // tenant homes live in WWWRoot/<tenant>
}

// API is the local control socket.
type API struct {
	// Socket is the absolute path of the unix socket (at most 107 bytes).
	Socket string `yaml:"socket"`
	// SocketMode is the permission of the socket file, at most 0777.
	SocketMode fs.FileMode `yaml:"socketMode"`
	// ShutdownTimeout bounds the graceful stop of the API server, 1s..10m.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// Listen is the host:port of the HTTPS API (bearer tokens required);
	// "" serves the unix socket only.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are the HTTPS API's certificate chain and key
	// (PEM); both empty: a self-signed pair generated at first start in
	// paths.configDir/tls.
	TLSCert string `yaml:"tlsCert"`
	TLSKey  string `yaml:"tlsKey"`
}

// Log configures the process logger.
type Log struct {
	// Level is one of debug, info, warn, error. See [Config.LogLevel].
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Controllers tunes the reconcile loops.
type Controllers struct {
	// Workers is the number of concurrent reconciles per controller, 1..64.
	Workers int `yaml:"workers"`
	// ResyncInterval is how often every resource is reconciled even without
	// a notification (drift detection), 10s..24h.
	ResyncInterval time.Duration `yaml:"resyncInterval"`
	// ShutdownTimeout bounds the wait for running reconciles on stop, 1s..10m.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// BackoffBase is the first retry delay after an error, 1ms..1m.
	BackoffBase time.Duration `yaml:"backoffBase"`
	// BackoffMax caps the per-key exponential backoff, BackoffBase..24h.
	BackoffMax time.Duration `yaml:"backoffMax"`
	// RateLimit bounds, per controller, how many failed reconciles per
	// second are retried (first attempts are not limited), 1..10000.
	RateLimit int `yaml:"rateLimit"`
	// RateBurst is the token bucket size of that limit, 1..100000.
	RateBurst int `yaml:"rateBurst"`
}

// UIDRange is an inclusive range of user and group ids.
type UIDRange struct {
	// Min is the first id, at least 1000 (below are system accounts).
	Min int `yaml:"min"`
	// Max is the last id, at least Min and at most 4294967294; the range
	// must not contain 65534 (nobody).
	Max int `yaml:"max"`
}

// Default returns the built-in configuration. Node is the short host name
// (the first label of os.Hostname, lower-cased), or empty if it cannot be
// read; an empty or invalid host name makes [Config.Validate] fail until node
// is configured.
func Default() Config {
	return Config{
		Node: defaultNode(),
		Database: Database{
			URL:            "postgres:///wcp360?host=/run/postgresql",
			MaxConns:       10,
			ConnectTimeout: 5 * time.Second,
		},
		Paths: Paths{
			BinDir:    "/opt/wcp360/bin",
			ConfigDir: "/etc/wcp360",
			StateDir:  "/var/lib/wcp360",
			RunDir:    "/run/wcp360",
			WWWRoot:   "/srv/www",
		},
		API: API{
			Socket:          "/run/wcp360/wcpd.sock",
			SocketMode:      0o600,
			ShutdownTimeout: 15 * time.Second,
		},
		Log: Log{Level: "info", Format: "text"},
		Controllers: Controllers{
			Workers:         4,
			ResyncInterval:  10 * time.Minute,
			ShutdownTimeout: 30 * time.Second,
			BackoffBase:     100 * time.Millisecond,
			BackoffMax:      5 * time.Minute,
			RateLimit:       50,
			RateBurst:       100,
		},
		Web: Web{
			Nginx:       "/usr/sbin/nginx",
			NginxConfig: "/etc/nginx/nginx.conf",
			NginxDir:    "/etc/nginx/wcp360",
			PHPBinDir:   "/usr/sbin",
			WebUser:     "www-data",
			PHPIdleStop: 10 * time.Minute,
		},
		UIDs: UIDRange{Min: 20000, Max: 59999},
		Isolation: Isolation{Cgroups: CgroupsAuto, Subtree: "wcp360",
			PressureStall: 100 * time.Millisecond, PressureWindow: time.Second, CPUPeriod: 100 * time.Millisecond},
		ACME: ACME{Directory: "https://acme-v02.api.letsencrypt.org/directory", RetryBase: time.Minute, RetryMax: time.Hour,
			DNS: ACMEDNS{CheckAuthoritative: true}},
	}
}

func defaultNode() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.ToLower(h)
}

// LogLevel returns the slog level for Log.Level; an unknown level (which
// [Config.Validate] refuses) is [slog.LevelInfo].
func (c Config) LogLevel() slog.Level {
	switch c.Log.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
