package tenant_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// TestIsolationBetweenTenants proves the home layout of home.go with the
// kernel as the judge: real programs run with the credentials a login (or
// an nginx worker after initgroups) gets, and either may or may not read,
// write, list or chmod.
func TestIsolationBetweenTenants(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	baseline := shadowCheckReports(t)

	// The sandbox mounts /srv/www as a tmpfs of mode 0755, as a host may
	// have it; the step makes it 0711 (traversal only) before the first home.
	e := newEnv(t, nil)
	e.mustConverge(e.row("alpha", v1alpha1.TenantSpec{}))
	e.mustConverge(e.row("beta", v1alpha1.TenantSpec{}))
	if fi, err := os.Stat("/srv/www"); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("/srv/www after converging: %v, %v; want mode 0711", fi, err)
	}

	// What PHP or SFTP running as alpha with umask 027 would have made.
	alpha := kernelCred(t, "alpha")
	public := "/srv/www/alpha/domains/site/public"
	index := filepath.Join(public, "index.html")
	for _, d := range []string{"/srv/www/alpha/domains/site", public} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		chownTo(t, d, alpha, 0o750)
	}
	if err := os.WriteFile(index, []byte("<h1>alpha</h1>\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	chownTo(t, index, alpha, 0o640)

	beta, www := kernelCred(t, "beta"), kernelCred(t, "www-data")
	if !slices.Contains(www.Groups, alpha.Gid) || !slices.Contains(www.Groups, beta.Gid) {
		t.Fatalf("www-data's groups %v lack alpha's (%d) or beta's (%d)", www.Groups, alpha.Gid, beta.Gid)
	}

	const denied, notPermitted = "Permission denied", "Operation not permitted"
	for _, tc := range []struct {
		name string
		cred *syscall.Credential
		argv []string
		// fail is the message a refused run must print; "" means the run must succeed.
		fail string
		// out, when set, must be in the output of a successful run.
		out string
	}{
		// alpha works in its own home.
		{"alpha lists its home", alpha, []string{"ls", "/srv/www/alpha"}, "", "domains"},
		{"alpha reads its page", alpha, []string{"cat", index}, "", "<h1>alpha</h1>"},
		{"alpha edits its page", alpha, []string{"sh", "-c", "echo '<p>edited</p>' >> " + index}, "", ""},
		{"alpha creates in domains", alpha, []string{"sh", "-c", "mkdir /srv/www/alpha/domains/shop && echo x > /srv/www/alpha/domains/shop/index.php"}, "", ""},
		{"alpha creates in tmp", alpha, []string{"touch", "/srv/www/alpha/tmp/upload"}, "", ""},
		{"alpha creates a session", alpha, []string{"touch", "/srv/www/alpha/php/sessions/sess_1"}, "", ""},
		{"alpha cannot chmod its home", alpha, []string{"chmod", "777", "/srv/www/alpha"}, notPermitted, ""},
		{"alpha cannot write the home itself", alpha, []string{"touch", "/srv/www/alpha/evil"}, denied, ""},
		{"alpha cannot swap logs", alpha, []string{"mv", "/srv/www/alpha/logs", "/srv/www/alpha/domains/logs"}, denied, ""},
		{"alpha cannot list beta's home", alpha, []string{"ls", "/srv/www/beta"}, denied, ""},

		// www-data (nginx) reads the sites and writes nothing.
		{"www-data reads alpha's page", www, []string{"cat", index}, "", "<p>edited</p>"},
		{"www-data reads beta's home", www, []string{"ls", "/srv/www/beta/domains"}, "", ""},
		{"www-data cannot edit the page", www, []string{"sh", "-c", "echo x >> " + index}, denied, ""},
		{"www-data cannot write domains", www, []string{"touch", "/srv/www/alpha/domains/x"}, denied, ""},
		{"www-data cannot write tmp", www, []string{"touch", "/srv/www/alpha/tmp/x"}, denied, ""},
		{"www-data cannot enter tmp", www, []string{"ls", "/srv/www/alpha/tmp"}, denied, ""},
		{"www-data cannot write sessions", www, []string{"touch", "/srv/www/alpha/php/sessions/x"}, denied, ""},
		{"www-data cannot read sessions", www, []string{"cat", "/srv/www/alpha/php/sessions/sess_1"}, denied, ""},

		// beta gets nothing of alpha's, and cannot list who else is here.
		{"beta lists its own home", beta, []string{"ls", "/srv/www/beta"}, "", "domains"},
		{"beta traverses /srv/www", beta, []string{"test", "-x", "/srv/www"}, "", ""},
		{"beta cannot list /srv/www", beta, []string{"ls", "/srv/www"}, denied, ""},
		{"beta cannot list alpha's home", beta, []string{"ls", "/srv/www/alpha"}, denied, ""},
		{"beta cannot read alpha's page", beta, []string{"cat", index}, denied, ""},
		{"beta cannot enter alpha's tmp", beta, []string{"ls", "/srv/www/alpha/tmp"}, denied, ""},
		{"beta cannot enter alpha's sessions", beta, []string{"ls", "/srv/www/alpha/php/sessions"}, denied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, tc.cred, tc.argv[0], tc.argv[1:]...)
			switch {
			case tc.fail == "" && err != nil:
				t.Fatalf("%v: %v", tc.argv, err)
			case tc.fail == "" && !strings.Contains(out, tc.out):
				t.Fatalf("%v printed %q, want %q in it", tc.argv, out, tc.out)
			case tc.fail != "" && err == nil:
				t.Fatalf("%v succeeded (output %q); want it refused", tc.argv, out)
			case tc.fail != "" && !strings.Contains(out, tc.fail):
				t.Fatalf("%v failed for another reason than %q: %v", tc.argv, tc.fail, err)
			}
		})
	}
	// The test's runs changed nothing the step owns.
	if fi, err := os.Stat("/srv/www/alpha"); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("/srv/www/alpha after the runs: %v, %v; want mode 0750", fi, err)
	}
	for _, p := range []string{"/srv/www/alpha/domains/shop/index.php", "/srv/www/alpha/tmp/upload", "/srv/www/alpha/php/sessions/sess_1"} {
		owner, err := ownerOf(p)
		if err != nil || owner != [2]uint32{alpha.Uid, alpha.Gid} {
			t.Errorf("%s: owner %v, %v; want alpha:alpha", p, owner, err)
		}
	}

	t.Run("accounts", func(t *testing.T) {
		want := fmt.Sprintf("uid=%d(alpha) gid=%d(alpha) groups=%d(alpha)", alpha.Uid, alpha.Gid, alpha.Gid)
		if out := mustRun(t, "su", "-s", "/bin/sh", "-c", "id", "alpha"); out != want {
			t.Errorf("su -c id alpha: %q, want %q", out, want)
		}
		if out := mustRun(t, "id", "alpha"); out != want {
			t.Errorf("id alpha: %q, want %q", out, want)
		}
		wantPw := fmt.Sprintf("alpha:x:%d:%d:WCP360 tenant alpha:/srv/www/alpha:/usr/sbin/nologin", alpha.Uid, alpha.Gid)
		if out := mustRun(t, "getent", "passwd", "alpha"); out != wantPw {
			t.Errorf("getent passwd alpha: %q, want %q", out, wantPw)
		}
		if out, want := mustRun(t, "getent", "group", "alpha"), fmt.Sprintf("alpha:x:%d:www-data", alpha.Gid); out != want {
			t.Errorf("getent group alpha: %q, want %q", out, want)
		}
		if out := mustRun(t, "getent", "shadow", "alpha"); !strings.HasPrefix(out, "alpha:!:") {
			t.Errorf("getent shadow alpha: %q, want a locked password (alpha:!:...)", out)
		}
		if f := strings.Split(mustRun(t, "getent", "gshadow", "alpha"), ":"); len(f) != 4 || f[0] != "alpha" || f[1] == "" || f[3] != "www-data" {
			t.Errorf("getent gshadow alpha: %q, want a password field and www-data as the only member", strings.Join(f, ":"))
		}
		// The kernel's view of www-data, as nginx gets it from initgroups.
		got := mustRun(t, "id", "-G", "www-data")
		if want := joinIDs(www.Groups); got != want {
			t.Errorf("id -G www-data: %q, want %q (from /etc/group)", got, want)
		}
		checkShadowReports(t, baseline, "alpha", "beta")
	})
}

// TestIsolationCreatesWWWRoot0711 proves that a WWWRoot the step creates
// is 0711: tenants can traverse it to their homes but not list it.
func TestIsolationCreatesWWWRoot0711(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	const root = "/var/lib/wcp360/www" // missing: the sandbox's /var/lib/wcp360 starts empty
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists before the test: %v", root, err)
	}
	e := newEnv(t, func(o *tenant.Options) { o.WWWRoot = root })
	e.mustConverge(e.row("gamma", v1alpha1.TenantSpec{}))
	fi, err := os.Stat(root)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o711 {
		t.Fatalf("%s: mode %04o, want 0711", root, fi.Mode().Perm())
	}
	gamma := kernelCred(t, "gamma")
	if out, err := run(t, gamma, "ls", root); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("gamma lists %s: %q, %v; want Permission denied", root, out, err)
	}
	if _, err := run(t, gamma, "ls", filepath.Join(root, "gamma", "domains")); err != nil {
		t.Errorf("gamma cannot reach its home through %s: %v", root, err)
	}
}

// kernelCred is the credential the kernel gives a login of name (or a
// process after initgroups): its uid and gid from /etc/passwd, and as
// supplementary groups its primary group and every group of /etc/group
// that lists it as a member.
func kernelCred(t *testing.T, name string) *syscall.Credential {
	t.Helper()
	var c *syscall.Credential
	for line := range strings.SplitSeq(readFile(t, "/etc/passwd"), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == name {
			c = &syscall.Credential{Uid: parseID(t, f[2]), Gid: parseID(t, f[3])}
		}
	}
	if c == nil {
		t.Fatalf("no user %s in /etc/passwd", name)
	}
	c.Groups = []uint32{c.Gid}
	for line := range strings.SplitSeq(readFile(t, "/etc/group"), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[3] == "" {
			continue
		}
		if gid := parseID(t, f[2]); slices.Contains(strings.Split(f[3], ","), name) && !slices.Contains(c.Groups, gid) {
			c.Groups = append(c.Groups, gid)
		}
	}
	return c
}

func parseID(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(s, " ")
}

func chownTo(t *testing.T, p string, c *syscall.Credential, mode os.FileMode) {
	t.Helper()
	if err := os.Chown(p, int(c.Uid), int(c.Gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the test's umask
		t.Fatal(err)
	}
}

func ownerOf(p string) ([2]uint32, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return [2]uint32{}, err
	}
	return [2]uint32{st.Uid, st.Gid}, nil
}

// shadowCheckReports runs pwck -r and grpck -r on the real /etc and
// returns what each printed and its exit status.
func shadowCheckReports(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, prog := range []string{"pwck", "grpck"} {
		report, err := run(t, nil, prog, "-r")
		status := 0
		var ee *cmdrun.Error
		if errors.As(err, &ee) {
			var xe interface{ ExitCode() int }
			if !errors.As(ee.Err, &xe) {
				t.Fatalf("%s -r: %v", prog, err)
			}
			status = xe.ExitCode()
		} else if err != nil {
			t.Fatalf("%s -r: %v", prog, err)
		}
		out[prog] = fmt.Sprintf("exit %d\n%s", status, report)
	}
	return out
}

// checkShadowReports fails when pwck -r or grpck -r now complains of
// anything it did not complain of in baseline (the host's own files may
// already have warnings, such as a system user's missing home), or exits
// with another status; and it names the reports that mention names.
func checkShadowReports(t *testing.T, baseline map[string]string, names ...string) {
	t.Helper()
	for prog, now := range shadowCheckReports(t) {
		before := strings.Split(baseline[prog], "\n")
		lines := strings.Split(now, "\n")
		if lines[0] != before[0] {
			t.Errorf("%s -r: %s now, %s before our changes:\n%s", prog, lines[0], before[0], now)
		}
		for _, l := range lines[1:] {
			if !slices.Contains(before, l) {
				t.Errorf("%s -r: new complaint: %s", prog, l)
			}
			for _, n := range names {
				if strings.Contains(l, "'"+n+"'") || strings.Contains(l, " "+n+":") || strings.Contains(l, "/"+n) {
					t.Errorf("%s -r complains about %s: %s", prog, n, l)
				}
			}
		}
	}
}
