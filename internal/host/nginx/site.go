package nginx

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// WWW redirect modes of Site.WWWRedirect (the values of apis/v1alpha1).
const (
	WWWNone   = ""
	WWWToApex = "toApex"
	WWWToWWW  = "toWWW"
)

// Site is one domain as nginx serves it: everything the site file is
// rendered from. The controller builds it from the Domain's spec and its
// tenant's account; every field is validated again here, defensively, so
// that nothing can inject nginx syntax even if a caller skipped
// apis/v1alpha1's validation.
type Site struct {
	// Domain names the site file (sites/<Domain>.conf), its snapshots and
	// its custom include directory: the Domain resource's name.
	Domain string
	// Tenant owns the site; it is only written into a comment.
	Tenant string
	// ServerNames are the host names served: the primary name first, then
	// the aliases. A leading "*." label (wildcard) is accepted.
	ServerNames []string
	// WWWRedirect is WWWNone, WWWToApex (www.<name> redirects to <name>) or
	// WWWToWWW (<name> redirects to www.<name>), for every non-wildcard
	// server name that does not itself start with "www.".
	WWWRedirect string
	// Redirects send a path elsewhere.
	Redirects []Redirect
	// DocumentRoot is the absolute document root, inside the tenant's home.
	DocumentRoot string
	// LogDir is the tenant's log directory, which must exist (root-owned,
	// so that a tenant cannot swap the files nginx opens as root):
	// <LogDir>/<Domain>.access.log and <LogDir>/<Domain>.error.log.
	LogDir string
	// PHPSocket is the tenant's PHP-FPM socket ("" serves static files only).
	PHPSocket string
	// HTTP3 asks for HTTP/3 (QUIC); it is rendered only where
	// Caps.HTTP3 says the installed nginx can (see Caps.Unsupported).
	HTTP3 bool
	// TLS is the certificate; nil serves HTTP only.
	TLS *TLS
}

// TLS is the certificate a site serves.
type TLS struct {
	// CertFile (full chain) and KeyFile are absolute paths, readable by root.
	CertFile, KeyFile string
	// Trusted is a certificate browsers accept (ACME or provided): plain
	// HTTP then redirects to HTTPS and HSTS is sent. A self-signed
	// certificate is not trusted: the site answers on HTTP and HTTPS alike.
	Trusted bool
	// Fingerprint, when set, names the certificate in the site file (a
	// comment; hex digits): a new certificate at the same paths then
	// changes the file, and Apply reloads nginx to serve it.
	Fingerprint string
}

// Redirect sends requests for a path elsewhere. From ending in "/" is a
// prefix (every path under it); otherwise, and for "/" itself (the home
// page), only that exact path.
type Redirect struct {
	From string
	// To is an absolute http(s) URL or a path starting with "/".
	To string
	// Code is 301, 302, 307 or 308; 0 means 301.
	Code int
}

// acmePrefix is served from Options.ACMEDir on every site.
const acmePrefix = "/.well-known/acme-challenge/"

// ErrInvalidSite is matched by every Site validation error: the spec (or
// the controller that built the Site) must change, retrying will not help.
var ErrInvalidSite = errors.New("invalid nginx site")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSite, fmt.Sprintf(format, args...))
}

// Validate reports the first field that is not acceptable.
func (s Site) Validate() error {
	if !isDomain(s.Domain, false) {
		return invalid("domain %q is not a lowercase DNS name", s.Domain)
	}
	if s.Tenant != "" && !isToken(s.Tenant) {
		return invalid("tenant %q has characters nginx could misread", s.Tenant)
	}
	if len(s.ServerNames) == 0 {
		return invalid("domain %s: no server names", s.Domain)
	}
	seen := map[string]bool{}
	for _, n := range s.ServerNames {
		if !isDomain(n, true) {
			return invalid("server name %q is not a lowercase host name", n)
		}
		if seen[n] {
			return invalid("server name %s is listed twice", n)
		}
		seen[n] = true
	}
	switch s.WWWRedirect {
	case WWWNone, "none", WWWToApex, WWWToWWW:
	default:
		return invalid("wwwRedirect %q: want %q, %q or none", s.WWWRedirect, WWWToApex, WWWToWWW)
	}
	for what, p := range map[string]string{"document root": s.DocumentRoot, "log directory": s.LogDir} {
		if err := checkPath(what, p); err != nil {
			return err
		}
	}
	if s.PHPSocket != "" {
		if err := checkPath("PHP socket", s.PHPSocket); err != nil {
			return err
		}
	}
	if s.TLS != nil {
		if err := errors.Join(checkPath("certificate", s.TLS.CertFile), checkPath("key", s.TLS.KeyFile)); err != nil {
			return err
		}
		if strings.Trim(s.TLS.Fingerprint, "0123456789abcdef") != "" {
			return invalid("certificate fingerprint %q is not lower-case hex", s.TLS.Fingerprint)
		}
	}
	from := map[string]bool{}
	for i, r := range s.Redirects {
		if err := r.validate(); err != nil {
			return fmt.Errorf("redirects[%d]: %w", i, err)
		}
		if from[r.From] {
			return invalid("redirects[%d]: %s is redirected twice", i, r.From)
		}
		from[r.From] = true
	}
	return nil
}

func (r Redirect) validate() error {
	switch r.Code {
	case 0, 301, 302, 307, 308:
	default:
		return invalid("code %d: want 301, 302, 307 or 308", r.Code)
	}
	if !strings.HasPrefix(r.From, "/") || !isURLish(r.From) {
		return invalid("from %q: want a path starting with '/' without spaces, quotes, '$', ';', '{', '}' or '\\'", r.From)
	}
	if strings.HasPrefix(r.From, acmePrefix) || r.From == strings.TrimSuffix(acmePrefix, "/") {
		return invalid("from %q: %s is kept for ACME challenges", r.From, acmePrefix)
	}
	to := r.To
	switch {
	case strings.HasPrefix(to, "https://"), strings.HasPrefix(to, "http://"):
		rest := to[strings.Index(to, "://")+3:]
		if rest == "" || strings.HasPrefix(rest, "/") {
			return invalid("to %q: no host", to)
		}
	case strings.HasPrefix(to, "/") && !strings.HasPrefix(to, "//"):
	default:
		return invalid("to %q: want an absolute http(s) URL or a path starting with a single '/'", to)
	}
	if !isURLish(to) {
		return invalid("to %q: spaces, quotes, '$', ';', '{', '}' and '\\' are not allowed", to)
	}
	return nil
}

func (r Redirect) code() int {
	if r.Code == 0 {
		return 301
	}
	return r.Code
}

// checkPath accepts an absolute, clean path of letters, digits and ._-+@/
// only: nothing nginx would read as syntax or a variable.
func checkPath(what, p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p || len(p) > 1024 {
		return invalid("%s %q: want an absolute, clean path", what, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !isAlnum(c) && !strings.ContainsRune("._-+@/", rune(c)) {
			return invalid("%s %q: only letters, digits and ._-+@/ are allowed", what, p)
		}
	}
	return nil
}

// isDomain: lowercase LDH labels joined by dots, each 1–63 characters, at
// most 253 in all; with wildcard, the first label may be "*".
func isDomain(s string, wildcard bool) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if wildcard && i == 0 && l == "*" && len(labels) > 2 {
			continue
		}
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for j := 0; j < len(l); j++ {
			if c := l[j]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

func isToken(s string) bool {
	if len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isURLish refuses what could end or change an nginx token or a header:
// whitespace, control and non-ASCII bytes, quotes, '$' (variables), ';',
// '{', '}', '\\', '<', '>', '^', '|' and '`'. Values are written quoted,
// so '#' is no comment there.
func isURLish(s string) bool {
	if len(s) > 2048 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"'$;{}\\<>^|`", c) >= 0 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
