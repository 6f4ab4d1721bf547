package config

import (
	"errors"
	"flag"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// testEnv is the environment most tests load with: a fixed node name, so the
// result does not depend on the host name of the machine running the tests.
func testEnv(extra ...string) []string {
	return append([]string{"WCP_NODE=test-node"}, extra...)
}

// testDefault is Default with the node of testEnv.
func testDefault() Config {
	c := Default()
	c.Node = "test-node"
	return c
}

// writeConfig writes content to a fresh file and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wcpd.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	c := testDefault()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if c.API.SocketMode != 0o600 || c.Controllers.ResyncInterval != 10*time.Minute || c.UIDs != (UIDRange{20000, 59999}) {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestLoadMissingFileGivesDefaults(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	got, err := Load(LoadOptions{Path: missing, Environ: testEnv()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testDefault(), got); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

// TestLoadHostNameDefault loads with no environment at all: node is the host
// name when it is a DNS label, and otherwise an error naming node.
func TestLoadHostNameDefault(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	got, err := Load(LoadOptions{Path: missing, Environ: []string{}})
	if Default().Validate() == nil {
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Default(), got); diff != "" {
			t.Errorf("Load() mismatch (-want +got):\n%s", diff)
		}
		return
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Key != "node" {
		t.Fatalf("Load() with an unusable host name = %v, want one error on node", err)
	}
}

func TestLoadRequiredMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(LoadOptions{Path: missing, Required: true, Environ: testEnv()})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(required, missing) = %v, want fs.ErrNotExist", err)
	}
}

const fullFile = `# every key
node: web-1
database:
  url: postgres://wcp:secret@db.example.com:5432/wcp360?sslmode=verify-full
  maxConns: 20
  connectTimeout: 10s
paths:
  binDir: /usr/local/wcp360/bin
  configDir: /usr/local/etc/wcp360
  stateDir: /data/wcp360
  runDir: /run/wcp
  wwwRoot: /home/www
api:
  socket: /run/wcp/api.sock
  socketMode: 0660
  shutdownTimeout: 1m
  listen: 127.0.0.1:8443
  tlsCert: /etc/ssl/wcp/api.crt
  tlsKey: /etc/ssl/wcp/api.key
log:
  level: debug
  format: json
controllers:
  workers: 8
  resyncInterval: 1h30m
  shutdownTimeout: 2m
  backoffBase: 50ms
  backoffMax: 10m
  rateLimit: 500
  rateBurst: 1000
web:
  nginx: /usr/local/sbin/nginx
  nginxConfig: /usr/local/etc/nginx/nginx.conf
  nginxDir: /usr/local/etc/nginx/wcp360
  phpBinDir: /usr/local/sbin
  webUser: nginx
  phpIdleStop: 90s
uids:
  min: 100000
  max: 199999
auth:
  adminGroup: wcp360-admin
isolation:
  cgroups: cgroup1
  subtree: wcp-panel
  pressureStall: 200ms
  pressureWindow: 2s
  cpuPeriod: 10ms
acme:
  directory: https://acme-staging-v02.api.letsencrypt.org/directory
  email: admin@example.com
  caBundle: /etc/wcp360/acme-roots.pem
  eabKid: kid-1
  eabHmacKey: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
  retryBase: 30s
  retryMax: 2h
  dns:
    provider: rfc2136
    env:
      RFC2136_NAMESERVER: 10.0.0.53:53
      RFC2136_TSIG_KEY: wcp360.
      RFC2136_TSIG_SECRET: dHNpZy1rZXktdmFsdWU=
      RFC2136_TTL: 60
    envFile: /etc/wcp360/dns.env
    resolvers: [10.0.0.53:53, "[2001:db8::53]:53"]
    checkAuthoritative: false
    propagationTimeout: 5m
    pollingInterval: 500ms
    sequenceInterval: 10s
    forAll: true
`

func fullConfig() Config {
	return Config{
		Node:     "web-1",
		Database: Database{URL: "postgres://wcp:secret@db.example.com:5432/wcp360?sslmode=verify-full", MaxConns: 20, ConnectTimeout: 10 * time.Second},
		Paths: Paths{
			BinDir: "/usr/local/wcp360/bin", ConfigDir: "/usr/local/etc/wcp360", StateDir: "/data/wcp360",
			RunDir: "/run/wcp", WWWRoot: "/home/www",
		},
		API: API{Socket: "/run/wcp/api.sock", SocketMode: 0o660, ShutdownTimeout: time.Minute,
			Listen: "127.0.0.1:8443", TLSCert: "/etc/ssl/wcp/api.crt", TLSKey: "/etc/ssl/wcp/api.key"},
		Log: Log{Level: "debug", Format: "json"},
		Controllers: Controllers{
			Workers: 8, ResyncInterval: 90 * time.Minute, ShutdownTimeout: 2 * time.Minute,
			BackoffBase: 50 * time.Millisecond, BackoffMax: 10 * time.Minute, RateLimit: 500, RateBurst: 1000,
		},
		Web: Web{Nginx: "/usr/local/sbin/nginx", NginxConfig: "/usr/local/etc/nginx/nginx.conf", NginxDir: "/usr/local/etc/nginx/wcp360",
			PHPBinDir: "/usr/local/sbin", WebUser: "nginx", PHPIdleStop: 90 * time.Second},
		UIDs: UIDRange{Min: 100000, Max: 199999},
		Auth: Auth{AdminGroup: "wcp360-admin"},
		Isolation: Isolation{Cgroups: CgroupsV1, Subtree: "wcp-panel", PressureStall: 200 * time.Millisecond,
			PressureWindow: 2 * time.Second, CPUPeriod: 10 * time.Millisecond},
		ACME: ACME{Directory: "https://acme-staging-v02.api.letsencrypt.org/directory", Email: "admin@example.com",
			CABundle: "/etc/wcp360/acme-roots.pem", EABKid: "kid-1", EABHMACKey: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
			RetryBase: 30 * time.Second, RetryMax: 2 * time.Hour,
			DNS: ACMEDNS{Provider: "rfc2136", Env: map[string]string{"RFC2136_NAMESERVER": "10.0.0.53:53", "RFC2136_TSIG_KEY": "wcp360.",
				"RFC2136_TSIG_SECRET": "dHNpZy1rZXktdmFsdWU=", "RFC2136_TTL": "60"}, EnvFile: "/etc/wcp360/dns.env",
				Resolvers: []string{"10.0.0.53:53", "[2001:db8::53]:53"}, PropagationTimeout: 5 * time.Minute,
				PollingInterval: 500 * time.Millisecond, SequenceInterval: 10 * time.Second, ForAll: true}},
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		file string // "" means no file
		env  []string
		want func(c *Config)
	}{
		{
			name: "every key from the file",
			file: fullFile,
			env:  []string{},
			want: func(c *Config) { *c = fullConfig() },
		},
		{
			name: "environment overrides the file",
			file: fullFile,
			env: []string{
				"WCP_NODE=web-2",
				"WCP_DATABASE_URL=postgres:///other",
				"WCP_LOG_LEVEL=warn",
				"WCP_PATHS_STATE_DIR=/srv/state",
				"WCP_API_SOCKET_MODE=0640",
				"WCP_CONTROLLERS_RESYNC_INTERVAL=30s",
				"WCP_UIDS_MAX=150000",
			},
			want: func(c *Config) {
				*c = fullConfig()
				c.Node = "web-2"
				c.Database.URL = "postgres:///other"
				c.Log.Level = "warn"
				c.Paths.StateDir = "/srv/state"
				c.API.SocketMode = 0o640
				c.Controllers.ResyncInterval = 30 * time.Second
				c.UIDs.Max = 150000
			},
		},
		{
			name: "environment without a file",
			env:  testEnv("WCP_DATABASE_MAX_CONNS=3", "WCP_CONTROLLERS_WORKERS=16", "WCP_LOG_FORMAT=json"),
			want: func(c *Config) {
				c.Database.MaxConns = 3
				c.Controllers.Workers = 16
				c.Log.Format = "json"
			},
		},
		{
			name: "short alias WCP_RESYNC_INTERVAL",
			env:  testEnv("WCP_RESYNC_INTERVAL=5m"),
			want: func(c *Config) { c.Controllers.ResyncInterval = 5 * time.Minute },
		},
		{
			name: "partial file keeps the other defaults",
			file: "log: {level: error}\ncontrollers:\n  workers: 1\n",
			env:  testEnv(),
			want: func(c *Config) {
				c.Log.Level = "error"
				c.Controllers.Workers = 1
			},
		},
		{
			name: "empty file",
			file: "",
			env:  testEnv(),
			want: func(*Config) {},
		},
		{
			name: "comments and a null document",
			file: "# nothing here\n~\n",
			env:  testEnv(),
			want: func(*Config) {},
		},
		{
			name: "section with every key commented out",
			file: "log:\n  # level: debug\n",
			env:  testEnv(),
			want: func(*Config) {},
		},
		{
			name: "anchors and aliases",
			file: "api: {shutdownTimeout: &t 45s}\ncontrollers: {shutdownTimeout: *t}\n",
			env:  testEnv(),
			want: func(c *Config) {
				c.API.ShutdownTimeout = 45 * time.Second
				c.Controllers.ShutdownTimeout = 45 * time.Second
			},
		},
		{
			name: "socketMode 0o750",
			file: "api: {socketMode: 0o750}\n",
			env:  testEnv(),
			want: func(c *Config) { c.API.SocketMode = 0o750 },
		},
		{
			name: "socketMode quoted string",
			file: "api: {socketMode: \"0644\"}\n",
			env:  testEnv(),
			want: func(c *Config) { c.API.SocketMode = 0o644 },
		},
		{
			name: "socketMode without leading zero is octal too",
			file: "api: {socketMode: 660}\n",
			env:  testEnv(),
			want: func(c *Config) { c.API.SocketMode = 0o660 },
		},
		{
			name: "variables of other tools and other prefixes are ignored",
			env: testEnv(
				"WCP_SOCKET=/tmp/x.sock", "WCP_TOKEN=abc", "WCP_CONFIG=/etc/x.yaml",
				"WCP_TEST_DATABASE_URL=postgres:///t", "WCP_TEST_ANYTHING=1",
				"wcp_log_level=nonsense", "PATH=/usr/bin", "NOEQUALSSIGN",
			),
			want: func(*Config) {},
		},
		{
			name: "the last of repeated variables wins",
			env:  testEnv("WCP_LOG_LEVEL=nonsense", "WCP_LOG_LEVEL=debug"),
			want: func(c *Config) { c.Log.Level = "debug" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Path: filepath.Join(t.TempDir(), "absent.yaml"), Environ: tt.env}
			if tt.file != "" || strings.Contains(tt.name, "empty file") {
				opts.Path = writeConfig(t, tt.file)
				opts.Required = true
			}
			got, err := Load(opts)
			if err != nil {
				t.Fatalf("Load() error: %v", err)
			}
			want := testDefault()
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// reported is the comparable part of a FieldError.
type reported struct {
	Key    string
	Class  string
	Source string // the temporary file path is written "file"
}

func classes(err error) string {
	for _, c := range []error{ErrUnknownKey, ErrWrongType, ErrInvalidValue} {
		if errors.Is(err, c) {
			return c.Error()
		}
	}
	return "?"
}

// problemsOf flattens a Load error for comparison.
func problemsOf(t *testing.T, err error, path string) []reported {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not config.Errors", err, err)
	}
	var out []reported
	for _, e := range es {
		src := e.Source
		if path != "" {
			src = strings.Replace(src, path, "file", 1)
		}
		out = append(out, reported{Key: e.Key, Class: classes(e), Source: src})
		if !strings.Contains(e.Error(), e.Key) {
			t.Errorf("message %q does not name key %q", e.Error(), e.Key)
		}
	}
	return out
}

func TestLoadErrors(t *testing.T) {
	const (
		unknown = "unknown key"
		wrong   = "wrong type"
		invalid = "invalid value"
	)
	tests := []struct {
		name    string
		file    string
		env     []string
		want    []reported
		message string // a fragment of the error message, optional
	}{
		{
			name:    "unknown top-level key",
			file:    "nod: web-1\n",
			want:    []reported{{"nod", unknown, "file:1"}},
			message: `did you mean "node"?`,
		},
		{
			name:    "unknown nested key",
			file:    "database:\n  url: postgres:///x\n  maxconns: 3\n",
			want:    []reported{{"database.maxconns", unknown, "file:3"}},
			message: `did you mean "maxConns"?`,
		},
		{
			name: "unknown section",
			file: "tls: {acme: true}\n",
			want: []reported{{"tls", unknown, "file:1"}},
		},
		{
			name: "a leaf name used as a section key",
			file: "log: {level: {value: debug}}\n",
			want: []reported{{"log.level", wrong, "file:1"}},
		},
		{
			name: "merge keys are not keys",
			file: "base: &b {level: debug}\nlog:\n  <<: *b\n",
			want: []reported{{"base", unknown, "file:1"}, {"log.<<", unknown, "file:3"}},
		},
		{
			name:    "unknown environment variable",
			env:     testEnv("WCP_DATABSE_URL=postgres:///x"),
			want:    []reported{{"WCP_DATABSE_URL", unknown, "env"}},
			message: "did you mean \"WCP_DATABASE_URL\"?",
		},
		{
			name: "camelCase joined without underscore is not the variable",
			env:  testEnv("WCP_PATHS_STATEDIR=/x"),
			want: []reported{{"WCP_PATHS_STATEDIR", unknown, "env"}},
		},
		{
			name:    "string for an integer",
			file:    "controllers:\n  workers: four\n",
			want:    []reported{{"controllers.workers", wrong, "file:2"}},
			message: `want an integer, got string "four"`,
		},
		{
			name: "quoted number for an integer",
			file: "controllers: {workers: \"4\"}\n",
			want: []reported{{"controllers.workers", wrong, "file:1"}},
		},
		{
			name: "float for an integer",
			file: "controllers: {rateLimit: 2.5}\n",
			want: []reported{{"controllers.rateLimit", wrong, "file:1"}},
		},
		{
			name: "integer out of range of int",
			file: "uids: {max: 99999999999999999999}\n",
			want: []reported{{"uids.max", wrong, "file:1"}},
		},
		{
			name: "bad duration",
			file: "controllers: {resyncInterval: abc}\n",
			want: []reported{{"controllers.resyncInterval", wrong, "file:1"}},
		},
		{
			name:    "bare number for a duration",
			file:    "database: {connectTimeout: 5}\n",
			want:    []reported{{"database.connectTimeout", wrong, "file:1"}},
			message: "want a duration such as 30s",
		},
		{
			name: "integer for a string",
			file: "node: 42\n",
			want: []reported{{"node", wrong, "file:1"}},
		},
		{
			name: "boolean for a string",
			file: "log: {format: true}\n",
			want: []reported{{"log.format", wrong, "file:1"}},
		},
		{
			name: "list for a string",
			file: "paths:\n  binDir: [/a, /b]\n",
			want: []reported{{"paths.binDir", wrong, "file:2"}},
		},
		{
			name:    "key without a value",
			file:    "log:\n  level:\n",
			want:    []reported{{"log.level", wrong, "file:2"}},
			message: "has no value",
		},
		{
			name: "scalar for a section",
			file: "log: debug\n",
			want: []reported{{"log", wrong, "file:1"}},
		},
		{
			name:    "duplicate key",
			file:    "log:\n  level: debug\n  level: info\n",
			want:    []reported{{"log.level", invalid, "file:3"}},
			message: "first set at line 2",
		},
		{
			name: "bad integer in the environment",
			env:  testEnv("WCP_CONTROLLERS_WORKERS=many"),
			want: []reported{{"controllers.workers", wrong, "env WCP_CONTROLLERS_WORKERS"}},
		},
		{
			name: "bad duration in the environment",
			env:  testEnv("WCP_API_SHUTDOWN_TIMEOUT=15"),
			want: []reported{{"api.shutdownTimeout", wrong, "env WCP_API_SHUTDOWN_TIMEOUT"}},
		},
		{
			name: "empty variable is a value",
			env:  testEnv("WCP_LOG_LEVEL="),
			want: []reported{{"log.level", invalid, "env WCP_LOG_LEVEL"}},
		},
		{
			name:    "workers 0",
			file:    "controllers:\n  workers: 0\n",
			want:    []reported{{"controllers.workers", invalid, "file:2"}},
			message: "must be between 1 and 64, got 0",
		},
		{
			name: "workers 65 from the environment",
			env:  testEnv("WCP_CONTROLLERS_WORKERS=65"),
			want: []reported{{"controllers.workers", invalid, "env WCP_CONTROLLERS_WORKERS"}},
		},
		{
			name:    "resyncInterval 1s",
			env:     testEnv("WCP_RESYNC_INTERVAL=1s"),
			want:    []reported{{"controllers.resyncInterval", invalid, "env WCP_RESYNC_INTERVAL"}},
			message: "must be between 10s and 24h, got 1s",
		},
		{
			name: "alias and canonical variable both set",
			env:  testEnv("WCP_RESYNC_INTERVAL=1m", "WCP_CONTROLLERS_RESYNC_INTERVAL=2m"),
			want: []reported{{"controllers.resyncInterval", invalid, "env WCP_RESYNC_INTERVAL"}},
		},
		{
			name: "shutdown timeouts out of range",
			file: "api: {shutdownTimeout: 0s}\ncontrollers: {shutdownTimeout: 11m}\n",
			want: []reported{
				{"api.shutdownTimeout", invalid, "file:1"},
				{"controllers.shutdownTimeout", invalid, "file:2"},
			},
		},
		{
			name: "backoffMax below backoffBase",
			file: "controllers: {backoffBase: 1m, backoffMax: 10s}\n",
			want: []reported{{"controllers.backoffMax", invalid, "file:1"}},
		},
		{
			name:    "cpuPeriod below the kernel's 1ms",
			file:    "isolation:\n  cpuPeriod: 500us\n",
			want:    []reported{{"isolation.cpuPeriod", invalid, "file:2"}},
			message: "must be between 1ms and 1s, got 500µs",
		},
		{
			name:    "cpuPeriod in nanoseconds",
			env:     testEnv("WCP_ISOLATION_CPU_PERIOD=10000500ns"),
			want:    []reported{{"isolation.cpuPeriod", invalid, "env WCP_ISOLATION_CPU_PERIOD"}},
			message: "must be whole microseconds, got 10.0005ms",
		},
		{
			name: "cpuPeriod above 1s",
			env:  testEnv("WCP_ISOLATION_CPU_PERIOD=2s"),
			want: []reported{{"isolation.cpuPeriod", invalid, "env WCP_ISOLATION_CPU_PERIOD"}},
		},
		{
			name: "acme retryMax below retryBase",
			file: "acme: {retryBase: 10m, retryMax: 5m}\n",
			want: []reported{{"acme.retryMax", invalid, "file:1"}},
		},
		{
			name: "acme retry out of range",
			env:  testEnv("WCP_ACME_RETRY_BASE=500ms", "WCP_ACME_RETRY_MAX=25h"),
			want: []reported{
				{"acme.retryBase", invalid, "env WCP_ACME_RETRY_BASE"},
				{"acme.retryMax", invalid, "env WCP_ACME_RETRY_MAX"},
			},
		},
		{
			name: "rate limits out of range",
			file: "controllers: {rateLimit: 0, rateBurst: 100001}\n",
			want: []reported{
				{"controllers.rateLimit", invalid, "file:1"},
				{"controllers.rateBurst", invalid, "file:1"},
			},
		},
		{
			name:    "bad log level",
			file:    "log: {level: verbose}\n",
			want:    []reported{{"log.level", invalid, "file:1"}},
			message: "must be one of debug, info, warn, error",
		},
		{
			name: "bad log format",
			env:  testEnv("WCP_LOG_FORMAT=xml"),
			want: []reported{{"log.format", invalid, "env WCP_LOG_FORMAT"}},
		},
		{
			name: "relative and unclean paths",
			file: "paths:\n  stateDir: var/lib/wcp360\n  wwwRoot: /srv/www/\n  runDir: \"\"\n",
			want: []reported{
				{"paths.stateDir", invalid, "file:2"},
				{"paths.runDir", invalid, "file:4"},
				{"paths.wwwRoot", invalid, "file:3"},
			},
		},
		{
			name: "control character in a path",
			env:  testEnv("WCP_PATHS_BIN_DIR=/opt/x\ny"),
			want: []reported{{"paths.binDir", invalid, "env WCP_PATHS_BIN_DIR"}},
		},
		{
			name: "socket path too long",
			env:  testEnv("WCP_API_SOCKET=/" + strings.Repeat("s", 110)),
			want: []reported{{"api.socket", invalid, "env WCP_API_SOCKET"}},
		},
		{
			name:    "socketMode written in decimal",
			file:    "api: {socketMode: 384}\n",
			want:    []reported{{"api.socketMode", wrong, "file:1"}},
			message: "want octal permission bits",
		},
		{
			name: "socketMode above 0777",
			file: "api: {socketMode: 01777}\n",
			want: []reported{{"api.socketMode", invalid, "file:1"}},
		},
		{
			name: "socketMode not a number",
			env:  testEnv("WCP_API_SOCKET_MODE=rw-------"),
			want: []reported{{"api.socketMode", wrong, "env WCP_API_SOCKET_MODE"}},
		},
		{
			name:    "uid min above max",
			file:    "uids:\n  min: 70000\n  max: 69999\n",
			want:    []reported{{"uids.min", invalid, "file:2"}},
			message: "must not be greater than uids.max",
		},
		{
			name: "uid range with system users or nobody",
			file: "uids: {min: 500, max: 70000}\n",
			want: []reported{{"uids.min", invalid, "file:1"}},
		},
		{
			name: "uid range containing nobody",
			file: "uids: {min: 60000, max: 70000}\n",
			want: []reported{{"uids.max", invalid, "file:1"}},
		},
		{
			name:    "acme directory over plain http",
			file:    "acme: {directory: http://ca.example/dir}\n",
			want:    []reported{{"acme.directory", invalid, "file:1"}},
			message: "not an https URL",
		},
		{
			name: "acme email and relative CA bundle",
			file: "acme:\n  email: admin\n  caBundle: roots.pem\n",
			want: []reported{{"acme.email", invalid, "file:2"}, {"acme.caBundle", invalid, "file:3"}},
		},
		{
			name:    "acme EAB key without its id, not echoed",
			env:     []string{"WCP_ACME_EAB_HMAC_KEY=s3cret"},
			want:    []reported{{"acme.eabKid", invalid, ""}},
			message: "go together",
		},
		{
			name: "acme EAB key that is not base64url",
			env:  []string{"WCP_ACME_EAB_KID=kid-1", "WCP_ACME_EAB_HMAC_KEY=not base64!"},
			want: []reported{{"acme.eabHmacKey", invalid, "env WCP_ACME_EAB_HMAC_KEY"}},
		},
		{
			name:    "bad node name",
			file:    "node: Web_1\n",
			env:     []string{},
			want:    []reported{{"node", invalid, "file:1"}},
			message: "must be a DNS label",
		},
		{
			name: "node too long",
			env:  []string{"WCP_NODE=" + strings.Repeat("a", 64)},
			want: []reported{{"node", invalid, "env WCP_NODE"}},
		},
		{
			name: "node ending with a dash",
			env:  []string{"WCP_NODE=web-"},
			want: []reported{{"node", invalid, "env WCP_NODE"}},
		},
		{
			name: "database URL of another engine",
			env:  testEnv("WCP_DATABASE_URL=mysql://root:hunter2@db/x"),
			want: []reported{{"database.url", invalid, "env WCP_DATABASE_URL"}},
		},
		{
			name: "maxConns out of range",
			file: "database: {maxConns: 0, connectTimeout: 10m}\n",
			want: []reported{
				{"database.maxConns", invalid, "file:1"},
				{"database.connectTimeout", invalid, "file:1"},
			},
		},
		{
			name: "a bad file value is reported even when the environment overrides it",
			file: "log: {level: 7}\n",
			env:  testEnv("WCP_LOG_LEVEL=debug"),
			want: []reported{{"log.level", wrong, "file:1"}},
		},
		{
			name: "every problem at once",
			file: "node: web-1\nlog:\n  level: loud\n  colour: red\ncontrollers:\n  workers: 0\n  resyncInterval: soon\nuids: {min: 50000, max: 40000}\n",
			env:  []string{"WCP_DATABSE_URL=x", "WCP_API_SOCKET=relative.sock"},
			want: []reported{
				{"log.colour", unknown, "file:4"},
				{"controllers.resyncInterval", wrong, "file:7"},
				{"WCP_DATABSE_URL", unknown, "env"},
				{"api.socket", invalid, "env WCP_API_SOCKET"},
				{"log.level", invalid, "file:3"},
				{"controllers.workers", invalid, "file:6"},
				{"uids.min", invalid, "file:8"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = testEnv()
			}
			opts := LoadOptions{Path: filepath.Join(t.TempDir(), "absent.yaml"), Environ: env}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			got, err := Load(opts)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", got)
			}
			if diff := cmp.Diff(Config{}, got); diff != "" {
				t.Errorf("Load() returned a config with its error:\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, problemsOf(t, err, opts.Path)); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s\nerror:\n%v", diff, err)
			}
			if tt.message != "" && !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

// TestLoadFileErrors covers files that cannot be used at all: they are plain
// errors, not Errors.
func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		message string
	}{
		{"syntax error", "log: {level: debug\n", "config "},
		{"tab indentation", "log:\n\tlevel: debug\n", "config "},
		{"two documents", "log: {level: debug}\n---\nlog: {level: info}\n", "only one YAML document"},
		{"list at the top", "- node: a\n", "must be a mapping"},
		{"scalar at the top", "hello\n", "must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			_, err := Load(LoadOptions{Path: path, Environ: testEnv()})
			if err == nil {
				t.Fatal("Load() succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.message) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not contain %q and the path", err, tt.message)
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		_, err := Load(LoadOptions{Path: t.TempDir(), Environ: testEnv()})
		if err == nil {
			t.Fatal("Load(directory) succeeded")
		}
	})
}

func TestFieldErrorMessage(t *testing.T) {
	path := writeConfig(t, "controllers:\n  workers: 0\n")
	_, err := Load(LoadOptions{Path: path, Environ: testEnv()})
	want := path + ":2: controllers.workers: must be between 1 and 64, got 0"
	if err == nil || err.Error() != want {
		t.Errorf("Load() error = %q, want %q", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Key != "controllers.workers" || !errors.Is(err, ErrInvalidValue) {
		t.Errorf("errors.As/Is do not find the FieldError in %v", err)
	}
}

func TestValidateCollectsEverything(t *testing.T) {
	var c Config // the zero value breaks nearly every key
	err := c.Validate()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Validate() = %v, want Errors", err)
	}
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
		if e.Source != "" {
			t.Errorf("Validate sets Source %q", e.Source)
		}
	}
	var want []string
	for _, k := range Keys() {
		switch k {
		case "api.socketMode", "web.phpIdleStop", "api.listen", "api.tlsCert", "api.tlsKey", "auth.adminGroup",
			"acme.directory", "acme.email", "acme.caBundle", "acme.eabKid", "acme.eabHmacKey",
			"acme.dns.provider", "acme.dns.env", "acme.dns.envFile", "acme.dns.resolvers", "acme.dns.checkAuthoritative",
			"acme.dns.propagationTimeout", "acme.dns.pollingInterval", "acme.dns.sequenceInterval", "acme.dns.forAll": // their zero values are valid
			continue
		}
		want = append(want, k)
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("keys with problems (-want +got):\n%s", diff)
	}
}

func TestEnvVar(t *testing.T) {
	want := map[string]string{
		"node":                        "WCP_NODE",
		"database.url":                "WCP_DATABASE_URL",
		"database.maxConns":           "WCP_DATABASE_MAX_CONNS",
		"database.connectTimeout":     "WCP_DATABASE_CONNECT_TIMEOUT",
		"paths.binDir":                "WCP_PATHS_BIN_DIR",
		"paths.configDir":             "WCP_PATHS_CONFIG_DIR",
		"paths.stateDir":              "WCP_PATHS_STATE_DIR",
		"paths.runDir":                "WCP_PATHS_RUN_DIR",
		"paths.wwwRoot":               "WCP_PATHS_WWW_ROOT",
		"api.socket":                  "WCP_API_SOCKET",
		"api.socketMode":              "WCP_API_SOCKET_MODE",
		"api.shutdownTimeout":         "WCP_API_SHUTDOWN_TIMEOUT",
		"api.listen":                  "WCP_API_LISTEN",
		"api.tlsCert":                 "WCP_API_TLS_CERT",
		"api.tlsKey":                  "WCP_API_TLS_KEY",
		"log.level":                   "WCP_LOG_LEVEL",
		"log.format":                  "WCP_LOG_FORMAT",
		"controllers.workers":         "WCP_CONTROLLERS_WORKERS",
		"controllers.resyncInterval":  "WCP_CONTROLLERS_RESYNC_INTERVAL",
		"controllers.shutdownTimeout": "WCP_CONTROLLERS_SHUTDOWN_TIMEOUT",
		"controllers.backoffBase":     "WCP_CONTROLLERS_BACKOFF_BASE",
		"controllers.backoffMax":      "WCP_CONTROLLERS_BACKOFF_MAX",
		"controllers.rateLimit":       "WCP_CONTROLLERS_RATE_LIMIT",
		"controllers.rateBurst":       "WCP_CONTROLLERS_RATE_BURST",
		"web.nginx":                   "WCP_WEB_NGINX",
		"web.nginxConfig":             "WCP_WEB_NGINX_CONFIG",
		"web.nginxDir":                "WCP_WEB_NGINX_DIR",
		"web.phpBinDir":               "WCP_WEB_PHP_BIN_DIR",
		"web.webUser":                 "WCP_WEB_WEB_USER",
		"web.phpIdleStop":             "WCP_WEB_PHP_IDLE_STOP",
		"auth.adminGroup":             "WCP_AUTH_ADMIN_GROUP",
		"isolation.cgroups":           "WCP_ISOLATION_CGROUPS",
		"isolation.subtree":           "WCP_ISOLATION_SUBTREE",
		"isolation.pressureStall":     "WCP_ISOLATION_PRESSURE_STALL",
		"isolation.pressureWindow":    "WCP_ISOLATION_PRESSURE_WINDOW",
		"isolation.cpuPeriod":         "WCP_ISOLATION_CPU_PERIOD",
		"uids.min":                    "WCP_UIDS_MIN",
		"uids.max":                    "WCP_UIDS_MAX",
		"acme.directory":              "WCP_ACME_DIRECTORY",
		"acme.email":                  "WCP_ACME_EMAIL",
		"acme.caBundle":               "WCP_ACME_CA_BUNDLE",
		"acme.eabKid":                 "WCP_ACME_EAB_KID",
		"acme.eabHmacKey":             "WCP_ACME_EAB_HMAC_KEY",
		"acme.retryBase":              "WCP_ACME_RETRY_BASE",
		"acme.retryMax":               "WCP_ACME_RETRY_MAX",
		"acme.dns.provider":           "WCP_ACME_DNS_PROVIDER",
		"acme.dns.env":                "WCP_ACME_DNS_ENV",
		"acme.dns.envFile":            "WCP_ACME_DNS_ENV_FILE",
		"acme.dns.resolvers":          "WCP_ACME_DNS_RESOLVERS",
		"acme.dns.checkAuthoritative": "WCP_ACME_DNS_CHECK_AUTHORITATIVE",
		"acme.dns.propagationTimeout": "WCP_ACME_DNS_PROPAGATION_TIMEOUT",
		"acme.dns.pollingInterval":    "WCP_ACME_DNS_POLLING_INTERVAL",
		"acme.dns.sequenceInterval":   "WCP_ACME_DNS_SEQUENCE_INTERVAL",
		"acme.dns.forAll":             "WCP_ACME_DNS_FOR_ALL",
	}
	got := map[string]string{}
	seen := map[string]string{}
	for _, k := range Keys() {
		name := EnvVar(k)
		got[k] = name
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share %s", k, other, name)
		}
		seen[name] = k
		if isForeignEnv(name) {
			t.Errorf("%s maps to %s, which is allow-listed as not configuration", k, name)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EnvVar mismatch (-want +got):\n%s", diff)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres:///wcp360?host=/run/postgresql", "postgres:///wcp360?host=/run/postgresql"},
		{"postgres://wcp:s3cret@db:5432/wcp360", "postgres://wcp:xxxxx@db:5432/wcp360"},
		{"postgresql://wcp@db/wcp360", "postgresql://wcp@db/wcp360"},
		{"postgres://db/wcp360?user=wcp&password=s3cret", "postgres://db/wcp360?password=xxxxx&user=wcp"},
		{"postgres://db/x?sslpassword=s3cret&sslmode=require", "postgres://db/x?sslmode=require&sslpassword=xxxxx"},
		{"host=db password=s3cret", "xxxxx"},
		{"mysql://root:s3cret@db/x", "xxxxx"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestYAML compares `wcpd config print` of the full file with a golden file
// (go test -update rewrites it) and checks that printing then loading gives
// the configuration back.
func TestYAML(t *testing.T) {
	c := fullConfig()
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret") || strings.Contains(string(out), c.ACME.EABHMACKey) ||
		strings.Contains(string(out), c.ACME.DNS.Env["RFC2136_TSIG_SECRET"]) || strings.Contains(string(out), "10.0.0.53:53\n") {
		t.Errorf("YAML() shows the password or the EAB key:\n%s", out)
	}
	golden := filepath.Join("testdata", "print.golden")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(out)); diff != "" {
		t.Errorf("YAML() mismatch with %s (-want +got):\n%s", golden, diff)
	}

	back, err := Load(LoadOptions{Path: writeConfig(t, string(out)), Required: true, Environ: []string{}})
	if err != nil {
		t.Fatalf("loading the printed config: %v", err)
	}
	c.Database.URL = "postgres://wcp:xxxxx@db.example.com:5432/wcp360?sslmode=verify-full"
	c.ACME.EABHMACKey = redacted
	for k := range c.ACME.DNS.Env {
		c.ACME.DNS.Env[k] = redacted
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("print/load round trip (-want +got):\n%s", diff)
	}
}

func TestYAMLRoundTripOddValues(t *testing.T) {
	c := testDefault()
	c.Node = "1234"           // looks like an integer
	c.Paths.WWWRoot = "/true" // fine as is, but the value "true" would not be
	c.Log.Level = "debug"
	c.API.SocketMode = 0
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(LoadOptions{Path: writeConfig(t, string(out)), Required: true, Environ: []string{}})
	if err != nil {
		t.Fatalf("loading the printed config: %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestReloadChanges(t *testing.T) {
	tests := []struct {
		name        string
		change      func(c *Config)
		wantApplied []string
		wantRefused []string
	}{
		{name: "nothing changed", change: func(*Config) {}},
		{
			name: "log level, resync and rate limit apply live; format and backoff need a restart",
			change: func(c *Config) {
				c.Log.Level = "debug"
				c.Log.Format = "json"
				c.Controllers.ResyncInterval = time.Minute
				c.Controllers.RateLimit = 5
				c.Controllers.BackoffMax = time.Minute
			},
			wantApplied: []string{"log.level", "controllers.resyncInterval", "controllers.rateLimit"},
			wantRefused: []string{"log.format", "controllers.backoffMax"},
		},
		{
			name: "identity, storage and socket need a restart",
			change: func(c *Config) {
				c.Node = "other"
				c.Database.URL = "postgres:///other"
				c.Paths.StateDir = "/data"
				c.API.Socket = "/run/other.sock"
				c.API.SocketMode = 0o660
				c.Controllers.Workers = 8
				c.UIDs.Min = 30000
			},
			wantRefused: []string{"node", "database.url", "paths.stateDir", "api.socket", "api.socketMode", "controllers.workers", "uids.min"},
		},
		{
			name: "mixed: applied keys still apply",
			change: func(c *Config) {
				c.Log.Level = "warn"
				c.Database.MaxConns = 50
			},
			wantApplied: []string{"log.level"},
			wantRefused: []string{"database.maxConns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := testDefault()
			next := testDefault()
			tt.change(&next)
			applied, refused := old.ReloadChanges(next)
			if diff := cmp.Diff(tt.wantApplied, applied); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRefused, refused); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}

			// The running config takes exactly the applied keys.
			running := old.WithReloadable(next)
			if err := running.Validate(); err != nil {
				t.Errorf("WithReloadable result is invalid: %v", err)
			}
			gotApplied, gotRefused := old.ReloadChanges(running)
			if diff := cmp.Diff(tt.wantApplied, gotApplied); diff != "" {
				t.Errorf("WithReloadable took (-want +got):\n%s", diff)
			}
			if len(gotRefused) != 0 {
				t.Errorf("WithReloadable took refused keys %v", gotRefused)
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	tests := map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo,
	}
	for level, want := range tests {
		c := Config{Log: Log{Level: level}}
		if got := c.LogLevel(); got != want {
			t.Errorf("LogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}
