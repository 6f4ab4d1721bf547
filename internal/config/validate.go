package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wcp360/wcp360/internal/host/acme"
)

// Limits enforced by Validate.
const (
	maxSocketPath = 107 // sizeof(sockaddr_un.sun_path) - 1 on Linux
	minUID        = 1000
	maxUID        = 1<<32 - 2 // (uid_t)-1 means "no change" to chown
	nobodyUID     = 65534
)

// Validate checks every key against its allowed range and reports all
// problems at once as [Errors]. [Load] calls it; call it yourself on a Config
// built in code.
func (c Config) Validate() error {
	var es Errors

	if msg := checkDNSLabel(c.Node); msg != "" {
		es.add("node", ErrInvalidValue, msg)
	}

	checkDatabaseURL(&es, "database.url", c.Database.URL)
	checkIntRange(&es, "database.maxConns", c.Database.MaxConns, 1, 1000)
	checkDuration(&es, "database.connectTimeout", c.Database.ConnectTimeout, time.Second, 5*time.Minute)

	checkPath(&es, "paths.binDir", c.Paths.BinDir)
	checkPath(&es, "paths.configDir", c.Paths.ConfigDir)
	checkPath(&es, "paths.stateDir", c.Paths.StateDir)
	checkPath(&es, "paths.runDir", c.Paths.RunDir)
	checkPath(&es, "paths.wwwRoot", c.Paths.WWWRoot)

	if checkPath(&es, "api.socket", c.API.Socket) && len(c.API.Socket) > maxSocketPath {
		es.add("api.socket", ErrInvalidValue, fmt.Sprintf("unix socket path is %d bytes, the limit is %d", len(c.API.Socket), maxSocketPath))
	}
	if c.API.SocketMode > 0o777 {
		es.add("api.socketMode", ErrInvalidValue, fmt.Sprintf("must be permission bits at most 0777, got %#o", uint32(c.API.SocketMode)))
	}
	checkDuration(&es, "api.shutdownTimeout", c.API.ShutdownTimeout, time.Second, 10*time.Minute)
	if c.API.Listen != "" {
		if _, port, err := net.SplitHostPort(c.API.Listen); err != nil {
			es.add("api.listen", ErrInvalidValue, fmt.Sprintf("%q is not host:port (\"127.0.0.1:8443\", \":8443\"): %v", c.API.Listen, err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			es.add("api.listen", ErrInvalidValue, fmt.Sprintf("port %q is not 1..65535", port))
		}
	}
	switch {
	case c.API.TLSCert == "" && c.API.TLSKey == "":
	case c.API.TLSCert == "" || c.API.TLSKey == "":
		es.add("api.tlsCert", ErrInvalidValue, "api.tlsCert and api.tlsKey go together: set both, or neither for a self-signed pair")
	default:
		checkPath(&es, "api.tlsCert", c.API.TLSCert)
		checkPath(&es, "api.tlsKey", c.API.TLSKey)
	}

	checkOneOf(&es, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	checkOneOf(&es, "log.format", c.Log.Format, "text", "json")

	cc := c.Controllers
	checkIntRange(&es, "controllers.workers", cc.Workers, 1, 64)
	checkDuration(&es, "controllers.resyncInterval", cc.ResyncInterval, 10*time.Second, 24*time.Hour)
	checkDuration(&es, "controllers.shutdownTimeout", cc.ShutdownTimeout, time.Second, 10*time.Minute)
	baseOK := checkDuration(&es, "controllers.backoffBase", cc.BackoffBase, time.Millisecond, time.Minute)
	if checkDuration(&es, "controllers.backoffMax", cc.BackoffMax, time.Millisecond, 24*time.Hour) && baseOK && cc.BackoffMax < cc.BackoffBase {
		es.add("controllers.backoffMax", ErrInvalidValue, fmt.Sprintf("must be at least controllers.backoffBase (%s), got %s", cc.BackoffBase, cc.BackoffMax))
	}
	checkIntRange(&es, "controllers.rateLimit", cc.RateLimit, 1, 10000)
	checkIntRange(&es, "controllers.rateBurst", cc.RateBurst, 1, 100000)

	checkPath(&es, "web.nginx", c.Web.Nginx)
	checkPath(&es, "web.nginxConfig", c.Web.NginxConfig)
	checkPath(&es, "web.nginxDir", c.Web.NginxDir)
	checkPath(&es, "web.phpBinDir", c.Web.PHPBinDir)
	if !userNameRE.MatchString(c.Web.WebUser) {
		es.add("web.webUser", ErrInvalidValue, fmt.Sprintf("%q is not a user name", c.Web.WebUser))
	}
	if c.Auth.AdminGroup != "" && !userNameRE.MatchString(c.Auth.AdminGroup) {
		es.add("auth.adminGroup", ErrInvalidValue, fmt.Sprintf("%q is not a group name", c.Auth.AdminGroup))
	}
	if c.Web.PHPIdleStop != 0 {
		checkDuration(&es, "web.phpIdleStop", c.Web.PHPIdleStop, time.Second, 24*time.Hour)
	}
	minOK := checkIntRange(&es, "uids.min", c.UIDs.Min, minUID, maxUID)
	maxOK := checkIntRange(&es, "uids.max", c.UIDs.Max, minUID, maxUID)
	switch {
	case !minOK || !maxOK:
	case c.UIDs.Min > c.UIDs.Max:
		es.add("uids.min", ErrInvalidValue, fmt.Sprintf("must not be greater than uids.max (%d), got %d", c.UIDs.Max, c.UIDs.Min))
	case c.UIDs.Min <= nobodyUID && nobodyUID <= c.UIDs.Max:
		es.add("uids.max", ErrInvalidValue, fmt.Sprintf("range %d..%d contains %d (nobody)", c.UIDs.Min, c.UIDs.Max, nobodyUID))
	}
	checkIsolation(&es, c.Isolation)
	checkACME(&es, c.ACME)

	return es.asError()
}

// checkDNSLabel returns why s is not a lower-case RFC 1123 label, or "".
func checkDNSLabel(s string) string {
	if s == "" {
		return "must be a DNS label, got an empty string (it defaults to the host name, which was unusable)"
	}
	if len(s) > 63 {
		return fmt.Sprintf("must be a DNS label of at most 63 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '-' {
			return fmt.Sprintf("must be a DNS label (a-z, 0-9, '-'), got %s", quote(s))
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Sprintf("must be a DNS label that neither starts nor ends with '-', got %s", quote(s))
	}
	return ""
}

func checkDatabaseURL(es *Errors, key, s string) {
	u, err := url.Parse(s)
	if err != nil || !utf8.ValidString(s) || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Never echo the value: it may hold a password.
		es.add(key, ErrInvalidValue, "must be a postgres:// or postgresql:// URL")
	}
}

func checkIntRange(es *Errors, key string, v, lo, hi int) bool {
	if v < lo || v > hi {
		es.add(key, ErrInvalidValue, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v))
		return false
	}
	return true
}

func checkDuration(es *Errors, key string, d, lo, hi time.Duration) bool {
	if d < lo || d > hi {
		es.add(key, ErrInvalidValue, fmt.Sprintf("must be between %s and %s, got %s", formatDuration(lo), formatDuration(hi), formatDuration(d)))
		return false
	}
	return true
}

func checkPath(es *Errors, key, p string) bool {
	switch {
	case p == "":
		es.add(key, ErrInvalidValue, "must be an absolute path, got an empty string")
	case !utf8.ValidString(p):
		es.add(key, ErrInvalidValue, "must be valid UTF-8")
	case strings.ContainsFunc(p, unicode.IsControl):
		es.add(key, ErrInvalidValue, fmt.Sprintf("must not contain control characters, got %s", quote(p)))
	case !filepath.IsAbs(p):
		es.add(key, ErrInvalidValue, fmt.Sprintf("must be an absolute path, got %s", quote(p)))
	case filepath.Clean(p) != p:
		es.add(key, ErrInvalidValue, fmt.Sprintf("must be a clean path: write %s, not %s", quote(filepath.Clean(p)), quote(p)))
	default:
		return true
	}
	return false
}

func checkOneOf(es *Errors, key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	es.add(key, ErrInvalidValue, fmt.Sprintf("must be one of %s, got %s", strings.Join(allowed, ", "), quote(v)))
}

// quote quotes s for a message, cutting it short if it is long.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// formatDuration is time.Duration.String without the trailing zero units:
// 10m instead of 10m0s, 1h instead of 1h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// userNameRE is a POSIX-portable user name as Debian's adduser accepts it.
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// checkACME checks the acme section. The HMAC key is never echoed.
func checkACME(es *Errors, a ACME) {
	if a.Directory != "" {
		if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
			es.add("acme.directory", ErrInvalidValue, fmt.Sprintf("%s is not an https URL (or \"\" to turn ACME off)", quote(a.Directory)))
		}
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t\r\n,;<>")) {
		es.add("acme.email", ErrInvalidValue, fmt.Sprintf("%s is not an email address", quote(a.Email)))
	}
	if a.CABundle != "" {
		checkPath(es, "acme.caBundle", a.CABundle)
	}
	switch {
	case (a.EABKid == "") != (a.EABHMACKey == ""):
		es.add("acme.eabKid", ErrInvalidValue, "acme.eabKid and acme.eabHmacKey go together: set both, or neither")
	case a.EABHMACKey != "" && !base64URLRE.MatchString(a.EABHMACKey):
		es.add("acme.eabHmacKey", ErrInvalidValue, "is not base64url (A-Z, a-z, 0-9, '-', '_')")
	}
	baseOK := checkDuration(es, "acme.retryBase", a.RetryBase, time.Second, time.Hour)
	if checkDuration(es, "acme.retryMax", a.RetryMax, time.Second, 24*time.Hour) && baseOK && a.RetryMax < a.RetryBase {
		es.add("acme.retryMax", ErrInvalidValue, fmt.Sprintf("must be at least acme.retryBase (%s), got %s", a.RetryBase, a.RetryMax))
	}
	checkACMEDNS(es, a.DNS)
}

// checkACMEDNS checks the acme.dns section. Values of acme.dns.env are
// never echoed: names only.
func checkACMEDNS(es *Errors, d ACMEDNS) {
	if d.Provider == "" {
		for _, k := range []struct {
			key string
			set bool
		}{{"acme.dns.env", len(d.Env) > 0}, {"acme.dns.envFile", d.EnvFile != ""}, {"acme.dns.forAll", d.ForAll}} {
			if k.set {
				es.add(k.key, ErrInvalidValue, "is only used with acme.dns.provider, which is empty (DNS-01 off)")
			}
		}
	} else if !slices.Contains(acme.DNSProviders(), d.Provider) {
		es.add("acme.dns.provider", ErrInvalidValue, fmt.Sprintf("%s is not a DNS provider WCP360 configures: one of %s%s",
			quote(d.Provider), strings.Join(acme.DNSProviders(), ", "), suggest(d.Provider, acme.DNSProviders())))
	}
	var bad []string
	keys := slices.Sorted(maps.Keys(d.Env))
	for _, k := range keys {
		if !acme.ValidEnvKey(k) {
			bad = append(bad, quote(k))
		}
	}
	switch {
	case len(bad) > 0:
		es.add("acme.dns.env", ErrInvalidValue, fmt.Sprintf("%s: not a setting's name (A-Z, a-z, 0-9, '_', like an environment variable's)", strings.Join(bad, ", ")))
	case d.Provider != "" && slices.Contains(acme.DNSProviders(), d.Provider):
		if err := acme.CheckDNSSettings(d.Provider, keys); err != nil {
			es.add("acme.dns.env", ErrInvalidValue, err.Error())
		}
	}
	if d.EnvFile != "" {
		checkPath(es, "acme.dns.envFile", d.EnvFile)
	}
	for _, r := range d.Resolvers {
		host, port, err := net.SplitHostPort(r)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			es.add("acme.dns.resolvers", ErrInvalidValue, fmt.Sprintf("%s is not host:port (\"10.0.0.53:53\", \"[2001:db8::53]:53\")", quote(r)))
			break
		}
	}
	for _, t := range []struct {
		key    string
		d      time.Duration
		lo, hi time.Duration
	}{
		{"acme.dns.propagationTimeout", d.PropagationTimeout, time.Second, time.Hour},
		{"acme.dns.pollingInterval", d.PollingInterval, 10 * time.Millisecond, 5 * time.Minute},
		{"acme.dns.sequenceInterval", d.SequenceInterval, time.Millisecond, time.Hour},
	} {
		if t.d != 0 {
			checkDuration(es, t.key, t.d, t.lo, t.hi)
		}
	}
}

var base64URLRE = regexp.MustCompile(`^[A-Za-z0-9_-]+=*$`)

func checkIsolation(es *Errors, i Isolation) {
	checkOneOf(es, "isolation.cgroups", i.Cgroups, CgroupsAuto, CgroupsSystemd, CgroupsV2, CgroupsV1, CgroupsNone)
	if !cgroupNameRE.MatchString(i.Subtree) {
		es.add("isolation.subtree", ErrInvalidValue, fmt.Sprintf("%q: want a cgroup name of lower-case letters, digits and '-', starting with a letter", i.Subtree))
	}
	// The kernel's bounds on a PSI trigger (kernel/sched/psi.c).
	stallOK := checkDuration(es, "isolation.pressureStall", i.PressureStall, time.Millisecond, 10*time.Second)
	if checkDuration(es, "isolation.pressureWindow", i.PressureWindow, 500*time.Millisecond, 10*time.Second) && stallOK &&
		i.PressureStall > i.PressureWindow {
		es.add("isolation.pressureStall", ErrInvalidValue, fmt.Sprintf("must not be more than isolation.pressureWindow (%s), got %s", i.PressureWindow, i.PressureStall))
	}
	// The kernel's bounds on a CFS period (cpu.max, cpu.cfs_period_us),
	// which it keeps in microseconds.
	if checkDuration(es, "isolation.cpuPeriod", i.CPUPeriod, time.Millisecond, time.Second) && i.CPUPeriod%time.Microsecond != 0 {
		es.add("isolation.cpuPeriod", ErrInvalidValue, fmt.Sprintf("must be whole microseconds, got %s", formatDuration(i.CPUPeriod)))
	}
}

var cgroupNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
