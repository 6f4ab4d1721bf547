package v1alpha1

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name length limits.
const (
	MaxDNSLabel      = 63
	MaxDNSSubdomain  = 253
	MaxTenantName    = 32 // it becomes a Linux user and group name
	MaxHostnameBytes = 253
)

// Detail texts shared by the checks and their tests.
const (
	dnsLabelDetail = "must be a DNS label: 1 to 63 lowercase letters, digits or '-', " +
		"starting and ending with a letter or digit"
	hostnameDetail = "must be a valid hostname: lowercase letters, digits, '-' and '.', " +
		"at least two labels of at most 63 characters"
)

// reservedNames are Linux users and groups of Debian and Ubuntu hosts (and of
// the software WCP360 runs) that a tenant must never become.
var reservedNames = map[string]bool{
	"root": true, "daemon": true, "bin": true, "sys": true, "sync": true, "games": true,
	"man": true, "lp": true, "mail": true, "news": true, "uucp": true, "proxy": true,
	"www-data": true, "backup": true, "list": true, "irc": true, "gnats": true,
	"nobody": true, "nogroup": true, "messagebus": true, "sshd": true, "postgres": true,
	"mysql": true, "mariadb": true, "nginx": true, "admin": true, "wcp": true,
	"wcp360": true, "wcpd": true, "adm": true, "tty": true, "disk": true, "kmem": true,
	"dialout": true, "fax": true, "voice": true, "cdrom": true, "floppy": true,
	"tape": true, "sudo": true, "audio": true, "dip": true, "operator": true,
	"src": true, "shadow": true, "utmp": true, "video": true, "sasl": true,
	"plugdev": true, "staff": true, "users": true, "input": true, "kvm": true,
	"render": true, "crontab": true, "netdev": true, "ssl-cert": true, "polkitd": true,
	"tcpdump": true, "tss": true, "uuidd": true, "dnsmasq": true, "avahi": true,
	"syslog": true, "ntp": true, "chrony": true, "postfix": true, "postdrop": true,
	"dovecot": true, "dovenull": true, "exim": true, "bind": true, "named": true,
	"redis": true, "memcache": true, "ftp": true, "git": true, "docker": true,
	"lxd": true, "ubuntu": true, "debian": true, "wheel": true, "halt": true,
	"shutdown": true, "landscape": true, "pollinate": true, "fwupd-refresh": true,
	"usbmux": true, "rtkit": true, "geoclue": true, "lightdm": true, "saned": true,
	"pulse": true, "colord": true, "administrator": true, "php-fpm": true, "www": true,
	"apache": true, "apache2": true, "httpd": true, "opendkim": true, "clamav": true,
	"amavis": true, "spamd": true, "vmail": true, "certbot": true,
}

// IsReservedName reports whether name is (or looks like) a system user or group.
func IsReservedName(name string) bool {
	return reservedNames[name] || strings.HasPrefix(name, "systemd-") || strings.HasPrefix(name, "_")
}

// isDNSLabel reports whether s is an RFC 1123 label in lowercase.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > MaxDNSLabel {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isLowerAlnum(rune(c)) && c != '-' {
			return false
		}
	}
	return s[0] != '-' && s[len(s)-1] != '-'
}

// isDNSSubdomain reports whether s is dot-separated DNS labels, at most 253 bytes.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > MaxDNSSubdomain {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// checkTenantName returns why name cannot be a tenant name, or "".
func checkTenantName(name string) string {
	switch {
	case !isDNSLabel(name):
		return dnsLabelDetail
	case len(name) > MaxTenantName:
		return "must be at most 32 characters: it becomes a Linux user name"
	case name[0] < 'a' || name[0] > 'z':
		return "must start with a letter: it becomes a Linux user name"
	case IsReservedName(name):
		return "is reserved for a system user or group"
	}
	return ""
}

// checkHostname returns why h cannot be a server name or alias, or "".
// A leading "*." label is accepted when wildcard is true.
func checkHostname(h string, wildcard bool) string {
	if h == "" {
		return "must not be empty"
	}
	if len(h) > MaxHostnameBytes {
		return "must be at most 253 characters"
	}
	if bad := firstUnsafeHostChar(h); bad != "" {
		return bad
	}
	rest, isWild := strings.CutPrefix(h, "*.")
	if isWild && !wildcard {
		return "a wildcard needs tls.challenge dns-01 or a tls.mode other than acme: " +
			"ACME http-01 cannot issue wildcard certificates"
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 {
		return "must have at least two labels, like example.com"
	}
	for _, l := range labels {
		if !isDNSLabel(l) {
			return hostnameDetail
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "must be a name, not an IP address (the last label is all digits)"
	}
	return ""
}

// firstUnsafeHostChar explains the first character that has no place in a
// hostname and could change the meaning of a configuration file.
func firstUnsafeHostChar(h string) string {
	for _, r := range h {
		switch {
		case r >= utf8.RuneSelf:
			return "internationalized names must be written in punycode (xn--...)"
		case r >= 'A' && r <= 'Z':
			return "must be lowercase"
		case r == '*':
			if !strings.HasPrefix(h, "*.") || strings.Count(h, "*") > 1 {
				return "a wildcard is only allowed as the whole first label (*.example.com)"
			}
		case r < 0x20 || r == 0x7f:
			return "must not contain control characters"
		case !isLowerAlnum(r) && r != '-' && r != '.':
			return "must be a valid hostname: " + quoteRune(r) + " not allowed"
		}
	}
	return ""
}

func quoteRune(r rune) string {
	if r == ' ' {
		return "spaces are"
	}
	return "'" + string(r) + "' is"
}

// hasControl reports whether s contains a control character (including NUL,
// newlines and tabs) or is not valid UTF-8.
func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	return strings.ContainsFunc(s, unicode.IsControl)
}

// isQualifiedName reports whether s is a Kubernetes-style label name part:
// up to 63 of [A-Za-z0-9._-], starting and ending alphanumeric.
func isQualifiedName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune("-_.", rune(c)) {
			return false
		}
	}
	return isAlnum(s[0]) && isAlnum(s[len(s)-1])
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkLabelKey returns why k cannot be a label or annotation key, or "".
// Keys are "name" or "prefix/name" where the prefix is a DNS subdomain.
func checkLabelKey(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && !isDNSSubdomain(prefix) {
		return "the prefix before '/' must be a lowercase DNS subdomain"
	}
	if !isQualifiedName(name) {
		return "must be [prefix/]name where name is 1 to 63 of [A-Za-z0-9._-], " +
			"starting and ending with a letter or digit"
	}
	return ""
}

// isLabelValue reports whether v is a valid label value (possibly empty).
func isLabelValue(v string) bool { return v == "" || isQualifiedName(v) }

// isLowerAlnum reports whether r is a lowercase ASCII letter or a digit.
func isLowerAlnum(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }

// isLetter reports whether r is an ASCII letter.
func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
