package v1alpha1

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Domain limits.
const (
	MaxAliases         = 100
	MaxRedirects       = 100
	MaxDocumentRoot    = 255
	MaxRedirectFrom    = 1024
	MaxRedirectTo      = 2048
	MaxCertificatePEM  = 64 * 1024
	MaxPrivateKeyPEM   = 16 * 1024
	documentRootDetail = "must be a clean relative path inside the tenant's home, " +
		"using only letters, digits and ._/- (no \"..\", no hidden directories)"
)

// Validate checks the domain's metadata and spec. Empty fields that Default
// fills in are accepted.
func (d *Domain) Validate() ErrorList {
	errs := validateTypeMeta(d.TypeMeta, KindDomain)
	errs = append(errs, validateMeta(&d.Metadata, checkDomainName)...)
	return append(errs, validateDomainSpec(NewPath("spec"), &d.Spec)...)
}

func checkDomainName(name string) string {
	if !isDNSSubdomain(name) {
		return "must be a DNS subdomain: lowercase DNS labels joined by '.', at most 253 characters"
	}
	return ""
}

func validateDomainSpec(p Path, s *DomainSpec) ErrorList {
	errs := appendErr(nil, checkTenantRef(p.Child("tenant"), s.Tenant))
	errs = append(errs, validateHostnames(p, s)...)
	errs = appendErr(errs, checkDocumentRoot(p.Child("documentRoot"), s.DocumentRoot),
		checkPHPVersion(p.Child("php").Child("version"), s.PHP.Version),
		checkEnum(p.Child("wwwRedirect"), s.WWWRedirect, WWWNone, WWWToApex, WWWFromApex))
	if s.WWWRedirect != "" && s.WWWRedirect != WWWNone && strings.HasPrefix(s.ServerName, "*.") {
		errs = append(errs, Invalid(p.Child("wwwRedirect"), s.WWWRedirect, "must be none for a wildcard serverName"))
	}
	errs = append(errs, validateRedirects(p.Child("redirects"), s.Redirects)...)
	return append(errs, validateTLS(p.Child("tls"), &s.TLS)...)
}

// checkTenantRef checks spec.tenant of a Domain or Database.
func checkTenantRef(p Path, tenant string) *FieldError {
	if tenant == "" {
		return Required(p, "the tenant this resource belongs to")
	}
	if why := checkTenantName(tenant); why != "" {
		return Invalid(p, tenant, why)
	}
	return nil
}

// wildcardAllowed: ACME http-01 cannot prove control of a wildcard.
func wildcardAllowed(t *DomainTLS) bool {
	mode := t.Mode
	if mode == "" {
		mode = TLSACME
	}
	return mode != TLSACME || t.Challenge == ChallengeDNS01
}

func validateHostnames(p Path, s *DomainSpec) ErrorList {
	var errs ErrorList
	wild := wildcardAllowed(&s.TLS)
	if s.ServerName != "" {
		if why := checkHostname(s.ServerName, wild); why != "" {
			errs = append(errs, Invalid(p.Child("serverName"), s.ServerName, why))
		}
	}
	ap := p.Child("aliases")
	if len(s.Aliases) > MaxAliases {
		errs = append(errs, TooLong(ap, nil, fmt.Sprintf("at most %d aliases", MaxAliases)))
	}
	seen := map[string]string{s.ServerName: "serverName"}
	for i, a := range s.Aliases {
		if why := checkHostname(a, wild); why != "" {
			errs = append(errs, Invalid(ap.Index(i), a, why))
			continue
		}
		if first, dup := seen[a]; dup {
			errs = append(errs, Duplicate(ap.Index(i), a, "already listed as "+first))
			continue
		}
		seen[a] = fmt.Sprintf("aliases[%d]", i)
	}
	return errs
}

func checkDocumentRoot(p Path, root string) *FieldError {
	if root == "" {
		return nil
	}
	if len(root) > MaxDocumentRoot {
		return TooLong(p, root, fmt.Sprintf("must be at most %d characters", MaxDocumentRoot))
	}
	if strings.HasPrefix(root, "/") {
		return Invalid(p, root, "must be relative to the tenant's home, not start with '/'")
	}
	for i := 0; i < len(root); i++ {
		if c := root[i]; !isAlnum(c) && !strings.ContainsRune("._/-", rune(c)) {
			return Invalid(p, root, documentRootDetail)
		}
	}
	if path.Clean(root) != root {
		return Invalid(p, root, documentRootDetail)
	}
	for _, el := range strings.Split(root, "/") {
		if strings.HasPrefix(el, ".") {
			return Invalid(p, root, documentRootDetail)
		}
	}
	return nil
}

func validateRedirects(p Path, rs []Redirect) ErrorList {
	var errs ErrorList
	if len(rs) > MaxRedirects {
		errs = append(errs, TooLong(p, nil, fmt.Sprintf("at most %d redirects", MaxRedirects)))
	}
	seen := map[string]int{}
	for i, r := range rs {
		rp := p.Index(i)
		if why := checkRedirectFrom(r.From); why != "" {
			errs = append(errs, invalidOrRequired(rp.Child("from"), r.From, why))
		} else if j, dup := seen[r.From]; dup {
			errs = append(errs, Duplicate(rp.Child("from"), r.From, fmt.Sprintf("already redirected by redirects[%d]", j)))
		} else {
			seen[r.From] = i
		}
		if why := checkRedirectTo(r.To); why != "" {
			errs = append(errs, invalidOrRequired(rp.Child("to"), r.To, why))
		}
		switch r.Code {
		case 0, 301, 302, 307, 308:
		default:
			errs = append(errs, &FieldError{Path: rp.Child("code").String(), Type: ErrorTypeNotSupported,
				Value: r.Code, Detail: "supported values: 301, 302, 307, 308"})
		}
	}
	return errs
}

func invalidOrRequired(p Path, v, why string) *FieldError {
	if v == "" {
		return Required(p, why)
	}
	return Invalid(p, v, why)
}

// unsafeURLChars could end or change an nginx directive, or split a header.
const unsafeURLChars = " \t\"'`;{}$\\<>^|"

func checkRedirectFrom(from string) string {
	const detail = "must be a path starting with '/' using only letters, digits, " +
		"percent-escapes and -._~/!*+,:@=&()"
	switch {
	case len(from) > MaxRedirectFrom:
		return fmt.Sprintf("must be at most %d characters", MaxRedirectFrom)
	case !strings.HasPrefix(from, "/"):
		return detail
	}
	for i := 0; i < len(from); i++ {
		c := from[i]
		if c == '%' {
			if i+2 >= len(from) || !isHex(from[i+1]) || !isHex(from[i+2]) {
				return "has a '%' that does not start a percent-escape"
			}
			continue
		}
		if !isAlnum(c) && !strings.ContainsRune("-._~/!*+,:@=&()", rune(c)) {
			return detail
		}
	}
	return ""
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func checkRedirectTo(to string) string {
	switch {
	case to == "":
		return "an absolute http(s) URL or a path starting with '/'"
	case len(to) > MaxRedirectTo:
		return fmt.Sprintf("must be at most %d characters", MaxRedirectTo)
	case strings.ContainsAny(to, unsafeURLChars) || hasControl(to) || !isASCII(to):
		return "must not contain spaces, quotes, control characters, non-ASCII or any of ;{}$\\<>^|"
	case strings.HasPrefix(to, "//"):
		return "must be an absolute http(s) URL or a path starting with a single '/'"
	case strings.HasPrefix(to, "/"):
		return ""
	}
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" {
		return "must be an absolute http(s) URL or a path starting with '/'"
	}
	if u.User != nil {
		return "must not carry a user name or password"
	}
	if why := checkHostname(u.Hostname(), false); why != "" && !isIPHost(u.Hostname()) {
		return "the host " + why
	}
	return ""
}

func isIPHost(h string) bool {
	return strings.Trim(h, "0123456789.") == "" && strings.Count(h, ".") == 3
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func validateTLS(p Path, t *DomainTLS) ErrorList {
	errs := appendErr(nil, checkEnum(p.Child("mode"), t.Mode, TLSACME, TLSSelfSigned, TLSNone, TLSProvided))
	if t.Mode == "" || t.Mode == TLSACME {
		errs = appendErr(errs, checkEnum(p.Child("challenge"), t.Challenge, ChallengeHTTP01, ChallengeDNS01))
	} else if t.Challenge != "" {
		errs = append(errs, Forbidden(p.Child("challenge"), "only used with tls.mode acme"))
	}
	pp := p.Child("provided")
	switch {
	case t.Mode == TLSProvided && t.Provided == nil:
		errs = append(errs, Required(pp, "tls.mode provided needs certificatePEM and privateKeyPEM"))
	case t.Mode == TLSProvided:
		errs = append(errs, validateProvided(pp, t.Provided)...)
	case t.Provided != nil:
		errs = append(errs, Forbidden(pp, "only used with tls.mode provided"))
	}
	return errs
}

func validateProvided(p Path, c *ProvidedCertificate) ErrorList {
	cp, kp := p.Child("certificatePEM"), p.Child("privateKeyPEM")
	var errs ErrorList
	switch {
	case c.CertificatePEM == "":
		errs = append(errs, Required(cp, "a PEM certificate chain, leaf first"))
	case len(c.CertificatePEM) > MaxCertificatePEM:
		errs = append(errs, TooLong(cp, nil, fmt.Sprintf("must be at most %d bytes", MaxCertificatePEM)))
	default:
		if why := checkCertificatePEM(c.CertificatePEM); why != "" {
			errs = append(errs, Invalid(cp, nil, why))
		}
	}
	switch {
	case c.PrivateKeyPEM == "":
		errs = append(errs, Required(kp, "the PEM private key of the certificate"))
	case len(c.PrivateKeyPEM) > MaxPrivateKeyPEM:
		errs = append(errs, TooLong(kp, nil, fmt.Sprintf("must be at most %d bytes", MaxPrivateKeyPEM)))
	default:
		if why := checkPrivateKeyPEM(c.PrivateKeyPEM); why != "" {
			errs = append(errs, Invalid(kp, nil, why))
		}
	}
	if len(errs) == 0 {
		if _, err := tls.X509KeyPair([]byte(c.CertificatePEM), []byte(c.PrivateKeyPEM)); err != nil {
			errs = append(errs, Invalid(kp, nil, "does not match the certificate: "+err.Error()))
		}
	}
	return errs
}

// checkCertificatePEM wants one or more CERTIFICATE blocks and nothing else.
func checkCertificatePEM(s string) string {
	rest, n := []byte(s), 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return fmt.Sprintf("block %d is a %q, want only CERTIFICATE blocks", n, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Sprintf("certificate %d does not parse: %v", n, err)
		}
	}
	if n == 0 {
		return "must hold PEM CERTIFICATE blocks"
	}
	if strings.TrimSpace(string(rest)) != "" {
		return "has text after the last PEM block"
	}
	return ""
}

// checkPrivateKeyPEM wants exactly one unencrypted private key block.
func checkPrivateKeyPEM(s string) string {
	b, rest := pem.Decode([]byte(s))
	switch {
	case b == nil:
		return "must hold one PEM PRIVATE KEY block"
	case b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "":
		return "must not be encrypted"
	case b.Type != "PRIVATE KEY" && b.Type != "RSA PRIVATE KEY" && b.Type != "EC PRIVATE KEY":
		return fmt.Sprintf("is a %q block, want PRIVATE KEY", b.Type)
	case strings.TrimSpace(string(rest)) != "":
		return "must hold exactly one PEM block"
	}
	return ""
}
