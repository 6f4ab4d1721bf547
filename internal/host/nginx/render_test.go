package nginx

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goldenCustomDir stands in, in golden files, for the test's CustomDir.
const goldenCustomDir = "/etc/wcp360/nginx/custom"

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got, -update rewrites it):\n%s", name, diff)
	}
}

// renderManager renders with a CustomDir of its own.
func renderManager(t *testing.T) (*Manager, string) {
	custom := filepath.Join(t.TempDir(), "custom")
	if err := os.Mkdir(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	return newManager(t, Options{CustomDir: custom}), custom
}

func site(domain string) Site {
	return Site{Domain: domain, Tenant: "acme", ServerNames: []string{domain},
		DocumentRoot: "/srv/www/acme/domains/" + domain + "/public", LogDir: "/srv/www/acme/logs"}
}

func TestRenderGolden(t *testing.T) {
	php := "/run/wcp360/php/acme.sock"
	trusted := &TLS{CertFile: "/var/lib/wcp360/tls/acme.test/fullchain.pem", KeyFile: "/var/lib/wcp360/tls/acme.test/key.pem", Trusted: true}
	selfSigned := &TLS{CertFile: trusted.CertFile, KeyFile: trusted.KeyFile}
	nginx126 := Caps{Version: "1.26.3", SSL: true, HTTP2: true, HTTP2Directive: true, HTTP3: true, IPv6: true}
	with := func(s Site, f func(*Site)) Site { f(&s); return s }
	cases := []struct {
		name   string
		site   Site
		caps   Caps
		custom bool // a safe admin include directory exists
	}{
		{"http-static", site("static.test"), testCaps, false},
		{"http-php", with(site("acme.test"), func(s *Site) { s.PHPSocket = php }), testCaps, false},
		{"http-php-ipv4-only", with(site("acme.test"), func(s *Site) { s.PHPSocket = php }),
			Caps{Version: "1.22.1", SSL: true, HTTP2: true}, false},
		{"tls-trusted", with(site("acme.test"), func(s *Site) { s.PHPSocket = php; s.TLS = trusted }), testCaps, false},
		{"tls-selfsigned", with(site("acme.test"), func(s *Site) { s.PHPSocket = php; s.TLS = selfSigned }), testCaps, false},
		{"aliases-www-to-apex", with(site("acme.test"), func(s *Site) {
			s.ServerNames = []string{"acme.test", "acme.org", "www.acme.test", "*.cdn.acme.test"}
			s.WWWRedirect = WWWToApex
			s.PHPSocket = php
		}), testCaps, false},
		{"aliases-www-to-www-trusted", with(site("acme.test"), func(s *Site) {
			s.ServerNames = []string{"acme.test", "acme.org"}
			s.WWWRedirect = WWWToWWW
			s.TLS = trusted
		}), testCaps, false},
		{"redirects", with(site("acme.test"), func(s *Site) {
			s.Redirects = []Redirect{
				{From: "/", To: "/home.html", Code: 302},
				{From: "/old", To: "/new"},
				{From: "/blog/", To: "https://blog.acme.test/", Code: 308},
				{From: "/a(b)", To: "https://x.test/?q=1&r=2#top", Code: 302},
			}
		}), testCaps, false},
		{"http3-supported", with(site("acme.test"), func(s *Site) { s.PHPSocket = php; s.TLS = trusted; s.HTTP3 = true }), nginx126, false},
		{"http3-unsupported", with(site("acme.test"), func(s *Site) { s.PHPSocket = php; s.TLS = trusted; s.HTTP3 = true }), testCaps, false},
		{"custom-include", with(site("acme.test"), func(s *Site) { s.PHPSocket = php }), testCaps, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, custom := renderManager(t)
			if c.custom {
				if err := os.Mkdir(filepath.Join(custom, c.site.Domain), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := m.Render(c.site, c.caps)
			if err != nil {
				t.Fatal(err)
			}
			got = bytes.ReplaceAll(got, []byte(custom), []byte(goldenCustomDir))
			checkGolden(t, c.name+".conf", got)
			if _, err := parseConf(got); err != nil {
				t.Errorf("the rendered file does not parse: %v", err)
			}
		})
	}
	t.Run("unsupported", func(t *testing.T) {
		s := with(site("acme.test"), func(s *Site) { s.HTTP3 = true; s.TLS = trusted })
		if got := testCaps.Unsupported(s); len(got) != 1 || !strings.Contains(got[0], "HTTP/3") {
			t.Errorf("Unsupported = %q, want one HTTP/3 message", got)
		}
		if got := nginx126.Unsupported(s); len(got) != 0 {
			t.Errorf("Unsupported on nginx 1.26 with HTTP/3 = %q, want none", got)
		}
	})
}

func TestRenderBase(t *testing.T) {
	m := newManager(t, Options{})
	h, err := m.renderHTTP(true)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "wcp360.conf", h)
	for name, caps := range map[string]Caps{
		"default.conf":        testCaps,
		"default-http3.conf":  {Version: "1.26.3", SSL: true, HTTP2: true, HTTP2Directive: true, HTTP3: true, IPv6: true},
		"default-no-ssl.conf": {Version: "1.22.1"},
		"default-ipv4.conf":   {Version: "1.22.1", SSL: true, HTTP2: true},
	} {
		d, err := m.renderDefault(caps)
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, name, d)
	}
}

func TestRenderRefusesInjection(t *testing.T) {
	m, _ := renderManager(t)
	bad := []struct {
		name string
		f    func(*Site)
	}{
		{"domain with semicolon", func(s *Site) { s.Domain = "a.test;" }},
		{"domain uppercase", func(s *Site) { s.Domain = "A.test" }},
		{"server name with brace", func(s *Site) { s.ServerNames = []string{"a.test", "b.test{"} }},
		{"server name with space", func(s *Site) { s.ServerNames = []string{"a.test b.test"} }},
		{"server name regex", func(s *Site) { s.ServerNames = []string{"~^(.*)$"} }},
		{"server name variable", func(s *Site) { s.ServerNames = []string{"$host"} }},
		{"server name twice", func(s *Site) { s.ServerNames = []string{"a.test", "a.test"} }},
		{"no server names", func(s *Site) { s.ServerNames = nil }},
		{"wildcard in the middle", func(s *Site) { s.ServerNames = []string{"a.*.test"} }},
		{"root with quote", func(s *Site) { s.DocumentRoot = `/srv/www/a"; include /etc/shadow; #` }},
		{"root relative", func(s *Site) { s.DocumentRoot = "srv/www/a" }},
		{"root unclean", func(s *Site) { s.DocumentRoot = "/srv/www/a/../b" }},
		{"root with variable", func(s *Site) { s.DocumentRoot = "/srv/www/$host" }},
		{"log dir with newline", func(s *Site) { s.LogDir = "/srv/www/a\nb" }},
		{"php socket with space", func(s *Site) { s.PHPSocket = "/run/php/a b.sock" }},
		{"cert with semicolon", func(s *Site) { s.TLS = &TLS{CertFile: "/a;b", KeyFile: "/k"} }},
		{"redirect to with variable", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: "/$request_uri"}} }},
		{"redirect to with quote", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: `/b"; return 200 "x`}} }},
		{"redirect to scheme-relative", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: "//evil.test/"}} }},
		{"redirect to javascript", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: "javascript:alert(1)"}} }},
		{"redirect from brace", func(s *Site) { s.Redirects = []Redirect{{From: "/a{", To: "/b"}} }},
		{"redirect from relative", func(s *Site) { s.Redirects = []Redirect{{From: "a", To: "/b"}} }},
		{"redirect code", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: "/b", Code: 200}} }},
		{"redirect of ACME challenges", func(s *Site) {
			s.Redirects = []Redirect{{From: "/.well-known/acme-challenge/", To: "https://elsewhere.test/"}}
		}},
		{"redirect twice", func(s *Site) { s.Redirects = []Redirect{{From: "/a", To: "/b"}, {From: "/a", To: "/c"}} }},
		{"www mode", func(s *Site) { s.WWWRedirect = "sometimes" }},
		{"tenant", func(s *Site) { s.Tenant = "a;b" }},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			s := site("a.test")
			c.f(&s)
			_, err := m.Render(s, testCaps)
			if !errors.Is(err, ErrInvalidSite) {
				t.Fatalf("Render = %v, want ErrInvalidSite", err)
			}
		})
	}
}

func TestWWWNames(t *testing.T) {
	cases := []struct {
		names            []string
		mode             string
		served, redirect []string
	}{
		{[]string{"a.test", "b.test"}, WWWNone, []string{"a.test", "b.test"}, nil},
		{[]string{"a.test", "www.a.test", "*.a.test"}, WWWToApex, []string{"a.test", "*.a.test"}, []string{"www.a.test"}},
		{[]string{"a.test", "www.b.test"}, WWWToApex, []string{"a.test", "www.b.test"}, []string{"www.a.test"}},
		{[]string{"a.test", "www.a.test", "b.test"}, WWWToWWW, []string{"www.a.test", "www.b.test"}, []string{"a.test", "b.test"}},
	}
	for _, c := range cases {
		served, redirect := wwwNames(c.names, c.mode)
		if diff := cmp.Diff(c.served, served); diff != "" {
			t.Errorf("%v %s: served (-want +got):\n%s", c.names, c.mode, diff)
		}
		if diff := cmp.Diff(c.redirect, redirect); diff != "" {
			t.Errorf("%v %s: redirected (-want +got):\n%s", c.names, c.mode, diff)
		}
	}
}

func TestParseCaps(t *testing.T) {
	out := `nginx version: nginx/1.22.1
built with OpenSSL 3.0.11 19 Sep 2023
TLS SNI support enabled
configure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --pid-path=/run/nginx.pid --with-http_ssl_module --with-http_v2_module --with-threads`
	c, err := ParseCaps(out, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Caps{Version: "1.22.1", SSL: true, HTTP2: true, IPv6: true, PidPath: "/run/nginx.pid", ConfPath: "/etc/nginx/nginx.conf"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseCaps (-want +got):\n%s", diff)
	}
	c, err = ParseCaps("nginx version: nginx/1.26.3\nconfigure arguments: --with-http_v3_module --with-http_v2_module", false)
	if err != nil || !c.HTTP3 || !c.HTTP2Directive {
		t.Errorf("nginx 1.26 with v3: %+v, %v", c, err)
	}
	if _, err := ParseCaps("garbage", false); err == nil {
		t.Error("ParseCaps(garbage) succeeded")
	}
}

func TestWithInclude(t *testing.T) {
	const inc = "/etc/nginx/wcp360/wcp360.conf"
	cases := map[string]string{
		"debian": `user www-data;
pid /run/nginx.pid;
events {
	worker_connections 768;
}

http {
	# a comment with a } brace and "quotes
	include /etc/nginx/sites-enabled/*;
	log_format x '$remote_addr "{" }';
}
`,
		"brace on the last line": "events {}\nhttp { sendfile on; }",
		"no trailing newline":    "events {}\nhttp {\n  sendfile on;\n}",
	}
	for name, conf := range cases {
		t.Run(name, func(t *testing.T) {
			out, changed, err := withInclude([]byte(conf), inc)
			if err != nil || !changed {
				t.Fatalf("withInclude = %v, %v", changed, err)
			}
			mc, err := readMainConf(out, inc)
			if err != nil || !mc.hasInclude {
				t.Fatalf("after withInclude: hasInclude %v, %v:\n%s", mc.hasInclude, err, out)
			}
			// Only our line was added: without it, the original is back.
			found := false
			for _, ins := range []string{includeLine(inc), "\n" + includeLine(inc)} {
				if i := strings.Index(string(out), ins); i >= 0 && string(out[:i])+string(out[i+len(ins):]) == conf {
					found = true
				}
			}
			if !found {
				t.Errorf("more than our line changed:\n%s", out)
			}
			again, changed, err := withInclude(out, inc)
			if err != nil || changed || !bytes.Equal(again, out) {
				t.Errorf("second withInclude changed it (%v, %v)", changed, err)
			}
		})
	}
	for name, conf := range map[string]string{
		"no http block": "events {}\n",
		"unbalanced":    "http {\n",
		"stray brace":   "}\n",
		"open quote":    "http { a \"b; }",
	} {
		if _, _, err := withInclude([]byte(conf), inc); err == nil {
			t.Errorf("%s: withInclude succeeded", name)
		}
	}
}

func TestNginxMessage(t *testing.T) {
	out := "nginx: [emerg] unknown directive \"bogus\" in /etc/wcp360/nginx/custom/b.test/x.conf:1\nnginx: configuration file /etc/nginx/nginx.conf test failed\n"
	msg := nginxMessage(out)
	if msg != `[emerg] unknown directive "bogus" in /etc/wcp360/nginx/custom/b.test/x.conf:1` {
		t.Errorf("nginxMessage = %q", msg)
	}
	for _, c := range []struct {
		path string
		want bool
	}{
		{"/etc/wcp360/nginx/custom/b.test/", true},
		{"/etc/wcp360/nginx/custom/ab.test/", false},
		{"/etc/wcp360/nginx/custom/b.tes/", false},
		{"/etc/wcp360/nginx/custom/b.test/x.conf", true},
		{"/etc/wcp360/nginx/custom/b.test/x.co", false},
	} {
		if got := mentions(msg, c.path); got != c.want {
			t.Errorf("mentions(%q) = %v, want %v", c.path, got, c.want)
		}
	}
	if !mentions(`[emerg] cannot load certificate "/tls/a.pem": BIO_new_file() failed`, "/tls/a.pem") {
		t.Error("a quoted certificate path is not found")
	}
	if !hostWide(`[emerg] open() "/srv/www/a/logs/a.test.error.log" failed (24: Too many open files)`) ||
		hostWide(`[emerg] open() "/srv/www/a/logs/a.test.error.log" failed (13: Permission denied)`) {
		t.Error("hostWide: EMFILE is the host's problem, EACCES the site's")
	}
}

func TestLineDiffs(t *testing.T) {
	want := []byte("a\nb\nc\nd\n")
	have := []byte("a\nB\nc\nx\nd\n")
	got := lineDiffs("vhost a.test", want, have)
	wantDiffs := []string{
		"vhost a.test line 2: want b, have B",
		"vhost a.test line 4: want (none), have x",
	}
	var gotS []string
	for _, d := range got {
		gotS = append(gotS, d.String())
	}
	if diff := cmp.Diff(wantDiffs, gotS); diff != "" {
		t.Errorf("lineDiffs (-want +got):\n%s", diff)
	}
}
