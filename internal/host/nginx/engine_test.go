package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/wcp360/wcp360/internal/host/selfsigned"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// The tests below run the real nginx 1.22 in a sandbox (private /etc,
// /run, /srv/www, only loopback), each with a Manager on the default paths.

func TestEnsureRunningIsIdempotent(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	before, err := os.ReadFile(DefaultMainConf)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	after, err := os.ReadFile(DefaultMainConf)
	if err != nil {
		t.Fatal(err)
	}
	line := includeLine(m.httpConf())
	if n := strings.Count(string(after), "include "+m.httpConf()+";"); n != 1 {
		t.Fatalf("nginx.conf includes wcp360.conf %d times:\n%s", n, after)
	}
	if got := strings.Replace(string(after), line, "", 1); got != string(before) {
		t.Errorf("nginx.conf changed beyond the include line:\n%s", after)
	}
	if _, err := os.Lstat(DefaultDistroDefaultSite); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the distribution's default site is still enabled: %v", err)
	}
	for _, p := range []string{m.defaultCert(), m.defaultKey()} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", p, err)
		}
	}
	st := m.Stats()
	if st.Starts != 1 || st.Tests != 1 {
		t.Errorf("first EnsureRunning: %+v, want one test and one start", st)
	}
	mtimes := modTimes(t, DefaultMainConf, m.httpConf(), m.defaultConf(), m.defaultCert(), m.defaultKey())

	// Again, and with the Manager of a restarted wcpd: nothing changes.
	if err := m.EnsureRunning(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats(); fmt.Sprint(got) != fmt.Sprint(st) {
		t.Errorf("EnsureRunning again: stats %+v, were %+v", got, st)
	}
	m2 := newManager(t, Options{})
	if err := m2.EnsureRunning(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m2.Stats(); got.Tests+got.Reloads+got.Starts != 0 {
		t.Errorf("EnsureRunning of a new Manager: %+v, want no test, reload or start", got)
	}
	if again, _ := os.ReadFile(DefaultMainConf); !bytes.Equal(again, after) {
		t.Error("EnsureRunning again changed nginx.conf")
	}
	if diff := modTimes(t, DefaultMainConf, m.httpConf(), m.defaultConf(), m.defaultCert(), m.defaultKey()); fmt.Sprint(diff) != fmt.Sprint(mtimes) {
		t.Errorf("EnsureRunning again rewrote files: %v, were %v", diff, mtimes)
	}

	// The default server answers unknown names.
	if r := get(t, "http", "unknown.test", "/"); r.code != 404 {
		t.Errorf("HTTP, unknown host: %d, want 404", r.code)
	}
	if r := get(t, "https", "unknown.test", "/"); r.code != 421 || r.proto != "HTTP/2.0" {
		t.Errorf("HTTPS, unknown host: %d over %s, want 421 over HTTP/2.0", r.code, r.proto)
	}

	// A master that died is started again.
	pid, err := m.masterPID()
	if err != nil || pid == 0 {
		t.Fatalf("masterPID = %d, %v", pid, err)
	}
	stopMaster(t, pid)
	if err := m.EnsureRunning(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := get(t, "http", "unknown.test", "/"); r.code != 404 {
		t.Errorf("after a restart, unknown host: %d, want 404", r.code)
	}
}

func TestStaticSite(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	a := tenantSite(t, "acme", "acme.test", map[string]string{
		"index.html": "acme home", "style.css": "body{}", ".env": "SECRET=1", ".git/config": "[core]",
		".well-known/security.txt": "Contact: x", "sub/index.html": "sub home",
	})
	b := tenantSite(t, "other", "other.test", map[string]string{"index.html": "other home"})
	for _, s := range []Site{a, b} {
		if err := m.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(DefaultACMEDir, "tok3n"), []byte("tok3n.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"acme.test", "/", 200, "acme home"},
		{"acme.test", "/style.css", 200, "body{}"},
		{"acme.test", "/sub/", 200, "sub home"},
		{"acme.test", "/sub", 301, ""},
		{"acme.test", "/.env", 404, ""},
		{"acme.test", "/.git/config", 404, ""},
		{"acme.test", "/.git/", 404, ""},
		{"acme.test", "/.well-known/security.txt", 200, "Contact: x"},
		{"acme.test", "/.well-known/acme-challenge/tok3n", 200, "tok3n.key"},
		{"acme.test", "/missing", 404, ""},
		{"other.test", "/", 200, "other home"},
		{"unknown.test", "/", 404, ""},
	} {
		r := get(t, "http", c.host, c.path)
		if r.code != c.code || c.body != "" && r.body != c.body || strings.Contains(r.body, "SECRET") {
			t.Errorf("GET %s%s = %d %q, want %d %q", c.host, c.path, r.code, r.body, c.code, c.body)
		}
		if c.code == 200 && r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s%s: no security headers: %v", c.host, c.path, r.header)
		}
	}
	// The default server's 404 is not a site's.
	if r := get(t, "http", "unknown.test", "/"); strings.Contains(r.body, "home") {
		t.Errorf("unknown host answered by a site: %q", r.body)
	}
	// Per-domain logs, readable by the tenant's group.
	access := filepath.Join(a.LogDir, "acme.test.access.log")
	waitLog(t, access, `"GET /style.css HTTP/1.1" 200`)

	// Applying the same sites again writes, tests and reloads nothing.
	st := m.Stats()
	for _, s := range []Site{a, b} {
		if err := m.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Stats(); fmt.Sprint(got) != fmt.Sprint(st) {
		t.Errorf("second Apply: stats %+v, were %+v", got, st)
	}
}

// TestReadyMeansServing: once Apply returns, the new configuration answers
// every request; none falls through to the old one.
func TestReadyMeansServing(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{Window: 10 * time.Millisecond})
	startNginx(t, m)
	base := tenantSite(t, "base", "base.test", map[string]string{"index.html": "base"})
	if err := m.Apply(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	check := func(host, want string) {
		t.Helper()
		for i := range 50 {
			if r := get(t, "http", host, "/"); r.code != 200 || r.body != want {
				t.Fatalf("request %d to %s right after Apply: %d %q, want 200 %q", i+1, host, r.code, r.body, want)
			}
		}
	}
	for i := range 10 {
		d := fmt.Sprintf("new%d.test", i)
		s := tenantSite(t, "t"+fmt.Sprint(i), d, map[string]string{"index.html": d, "v2.html": d + " v2"})
		if err := m.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		check(d, d)
		// A change to an existing site is in effect at once too.
		s.Redirects = []Redirect{{From: "/", To: "/v2.html", Code: 302}}
		if err := m.Apply(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if r := get(t, "http", d, "/"); r.code != 302 {
				t.Fatalf("%s right after its change: %d, want the new 302", d, r.code)
			}
		}
	}
	t.Logf("stats: %+v", m.Stats())
}

// TestBrokenCustomInclude: in one batch with two good sites, a site whose
// admin include is broken gets a ConfigError with nginx's message and its
// previous file back; the good ones are served; what is on disk passes
// nginx -t.
func TestBrokenCustomInclude(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{Window: 300 * time.Millisecond})
	startNginx(t, m)
	good1 := tenantSite(t, "g1", "good1.test", map[string]string{"index.html": "good1"})
	good2 := tenantSite(t, "g2", "good2.test", map[string]string{"index.html": "good2"})
	bad := tenantSite(t, "b", "bad.test", map[string]string{"index.html": "bad v1", "v2.html": "bad v2"})
	if err := m.Apply(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	oldBad, err := os.ReadFile(m.SitePath("bad.test"))
	if err != nil {
		t.Fatal(err)
	}
	// The admin adds a broken include for bad.test; its spec changes too.
	custom := filepath.Join(DefaultCustomDir, "bad.test")
	if err := os.MkdirAll(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(custom, "extra.conf"), []byte("bogus_directive on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad.Redirects = []Redirect{{From: "/", To: "/v2.html", Code: 302}}
	sizes := len(m.Stats().BatchSizes)
	errs := applyAll(m, []Site{good1, bad, good2})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("good sites: %v, %v", errs[0], errs[2])
	}
	var ce *ConfigError
	if !errors.As(errs[1], &ce) || ce.Domain != "bad.test" || !strings.Contains(ce.NginxMessage, `unknown directive "bogus_directive"`) ||
		!strings.Contains(ce.NginxMessage, custom+"/extra.conf:1") {
		t.Fatalf("bad site: %v, want a ConfigError of bad.test with nginx's message", errs[1])
	}
	t.Logf("the bad site's error: %v", errs[1])
	if got := m.Stats().BatchSizes[sizes:]; len(got) != 1 || got[0] != 3 {
		t.Errorf("batches %v, want one of 3", got)
	}
	if now, _ := os.ReadFile(m.SitePath("bad.test")); !bytes.Equal(now, oldBad) {
		t.Errorf("the bad site's previous file was not restored:\n%s", now)
	}
	if msg, err := m.test(context.Background()); err != nil {
		t.Errorf("the configuration on disk fails nginx -t: %s", msg)
	}
	for host, want := range map[string]string{"good1.test": "good1", "good2.test": "good2", "bad.test": "bad v1"} {
		if r := get(t, "http", host, "/"); r.code != 200 || r.body != want {
			t.Errorf("%s: %d %q, want %q", host, r.code, r.body, want)
		}
	}

	// A new site with a broken include is not served at all (its file was
	// absent, and is again).
	nb := tenantSite(t, "n", "newbad.test", map[string]string{"index.html": "newbad"})
	if err := os.MkdirAll(filepath.Join(DefaultCustomDir, "newbad.test"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(DefaultCustomDir, "newbad.test", "a.conf"), []byte("location {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), nb); !errors.As(err, &ce) {
		t.Fatalf("new broken site: %v, want a ConfigError", err)
	}
	if _, err := os.Lstat(m.SitePath("newbad.test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the new broken site's file is on disk: %v", err)
	}
	if r := get(t, "http", "newbad.test", "/"); r.code != 404 {
		t.Errorf("new broken site: %d, want the default server's 404", r.code)
	}
}

func TestUnsafeCustomDir(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{"index.html": "acme"})
	custom := filepath.Join(DefaultCustomDir, "acme.test")
	if err := os.MkdirAll(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(custom, "headers.conf"), []byte("add_header X-Custom yes always;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if r := get(t, "http", "acme.test", "/"); r.header.Get("X-Custom") != "yes" {
		t.Errorf("the admin include is not in effect: %v", r.header)
	}
	// Made writable by others: no longer included, and reported.
	if err := os.Chmod(custom, 0o777); err != nil {
		t.Fatal(err)
	}
	err := m.Apply(context.Background(), s)
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnsafeCustomDir) {
		t.Fatalf("Apply with a world-writable include dir: %v, want ErrUnsafeCustomDir", err)
	}
	if b, _ := os.ReadFile(m.SitePath("acme.test")); bytes.Contains(b, []byte(`include "`+custom)) {
		t.Error("the unsafe directory is still included")
	}
	if r := get(t, "http", "acme.test", "/"); r.code != 200 || r.header.Get("X-Custom") != "" {
		t.Errorf("after the unsafe dir: %d %v, want 200 without X-Custom", r.code, r.header)
	}
	ds, err := m.Observe(context.Background(), s)
	if err != nil || len(ds) != 1 || !strings.Contains(ds[0].Field, "custom include") {
		t.Errorf("Observe = %v, %v, want the unsafe include reported", ds, err)
	}
	// A tenant-owned log directory is refused: nginx's master opens it as root.
	if err := os.Chown(s.LogDir, 33, 33); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background(), s); !errors.Is(err, ErrUnsafeLogDir) {
		t.Errorf("Apply with a tenant-owned log dir: %v, want ErrUnsafeLogDir", err)
	}
}

func TestConcurrentApplies(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	var sites []Site
	for i := range 200 {
		d := fmt.Sprintf("site%03d.test", i)
		sites = append(sites, tenantSite(t, fmt.Sprintf("t%03d", i), d, map[string]string{"index.html": d}))
	}
	before := m.Stats()
	start := time.Now()
	for i, err := range applyAll(m, sites) {
		if err != nil {
			t.Fatalf("%s: %v", sites[i].Domain, err)
		}
	}
	took := time.Since(start)
	st := m.Stats()
	reloads := st.Reloads - before.Reloads
	t.Logf("200 sites applied concurrently in %s: %d reloads, %d nginx -t, batches %v",
		took.Round(time.Millisecond), reloads, st.Tests-before.Tests, st.BatchSizes[len(before.BatchSizes):])
	if reloads > 10 {
		t.Errorf("%d reloads for 200 sites, want a handful", reloads)
	}
	for _, s := range sites {
		if r := get(t, "http", s.Domain, "/"); r.code != 200 || r.body != s.Domain {
			t.Errorf("%s: %d %q", s.Domain, r.code, r.body)
		}
	}
}

func TestRemove(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{"index.html": "acme"})
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if r := get(t, "http", "acme.test", "/"); r.code != 200 {
		t.Fatalf("before Remove: %d", r.code)
	}
	if err := m.Remove(context.Background(), "acme.test"); err != nil {
		t.Fatal(err)
	}
	if r := get(t, "http", "acme.test", "/"); r.code != 404 || r.body == "acme" {
		t.Errorf("after Remove: %d %q, want the default server's 404", r.code, r.body)
	}
	if _, err := os.Lstat(m.SitePath("acme.test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("site file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.LogDir, "acme.test.access.log")); err != nil {
		t.Errorf("the logs are the tenant's and stay: %v", err)
	}
	st := m.Stats()
	if err := m.Remove(context.Background(), "acme.test"); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats(); fmt.Sprint(got) != fmt.Sprint(st) {
		t.Errorf("second Remove: %+v, were %+v", got, st)
	}
	ds, err := m.Observe(context.Background(), s)
	if err != nil || len(ds) != 1 || ds[0].Have != "missing" {
		t.Errorf("Observe after Remove = %v, %v, want the file missing", ds, err)
	}
}

func TestDriftIsReportedAndUndone(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{"index.html": "acme"})
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if ds, err := m.Observe(context.Background(), s); err != nil || len(ds) != 0 {
		t.Fatalf("Observe right after Apply = %v, %v", ds, err)
	}
	// Somebody edits the site by hand and reloads.
	path := m.SitePath("acme.test")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "    index index.html index.htm;\n",
		"    index index.html index.htm;\n    autoindex on;\n", 1)
	edited = strings.Replace(edited, `X-Frame-Options "SAMEORIGIN"`, `X-Frame-Options "ALLOWALL"`, 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := m.Observe(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drift: %s", host.Summary(ds))
	want := []string{
		"vhost acme.test: want sha256:",
		`vhost acme.test line 12: want (none), have autoindex on;`,
		`vhost acme.test line 14: want add_header X-Frame-Options "SAMEORIGIN" always;, have add_header X-Frame-Options "ALLOWALL" always;`,
	}
	if len(ds) != len(want) {
		t.Fatalf("Observe = %d differences, want %d:\n%s", len(ds), len(want), host.Summary(ds))
	}
	for i, w := range want {
		if !strings.HasPrefix(ds[i].String(), w) {
			t.Errorf("difference %d = %q, want %q...", i, ds[i].String(), w)
		}
	}
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if ds, err := m.Observe(context.Background(), s); err != nil || len(ds) != 0 {
		t.Errorf("Observe after Apply = %v, %v, want no drift", ds, err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, b) {
		t.Error("Apply did not restore the rendered file")
	}

	// A deleted access log (the workers cannot create it) is reported and
	// recreated, without a reload.
	access := filepath.Join(s.LogDir, "acme.test.access.log")
	if err := os.Remove(access); err != nil {
		t.Fatal(err)
	}
	ds, err = m.Observe(context.Background(), s)
	if err != nil || len(ds) != 1 || ds[0].Field != "vhost acme.test access log" {
		t.Errorf("Observe without the access log = %v, %v", ds, err)
	}
	st := m.Stats()
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats(); got.Reloads != st.Reloads || got.Writes != st.Writes {
		t.Errorf("recreating the access log reloaded or wrote the site: %+v, were %+v", got, st)
	}
	get(t, "http", "acme.test", "/logged")
	waitLog(t, access, "GET /logged")
}

// waitLog waits until the access log holds want: nginx logs a request after
// it has sent the answer, so the client can be faster than the log line.
func waitLog(t *testing.T, path, want string) {
	t.Helper()
	var b []byte
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err = os.ReadFile(path); err == nil && strings.Contains(string(b), want) {
			return
		}
	}
	t.Errorf("access log %s lacks %q: %v %q", path, want, err, b)
}

func TestPHPSite(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	sock := phpFPM(t)
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{
		"index.php":   `<?php echo "php ", PHP_MAJOR_VERSION, " uri=", $_SERVER["REQUEST_URI"], " host=", $_SERVER["HTTP_HOST"];`,
		"info.php":    `<?php echo "script=", $_SERVER["SCRIPT_FILENAME"];`,
		"static.txt":  "static",
		"img.jpg":     `<?php echo "EXECUTED";`,
		".hidden.php": `<?php echo "HIDDEN";`,
	})
	s.PHPSocket = sock
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "php 8 uri=/ host=acme.test"},
		{"/pretty/url?x=1", 200, "php 8 uri=/pretty/url?x=1 host=acme.test"},
		{"/info.php", 200, "script=" + s.DocumentRoot + "/info.php"},
		{"/static.txt", 200, "static"},
		{"/img.jpg", 200, `<?php echo "EXECUTED";`}, // served as a file, not run
		{"/img.jpg/x.php", 404, ""},                 // no PATH_INFO tricks
		{"/missing.php", 404, ""},                   // nginx answers, not PHP
		{"/.hidden.php", 404, ""},
	} {
		r := get(t, "http", "acme.test", c.path)
		if r.code != c.code || c.body != "" && r.body != c.body || strings.Contains(r.body, "EXECUTED") && c.path != "/img.jpg" ||
			strings.Contains(r.body, "HIDDEN") {
			t.Errorf("GET %s = %d %q, want %d %q", c.path, r.code, r.body, c.code, c.body)
		}
	}
}

func TestTLSAndRedirects(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{"index.html": "acme"})
	// A certificate for the site, made like the default server's.
	certPEM, keyPEM, err := selfsigned.New(time.Now(), 24*time.Hour, "acme.test", "acme.test", "acme.org", "www.acme.org")
	if err != nil {
		t.Fatal(err)
	}
	dir := "/var/lib/wcp360/tls/acme.test"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.TLS = &TLS{CertFile: dir + "/fullchain.pem", KeyFile: dir + "/key.pem", Trusted: true}
	for p, b := range map[string][]byte{s.TLS.CertFile: certPEM, s.TLS.KeyFile: keyPEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.ServerNames = []string{"acme.test", "acme.org"}
	s.WWWRedirect = WWWToApex
	s.Redirects = []Redirect{{From: "/old", To: "/new", Code: 308}, {From: "/docs/", To: "https://docs.test/"}}
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		scheme, host, path string
		code               int
		location           string
	}{
		{"http", "acme.test", "/x?y=1", 301, "https://acme.test/x?y=1"},
		{"http", "www.acme.org", "/x", 301, "https://www.acme.org/x"},
		{"https", "www.acme.org", "/x", 301, "https://acme.org/x"},
		{"https", "acme.test", "/old", 308, "https://acme.test/new"},
		{"https", "acme.test", "/docs/a/b", 301, "https://docs.test/"},
		{"https", "acme.org", "/", 200, ""},
	} {
		r := get(t, c.scheme, c.host, c.path)
		if r.code != c.code || r.header.Get("Location") != c.location {
			t.Errorf("%s://%s%s = %d %q, want %d %q", c.scheme, c.host, c.path, r.code, r.header.Get("Location"), c.code, c.location)
		}
	}
	access := filepath.Join(s.LogDir, "acme.test.access.log")
	waitLog(t, access, `"GET /x?y=1 HTTP/1.1" 301`)
	r := get(t, "https", "acme.test", "/")
	if r.body != "acme" || r.proto != "HTTP/2.0" || r.header.Get("Strict-Transport-Security") == "" {
		t.Errorf("https://acme.test/ = %q over %s, HSTS %q", r.body, r.proto, r.header.Get("Strict-Transport-Security"))
	}
	// A missing certificate is this site's fault, named by nginx.
	other := tenantSite(t, "o", "other.test", map[string]string{"index.html": "o"})
	other.TLS = &TLS{CertFile: "/var/lib/wcp360/tls/other.test/fullchain.pem", KeyFile: "/var/lib/wcp360/tls/other.test/key.pem"}
	var ce *ConfigError
	if err := m.Apply(context.Background(), other); !errors.As(err, &ce) || ce.Domain != "other.test" {
		t.Errorf("a site without its certificate: %v, want its ConfigError", err)
	}
}

func modTimes(t *testing.T, paths ...string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.ModTime())
	}
	return out
}

// stopMaster stops nginx (SIGTERM: the master stops its workers) and
// waits until the master is gone.
func stopMaster(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := readProc(pid); !ok {
			return
		}
	}
	t.Fatalf("nginx master %d did not exit", pid)
}

// TestReloadRefused: a configuration that passes nginx -t but that the
// master cannot load (a port another program holds) fails the Apply at
// once with nginx's message, the previous file is back, and the previous
// configuration still serves.
func TestReloadRefused(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	busy, err := net.Listen("tcp", "0.0.0.0:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m := newManager(t, Options{})
	startNginx(t, m)
	s := tenantSite(t, "acme", "acme.test", map[string]string{"index.html": "acme"})
	if err := m.Apply(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(m.SitePath("acme.test"))
	if err != nil {
		t.Fatal(err)
	}
	custom := filepath.Join(DefaultCustomDir, "acme.test")
	if err := os.MkdirAll(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(custom, "port.conf"), []byte("listen 8080;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = m.Apply(context.Background(), s)
	var re *ReloadError
	if !errors.As(err, &re) || !strings.Contains(re.NginxMessage, "Address already in use") {
		t.Fatalf("Apply = %v, want a ReloadError about the busy port", err)
	}
	t.Logf("refused in %s: %v", time.Since(start).Round(time.Millisecond), err)
	if time.Since(start) > 10*time.Second {
		t.Errorf("the refusal took %s: it was not read from the error log", time.Since(start))
	}
	if now, _ := os.ReadFile(m.SitePath("acme.test")); !bytes.Equal(now, before) {
		t.Error("the previous site file is not back")
	}
	if r := get(t, "http", "acme.test", "/"); r.code != 200 || r.body != "acme" {
		t.Errorf("after the refused reload: %d %q", r.code, r.body)
	}
}

// TestRaiseNoFile: the open files limit of this process (inherited by
// nginx -t) and of another process (the master) is raised as needed.
func TestRaiseNoFile(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	var lim unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 8192 {
		t.Skipf("hard limit %d: too low to test", lim.Max)
	}
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: lim.Max}, nil); err != nil {
		t.Fatal(err)
	}
	if err := raiseNoFile(0, fdsNeeded(1000)); err != nil {
		t.Fatal(err)
	}
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/bin/sh", Args: []string{"-c", "ulimit -n"}})
	if got := strings.TrimSpace(string(out)); err != nil || got != strconv.FormatUint(fdsNeeded(1000), 10) {
		t.Errorf("a child's open files limit = %q, %v, want %d", got, err, fdsNeeded(1000))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: "/bin/sleep", Args: []string{"30"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(p.Pid(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 512, Max: lim.Max}, nil); err != nil {
		t.Fatal(err)
	}
	if err := raiseNoFile(p.Pid(), 6000); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(p.Pid(), unix.RLIMIT_NOFILE, nil, &lim); err != nil || lim.Cur != 6000 {
		t.Errorf("the other process's limit = %d, %v, want 6000", lim.Cur, err)
	}
	if got := fdsNeeded(10000); got != 65536 {
		t.Errorf("fdsNeeded(10000) = %d, want 65536", got)
	}
}
