package nginx

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"text/template"

	"github.com/wcp360/wcp360/templates"
)

// unreachable is a path component longer than NAME_MAX (255): no file can
// be found below it, and nginx's try_files takes ENAMETOOLONG as "not
// found" without logging it. See http.conf.tmpl.
var unreachable = "wcp360-hidden-files-are-not-served-" + strings.Repeat("x", 256-35)

// Security headers of every site.
var securityHeaders = []string{
	`X-Content-Type-Options "nosniff"`,
	`X-Frame-Options "SAMEORIGIN"`,
	`Referrer-Policy "strict-origin-when-cross-origin"`,
}

const (
	hstsHeader   = `Strict-Transport-Security "max-age=31536000"`
	altSvcHeader = `Alt-Svc 'h3=":443"; ma=86400'`
)

type templateSet struct {
	site, deflt, http *template.Template
}

func loadTemplates() (templateSet, error) {
	funcs := template.FuncMap{"join": strings.Join}
	load := func(name string) (*template.Template, error) {
		b, err := templates.FS.ReadFile("nginx/" + name)
		if err != nil {
			return nil, err
		}
		return template.New(name).Funcs(funcs).Option("missingkey=error").Parse(string(b))
	}
	var ts templateSet
	var err error
	if ts.site, err = load("site.conf.tmpl"); err != nil {
		return ts, err
	}
	if ts.deflt, err = load("default.conf.tmpl"); err != nil {
		return ts, err
	}
	ts.http, err = load("http.conf.tmpl")
	return ts, err
}

func execute(t *template.Template, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}

// siteData is what site.conf.tmpl renders.
type siteData struct {
	Domain, Tenant string
	CustomDir      string
	Servers        []serverData
}

// serverData is one server block: a site (Return empty) or a redirect.
type serverData struct {
	Listens   []string
	HTTP2On   bool
	Names     []string
	TLS       *TLS
	AccessLog string
	ErrorLog  string
	// Return makes a redirect-only server ("301 https://$host$request_uri").
	Return string
	// The site's own server:
	Root, Index string
	Headers     []string
	PHPSocket   string
	ACMEDir     string
	Redirects   []redirectData
	Custom      string // the admin include directory, when it is safe
}

type redirectData struct {
	Prefix   bool
	From, To string
	Code     int
}

// listens are the listen parameters of a server on plain HTTP, HTTPS and
// QUIC, for nginx's capabilities.
func listens(caps Caps, http, https, quic bool, extra string) (ls []string, http2On bool) {
	addrs := []string{""}
	if caps.IPv6 {
		addrs = append(addrs, "[::]:")
	}
	for _, a := range addrs {
		if http {
			ls = append(ls, strings.TrimSpace(a+"80 "+extra))
		}
		if https {
			p := a + "443 ssl"
			if caps.HTTP2 && !caps.HTTP2Directive {
				p += " http2"
			}
			ls = append(ls, strings.TrimSpace(p+" "+extra))
		}
		if quic {
			ls = append(ls, strings.TrimSpace(a+"443 quic "+extra))
		}
	}
	return ls, https && caps.HTTP2 && caps.HTTP2Directive
}

// Render returns the site file of s for an nginx with caps. What caps
// cannot do is left out (Caps.Unsupported says what). The admin include
// directory is included only when it exists and is safe (see
// Options.CustomDir); that is the one thing Render reads from the host.
func (m *Manager) Render(s Site, caps Caps) ([]byte, error) {
	data, err := m.siteData(s, caps)
	if err != nil {
		return nil, err
	}
	return execute(m.tmpl.site, data)
}

func (m *Manager) siteData(s Site, caps Caps) (siteData, error) {
	if err := s.Validate(); err != nil {
		return siteData{}, err
	}
	custom := ""
	if ok, _ := m.customDirSafe(s.Domain); ok {
		custom = m.customDir(s.Domain)
	}
	tlsOK := s.TLS != nil && caps.SSL
	trusted := tlsOK && s.TLS.Trusted
	quic := tlsOK && s.HTTP3 && caps.HTTP3
	var tls *TLS
	if tlsOK {
		t := *s.TLS
		tls = &t
	}
	main, redirected := wwwNames(s.ServerNames, s.WWWRedirect)

	base := serverData{
		// Every server has the root: nginx writes a lazily opened access
		// log only when the request's root directory exists.
		Root:      s.DocumentRoot,
		TLS:       tls,
		AccessLog: m.accessLog(s),
		ErrorLog:  m.errorLog(s),
	}
	// The site itself: on HTTP unless a trusted certificate sends HTTP to
	// HTTPS, on HTTPS with a certificate.
	site := base
	site.Listens, site.HTTP2On = listens(caps, !trusted, tlsOK, quic, "")
	site.Names = main
	site.Index = "index.html index.htm"
	if s.PHPSocket != "" {
		site.Index = "index.php index.html index.htm"
		site.PHPSocket = s.PHPSocket
	}
	site.Headers = slices.Clone(securityHeaders)
	if trusted {
		site.Headers = append(site.Headers, hstsHeader)
	}
	if quic {
		site.Headers = append(site.Headers, altSvcHeader)
	}
	site.ACMEDir = m.opts.ACMEDir
	site.Custom = custom
	for _, r := range s.Redirects {
		site.Redirects = append(site.Redirects, redirectData{
			Prefix: r.From != "/" && strings.HasSuffix(r.From, "/"), From: r.From, To: r.To, Code: r.code(),
		})
	}
	servers := []serverData{site}

	scheme := "$scheme"
	if trusted {
		scheme = "https"
	}
	if len(redirected) > 0 {
		r := base
		r.Listens, r.HTTP2On = listens(caps, !trusted, tlsOK, quic, "")
		r.Names = redirected
		if s.WWWRedirect == WWWToApex {
			r.Return = "301 " + scheme + "://$wcp360_apex$request_uri"
		} else {
			r.Return = "301 " + scheme + "://www.$host$request_uri"
		}
		servers = append(servers, r)
	}
	if trusted {
		// Plain HTTP only redirects, for every name; ACME's http-01
		// follows the redirect to the site's challenge location.
		r := base
		r.TLS = nil
		r.Listens, _ = listens(caps, true, false, false, "")
		r.Names = append(slices.Clone(main), redirected...)
		r.Return = "301 https://$host$request_uri"
		servers = append(servers, r)
	}
	return siteData{Domain: s.Domain, Tenant: s.Tenant, CustomDir: m.customDir(s.Domain), Servers: servers}, nil
}

// wwwNames splits the server names into those the site serves (primary
// first) and those that only redirect to them.
func wwwNames(names []string, mode string) (served, redirected []string) {
	isPlain := func(n string) bool { return !strings.HasPrefix(n, "*.") && !strings.HasPrefix(n, "www.") }
	has := map[string]bool{}
	add := func(list *[]string, n string) {
		if !has[n] {
			has[n] = true
			*list = append(*list, n)
		}
	}
	switch mode {
	case WWWToApex:
		for _, n := range names {
			if isPlain(n) {
				has["www."+n] = true
			}
		}
		for _, n := range names {
			if !has[n] || isPlain(n) {
				add(&served, n)
			}
		}
		for _, n := range names {
			if isPlain(n) {
				redirected = append(redirected, "www."+n)
			}
		}
	case WWWToWWW:
		for _, n := range names {
			if isPlain(n) {
				add(&served, "www."+n)
			} else {
				add(&served, n)
			}
		}
		for _, n := range names {
			if isPlain(n) {
				add(&redirected, n)
			}
		}
	default:
		served = slices.Clone(names)
	}
	return served, redirected
}

// httpData is what http.conf.tmpl renders.
type httpData struct {
	MainConf, Dir string
	HashSizes     bool
	Unreachable   string
}

// defaultData is what default.conf.tmpl renders.
type defaultData struct {
	HTTPListens, HTTPSListens []string
	HTTP2On                   bool
	CertFile, KeyFile         string
}

func (m *Manager) renderHTTP(hashSizes bool) ([]byte, error) {
	return execute(m.tmpl.http, httpData{MainConf: m.opts.MainConf, Dir: m.opts.Dir, HashSizes: hashSizes, Unreachable: unreachable})
}

func (m *Manager) renderDefault(caps Caps) ([]byte, error) {
	d := defaultData{CertFile: m.defaultCert(), KeyFile: m.defaultKey()}
	d.HTTPListens, _ = listens(caps, true, false, false, "default_server")
	if caps.SSL {
		d.HTTPSListens, d.HTTP2On = listens(caps, false, true, false, "default_server")
		if caps.HTTP3 {
			q, _ := listens(caps, false, false, true, "reuseport default_server")
			d.HTTPSListens = append(d.HTTPSListens, q...)
		}
	}
	return execute(m.tmpl.deflt, d)
}
