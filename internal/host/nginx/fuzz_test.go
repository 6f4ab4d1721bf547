package nginx

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzRender: whatever a Site holds, a site file is either refused or made
// of our directives only, with the values given (nothing injected).
func FuzzRender(f *testing.F) {
	f.Add("acme.test", "www.acme.test", "/srv/www/acme/public", "/old", "https://new.test/a?b=c#d", "toApex")
	f.Add("a.test", "*.a.test", "/srv/www/a b", "/x;", "/y", "")
	f.Add("a.test", "b.test;include /etc/shadow", "/srv/www/a", "/", "/$uri", "toWWW")
	f.Add("a.test", "b.test", "/srv/www/a\"", "/p{", "http://x.test/\"; return 200 \"x", "none")
	m := newManager(f, Options{CustomDir: "/nonexistent/wcp360-fuzz"})
	allowed := []string{"server", "listen", "http2", "server_name", "ssl_certificate", "ssl_certificate_key",
		"access_log", "error_log", "return", "root", "index", "add_header", "set", "location", "alias",
		"default_type", "try_files", "fastcgi_pass"}
	f.Fuzz(func(t *testing.T, domain, alias, root, from, to, www string) {
		s := Site{Domain: domain, ServerNames: []string{domain, alias}, DocumentRoot: root, LogDir: "/srv/www/a/logs",
			PHPSocket: "/run/php/a.sock", WWWRedirect: www, Redirects: []Redirect{{From: from, To: to}},
			TLS: &TLS{CertFile: "/tls/a.pem", KeyFile: "/tls/a.key", Trusted: true}}
		out, err := m.Render(s, testCaps)
		if err != nil {
			return
		}
		dirs, err := parseConf(out)
		if err != nil {
			t.Fatalf("rendered file does not parse: %v\n%s", err, out)
		}
		var walk func([]*directive)
		walk = func(ds []*directive) {
			for _, d := range ds {
				if !slices.Contains(allowed, d.name) {
					t.Fatalf("directive %q in:\n%s", d.name, out)
				}
				switch d.name {
				case "server_name":
					for _, n := range d.args {
						if n != domain && n != alias && n != "www."+domain && n != "www."+alias {
							t.Fatalf("server name %q not from the site:\n%s", n, out)
						}
					}
				case "root":
					if len(d.args) != 1 || d.args[0] != root {
						t.Fatalf("root %q, want %q", d.args, root)
					}
				case "location":
					redirect := len(d.args) == 2 && (d.args[0] == "=" || d.args[0] == "^~") && d.args[1] == from
					if redirect && (len(d.children) != 1 || d.children[0].name != "return" ||
						len(d.children[0].args) != 2 || d.children[0].args[1] != to) {
						t.Fatalf("redirect location %q does not return %q:\n%s", from, to, out)
					}
				}
				walk(d.children)
			}
		}
		walk(dirs)
	})
}

// FuzzWithInclude: on any nginx.conf it accepts, withInclude adds exactly
// our line and nothing else, once.
func FuzzWithInclude(f *testing.F) {
	f.Add("user www-data;\nhttp {\n\tinclude /etc/nginx/sites-enabled/*;\n}\n")
	f.Add("http { sendfile on; }")
	f.Add("events{}http{log_format a '}{;#';}#}\n")
	f.Add("http {\n include /etc/nginx/wcp360/wcp360.conf;\n}")
	const inc = "/etc/nginx/wcp360/wcp360.conf"
	f.Fuzz(func(t *testing.T, conf string) {
		out, changed, err := withInclude([]byte(conf), inc)
		if err != nil {
			return
		}
		if !changed {
			if !bytes.Equal(out, []byte(conf)) {
				t.Fatal("unchanged but different")
			}
			return
		}
		mc, err := readMainConf(out, inc)
		if err != nil || !mc.hasInclude {
			t.Fatalf("after withInclude: %v, hasInclude %v:\n%s", err, mc.hasInclude, out)
		}
		ok := false
		for _, ins := range []string{includeLine(inc), "\n" + includeLine(inc)} {
			if i := strings.Index(string(out), ins); i >= 0 && string(out[:i])+string(out[i+len(ins):]) == conf {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("more than the include line changed:\n%q\n%q", conf, out)
		}
		if again, changed, err := withInclude(out, inc); err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v %v", changed, err)
		}
	})
}
