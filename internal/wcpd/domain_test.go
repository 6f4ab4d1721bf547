package wcpd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
)

func domainManifest(name, tenant string, spec map[string]any) map[string]any {
	if spec == nil {
		spec = map[string]any{}
	}
	spec["tenant"] = tenant
	return map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": "Domain",
		"metadata": map[string]any{"name": name}, "spec": spec}
}

// get fetches path from the sandbox's nginx with the Host header host.
func get(t *testing.T, host, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func writeAs(t *testing.T, path, content string, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// A tenant and a domain applied through the API become a PHP site that
// nginx serves and PHP-FPM runs as the tenant; another tenant's PHP cannot
// read it; applying again changes nothing; deleting removes it all.
func TestDomainServesPHPAsTheTenant(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	for _, tn := range []string{"alpha", "beta"} {
		if code, body := d.do("PUT", "/api/v1/tenants/"+tn, tenant(tn)); code != http.StatusCreated {
			t.Fatalf("apply tenant %s: %d %s", tn, code, body)
		}
		dn := tn + ".test"
		if code, body := d.do("PUT", "/api/v1/domains/"+dn, domainManifest(dn, tn, map[string]any{"aliases": []string{"www." + dn}})); code != http.StatusCreated {
			t.Fatalf("apply domain %s: %d %s", dn, code, body)
		}
	}
	alpha := d.waitReady("tenants", "alpha").Account
	beta := d.waitReady("tenants", "beta").Account
	st := d.waitReady("domains", "alpha.test")
	d.waitReady("domains", "beta.test")
	for _, part := range []string{"DocumentRoot", "TLS", "PHP", "Vhost"} {
		if !hasTrue(st, part) {
			t.Errorf("domain condition %s not True: %+v", part, st.Conditions)
		}
	}

	// PHP on demand (web.phpIdleStop's default): Ready, and no master yet.
	if n := d.metric("wcp360_php_masters_running"); n != 0 {
		t.Errorf("%d PHP-FPM masters run before any request, want none (on demand)", n)
	}
	pub := "/srv/www/alpha/domains/alpha.test/public"
	writeAs(t, filepath.Join(pub, "index.php"),
		`<?php echo posix_geteuid(), " ", @file_get_contents("/srv/www/beta/domains/beta.test/public/secret.txt") === false ? "denied" : "LEAK";`,
		alpha.UID, alpha.GID)
	writeAs(t, filepath.Join(pub, "hello.txt"), "static hello\n", alpha.UID, alpha.GID)
	writeAs(t, "/srv/www/beta/domains/beta.test/public/secret.txt", "beta's secret\n", beta.UID, beta.GID)

	if code, body := get(t, "alpha.test", "/"); code != http.StatusOK || body != fmt.Sprintf("%d denied", alpha.UID) {
		elog, _ := os.ReadFile("/srv/www/alpha/logs/alpha.test.error.log")
		t.Errorf("PHP page of alpha.test: %d %q, want 200 %q\nnginx error log:\n%s", code, body, fmt.Sprintf("%d denied", alpha.UID), elog)
	}
	if n := d.metric("wcp360_php_masters_running"); n != 1 {
		t.Errorf("%d PHP-FPM masters run after alpha's request, want alpha's", n)
	}
	if code, body := get(t, "www.alpha.test", "/hello.txt"); code != http.StatusOK || body != "static hello\n" {
		t.Errorf("static file through the alias: %d %q", code, body)
	}
	if code, body := get(t, "beta.test", "/secret.txt"); code != http.StatusOK || body != "beta's secret\n" {
		t.Errorf("beta's own file: %d %q", code, body)
	}
	if code, _ := get(t, "unknown.test", "/"); code != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 404 from the default server", code)
	}

	// Applying the same manifests again writes nothing and reloads nothing.
	site := "/etc/nginx/wcp360/sites/alpha.test.conf"
	before, err := os.Stat(site)
	if err != nil {
		t.Fatal(err)
	}
	workers := nginxWorkers(t)
	for _, tn := range []string{"alpha", "beta"} {
		dn := tn + ".test"
		if code, body := d.do("PUT", "/api/v1/domains/"+dn, domainManifest(dn, tn, map[string]any{"aliases": []string{"www." + dn}})); code != http.StatusOK {
			t.Fatalf("re-apply %s: %d %s", dn, code, body)
		}
	}
	d.do("POST", "/api/v1/domains/alpha.test/reconcile", nil)
	time.Sleep(500 * time.Millisecond)
	after, err := os.Stat(site)
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("site file rewritten by an unchanged apply: %v → %v (%v)", before.ModTime(), after.ModTime(), err)
	}
	if now := nginxWorkers(t); now != workers {
		t.Errorf("nginx reloaded for an unchanged apply: workers %s → %s", workers, now)
	}

	// Deleting a domain stops serving it; deleting its tenant stops its PHP.
	if code, body := d.do("DELETE", "/api/v1/domains/beta.test", nil); code != http.StatusAccepted {
		t.Fatalf("delete domain: %d %s", code, body)
	}
	eventually(t, d, "beta.test gone", func() (bool, string) {
		code, _ := d.do("GET", "/api/v1/domains/beta.test", nil)
		return code == http.StatusNotFound, fmt.Sprint(code)
	})
	if code, _ := get(t, "beta.test", "/secret.txt"); code != http.StatusNotFound {
		t.Errorf("deleted domain still served: %d", code)
	}
	if _, err := os.Stat("/etc/nginx/wcp360/sites/beta.test.conf"); !os.IsNotExist(err) {
		t.Errorf("site file of a deleted domain: %v", err)
	}
	socket := func(tn string) string {
		m, _ := filepath.Glob("/run/wcp360/php/" + tn + "-*.sock")
		if len(m) == 0 {
			m, _ = filepath.Glob(filepath.Join(d.dir, "php", tn+"-*.sock"))
		}
		return strings.Join(m, ",")
	}
	if s := socket("beta"); s != "" {
		t.Errorf("the PHP master of beta's only domain is still there: %s", s)
	}
	if s := socket("alpha"); s == "" {
		t.Errorf("alpha's PHP socket is missing")
	}
}

func hasTrue(st v1alpha1.Status, typ string) bool {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Status == v1alpha1.ConditionTrue
		}
	}
	return false
}

// nginxWorkers lists the pids of nginx worker processes: a reload replaces them.
func nginxWorkers(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), "nginx: worker process") {
			pids = append(pids, e.Name())
		}
	}
	return strings.Join(pids, ",")
}

// An admin include that nginx refuses stalls its domain with nginx's
// message while the other sites keep being served; switching a domain's
// PHP version starts the new master and stops the old.
func TestDomainBrokenIncludeAndVersionSwitch(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	// Two PHP versions: the installed 8.2, and the same binary as "8.1".
	bins := t.TempDir()
	for _, v := range []string{"8.2", "8.1"} {
		if err := os.Symlink("/usr/sbin/php-fpm8.2", filepath.Join(bins, "php-fpm"+v)); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemonWith(t, func(cfg string) string {
		return cfg + "web:\n  phpBinDir: " + bins + "\n"
	})
	for _, tn := range []string{"alpha", "beta"} {
		if code, body := d.do("PUT", "/api/v1/tenants/"+tn, tenant(tn)); code != http.StatusCreated {
			t.Fatalf("apply tenant %s: %d %s", tn, code, body)
		}
		dn := tn + ".test"
		if code, body := d.do("PUT", "/api/v1/domains/"+dn, domainManifest(dn, tn, nil)); code != http.StatusCreated {
			t.Fatalf("apply domain %s: %d %s", dn, code, body)
		}
	}
	d.waitReady("domains", "alpha.test")
	d.waitReady("domains", "beta.test")
	beta := d.waitReady("tenants", "beta").Account
	writeAs(t, "/srv/www/beta/domains/beta.test/public/index.html", "beta\n", beta.UID, beta.GID)

	custom := "/etc/wcp360/nginx/custom/alpha.test"
	if err := os.MkdirAll(custom, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(custom, "extra.conf"), []byte("bogus_directive on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.do("POST", "/api/v1/domains/alpha.test/reconcile", nil)
	eventually(t, d, "alpha.test Stalled with nginx's message", func() (bool, string) {
		_, b := d.do("GET", "/api/v1/domains/alpha.test", nil)
		return strings.Contains(string(b), `"Stalled"`) && strings.Contains(string(b), "bogus_directive"), string(b)
	})
	if code, body := get(t, "beta.test", "/"); code != http.StatusOK || body != "beta\n" {
		t.Errorf("the other site while alpha.test is stalled: %d %q", code, body)
	}
	if out, err := run(t, "/usr/sbin/nginx", "-t"); err != nil {
		t.Errorf("the configuration on disk fails nginx -t: %v\n%s", err, out)
	}
	if err := os.RemoveAll(custom); err != nil {
		t.Fatal(err)
	}

	// Version switch: 8.1 starts, 8.2 (no other domain of alpha uses it) stops.
	if code, body := d.do("PUT", "/api/v1/domains/alpha.test", domainManifest("alpha.test", "alpha",
		map[string]any{"php": map[string]any{"version": "8.1"}})); code != http.StatusOK {
		t.Fatalf("switch version: %d %s", code, body)
	}
	d.waitReady("domains", "alpha.test")
	sockets, _ := filepath.Glob(filepath.Join(d.dir, "php", "alpha-*.sock"))
	if len(sockets) != 1 || !strings.HasSuffix(sockets[0], "alpha-8.1.sock") {
		t.Errorf("alpha's PHP sockets after the switch: %v", sockets)
	}
}

func run(t *testing.T, prog string, args ...string) (string, error) {
	t.Helper()
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: prog, Args: args, Timeout: time.Minute})
	return string(out), err
}
