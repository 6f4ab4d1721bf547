package tenant_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/sandbox"
)

type wantEntry struct {
	rel       string
	uid, gid  int
	mode      os.FileMode
	directory bool
}

func checkHome(t *testing.T, name string, id int, keys bool) {
	t.Helper()
	want := []wantEntry{
		{"", 0, id, 0o750, true},
		{"domains", id, id, 0o750, true},
		{"logs", 0, id, 0o750, true},
		{"tmp", id, id, 0o700, true},
		{"php", 0, id, 0o750, true},
		{"php/sessions", id, id, 0o700, true},
	}
	if keys {
		want = append(want, wantEntry{".ssh", 0, id, 0o750, true}, wantEntry{".ssh/authorized_keys", 0, id, 0o640, false})
	}
	for _, w := range want {
		p := filepath.Join("/srv/www", name, w.rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.IsDir() != w.directory || fi.Mode().Perm() != w.mode || int(st.Uid) != w.uid || int(st.Gid) != w.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d dir=%v", p, fi.Mode(), st.Uid, st.Gid, w.mode, w.uid, w.gid, w.directory)
		}
	}
}

func TestApplyCreatesAccountAndHome(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := newEnv(t, nil)
	e.mustConverge(e.row("acme", v1alpha1.TenantSpec{}))

	passwd := readFile(t, "/etc/passwd")
	if !strings.Contains(passwd, "\nacme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin\n") {
		t.Errorf("passwd entry missing or wrong:\n%s", passwd)
	}
	if !strings.Contains(readFile(t, "/etc/group"), "\nacme:x:20000:www-data\n") {
		t.Errorf("group entry missing or wrong:\n%s", readFile(t, "/etc/group"))
	}
	if sh := readFile(t, "/etc/shadow"); !strings.Contains(sh, "\nacme:!:") {
		t.Errorf("shadow entry must exist and be locked:\n%s", sh)
	}
	checkHome(t, "acme", 20000, false)
	if fi, err := os.Stat("/srv/www"); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("/srv/www: %v %v", fi.Mode(), err)
	}
	if out := mustRun(t, "getent", "passwd", "acme"); out != "acme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin" {
		t.Errorf("getent: %q", out)
	}
	if out := mustRun(t, "id", "acme"); out != "uid=20000(acme) gid=20000(acme) groups=20000(acme)" {
		t.Errorf("id: %q", out)
	}
	if out := mustRun(t, "su", "-", "-s", "/bin/sh", "-c", "id -u; pwd", "acme"); out != "20000\n/srv/www/acme" {
		t.Errorf("su as the tenant: %q", out)
	}

	// SSH access and keys: a login shell and a managed authorized_keys.
	e.mustConverge(e.row("acme", v1alpha1.TenantSpec{Access: v1alpha1.TenantAccess{SSH: true,
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1 admin@example"}}}))
	if out := mustRun(t, "getent", "passwd", "acme"); !strings.HasSuffix(out, ":/bin/bash") {
		t.Errorf("ssh tenant shell: %q", out)
	}
	checkHome(t, "acme", 20000, true)
	if k := readFile(t, "/srv/www/acme/.ssh/authorized_keys"); !strings.Contains(k, "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1 admin@example\n") {
		t.Errorf("authorized_keys:\n%s", k)
	}
	// Keys removed from the spec are removed from the host: access is revoked.
	e.mustConverge(e.row("acme", v1alpha1.TenantSpec{}))
	if _, err := os.Stat("/srv/www/acme/.ssh/authorized_keys"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("authorized_keys kept after the keys left the spec: %v", err)
	}

	// A second tenant gets the next id; a pinned uid is honoured.
	e.mustConverge(e.row("beta", v1alpha1.TenantSpec{}))
	e.mustConverge(e.row("gamma", v1alpha1.TenantSpec{UID: 20500}))
	if out := mustRun(t, "id", "-u", "beta"); out != "20001" {
		t.Errorf("beta uid %s", out)
	}
	if out := mustRun(t, "id", "-u", "gamma"); out != "20500" {
		t.Errorf("gamma uid %s", out)
	}
	for _, args := range [][]string{{"pwck", "-r", "-q"}, {"grpck", "-r"}} {
		if out, err := run(t, nil, args[0], args[1:]...); err != nil && strings.Contains(out, "acme") {
			t.Errorf("%v complains about our entries: %v\n%s", args, err, out)
		}
	}
}

func TestApplyAgainChangesNothing(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := newEnv(t, nil)
	row := e.row("acme", v1alpha1.TenantSpec{Access: v1alpha1.TenantAccess{AuthorizedKeys: []string{"ssh-ed25519 AAAAC3Nza k"}}})
	e.mustConverge(row)
	type stamp struct {
		ino   uint64
		mtime time.Time
	}
	stamps := func() map[string]stamp {
		out := map[string]stamp{}
		paths := []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/srv/www/acme/.ssh/authorized_keys"}
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			out[p] = stamp{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()}
		}
		return out
	}
	before := stamps()
	snapsBefore, _ := e.snaps.List("Tenant", "acme")
	ds, err := e.step.Observe(context.Background(), row)
	if err != nil || len(ds) != 0 {
		t.Fatalf("a converged tenant observes %v, %v", ds, err)
	}
	if after := stamps(); !equalStamps(before, after) {
		t.Errorf("observe rewrote files: %v → %v", before, after)
	}
	if snapsAfter, _ := e.snaps.List("Tenant", "acme"); len(snapsAfter) != len(snapsBefore) {
		t.Errorf("a no-op took a snapshot")
	}
}

func equalStamps[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDriftIsObservedAndCorrected(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := newEnv(t, nil)
	row := e.row("acme", v1alpha1.TenantSpec{})
	e.mustConverge(row)
	ctx := context.Background()

	for _, tc := range []struct {
		name  string
		edit  func()
		diffs []string
	}{
		{"shell", func() { mustRun(t, "usermod", "-s", "/bin/bash", "acme") },
			[]string{"shell: want /usr/sbin/nologin, have /bin/bash"}},
		{"home mode", func() { must(t, os.Chmod("/srv/www/acme", 0o777)) },
			[]string{"home mode: want 0750, have 0777"}},
		{"owner of tmp", func() { must(t, os.Chown("/srv/www/acme/tmp", 0, 0)) },
			[]string{"home/tmp owner: want 20000:20000 (acme:acme), have 0:0"}},
		{"deleted home", func() { must(t, os.RemoveAll("/srv/www/acme")) },
			[]string{"home: want present, have absent", "home/domains: want present, have absent"}},
		{"extra group member", func() { mustRun(t, "gpasswd", "-a", "nobody", "acme") },
			[]string{"group.members: want www-data, have nobody,www-data"}},
		{"removed passwd entry", func() { mustRun(t, "userdel", "acme") },
			[]string{"user: want present, have absent"}},
	} {
		tc.edit()
		row = e.row("acme", v1alpha1.TenantSpec{}) // with the status the last converge reported
		ds, err := e.step.Observe(ctx, row)
		if err != nil {
			t.Fatalf("%s: observe: %v", tc.name, err)
		}
		got := strings.Split(host.Summary(ds), "; ")
		for _, w := range tc.diffs {
			if !slices.Contains(got, w) {
				t.Errorf("%s: differences %q lack %q", tc.name, got, w)
			}
		}
		if err := e.converge(row); err != nil {
			t.Fatalf("%s: correct: %v", tc.name, err)
		}
		checkHome(t, "acme", 20000, false)
	}
	if out := mustRun(t, "getent", "passwd", "acme"); out != "acme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin" {
		t.Errorf("after corrections: %q", out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFailurePartWayRestoresSnapshot(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	plain := newEnv(t, nil)
	keep := plain.row("keep", v1alpha1.TenantSpec{})
	plain.mustConverge(keep)
	for _, stage := range []string{"account", "home"} {
		faulty := newEnv(t, func(o *tenant.Options) {
			o.Fault = func(s string) error {
				if s == stage {
					return fmt.Errorf("injected failure after %s", s)
				}
				return nil
			}
		})
		before := etcSnapshot(t)
		// A new tenant: user, group and home are all undone.
		err := faulty.converge(faulty.row("newt", v1alpha1.TenantSpec{}))
		if err == nil || !strings.Contains(err.Error(), "injected failure after "+stage) || !strings.Contains(err.Error(), "restored from snapshot") {
			t.Fatalf("%s: converge error %v", stage, err)
		}
		if after := etcSnapshot(t); !equalStamps(before, after) {
			t.Errorf("%s: /etc not restored:\n%v", stage, diffEtc(before, after))
		}
		if _, err := os.Lstat("/srv/www/newt"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the new home survived the failure: %v", stage, err)
		}
		// A change to an existing tenant: the old shell and home stay.
		err = faulty.converge(faulty.row("keep", v1alpha1.TenantSpec{Access: v1alpha1.TenantAccess{SSH: true, AuthorizedKeys: []string{"ssh-ed25519 AAAA k"}}}))
		if err == nil {
			t.Fatalf("%s: update did not fail", stage)
		}
		if after := etcSnapshot(t); !equalStamps(before, after) {
			t.Errorf("%s: /etc not restored after a failed update:\n%v", stage, diffEtc(before, after))
		}
		if _, err := os.Lstat("/srv/www/keep/.ssh"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: .ssh survived the failed update: %v", stage, err)
		}
		checkHome(t, "keep", 20000, false)
		infos, err := faulty.snaps.List("Tenant", "newt")
		if err != nil || len(infos) == 0 || infos[0].State != "restored" {
			t.Errorf("%s: snapshot of the failed plan: %+v %v", stage, infos, err)
		}
	}
	// Without the fault the same plans go through.
	plain.mustConverge(plain.row("newt", v1alpha1.TenantSpec{}))
	checkHome(t, "newt", 20001, false)
}

func diffEtc(a, b map[string]string) string {
	var out []string
	for k := range a {
		if a[k] != b[k] {
			out = append(out, fmt.Sprintf("--- %s before\n%s\n+++ after\n%s", k, a[k], b[k]))
		}
	}
	return strings.Join(out, "\n")
}

func TestRefusesWhatIsNotOurs(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := newEnv(t, func(o *tenant.Options) { o.UIDMax = 20001 })

	// A user of that name made by someone else is never taken over.
	mustRun(t, "useradd", "-M", "-s", "/bin/bash", "bob")
	before := etcSnapshot(t)
	err := e.converge(e.row("bob", v1alpha1.TenantSpec{}))
	if !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "user bob") || !strings.Contains(err.Error(), "not created by WCP360") {
		t.Fatalf("foreign user: %v", err)
	}
	// Nor a lone group.
	mustRun(t, "groupadd", "carol")
	if err := e.converge(e.row("carol", v1alpha1.TenantSpec{})); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "group carol") {
		t.Fatalf("foreign group: %v", err)
	}
	// Deleting such a tenant leaves the foreign user alone.
	if err := e.step.Remove(context.Background(), e.row("bob", v1alpha1.TenantSpec{})); err != nil {
		t.Fatalf("remove of a tenant whose user is foreign: %v", err)
	}
	before["group"] = readFile(t, "/etc/group") // carol's groupadd came after
	before["gshadow"] = readFile(t, "/etc/gshadow")
	if after := etcSnapshot(t); !equalStamps(before, after) {
		t.Errorf("refused plans changed /etc:\n%s", diffEtc(before, after))
	}

	// A home replaced by a symlink is refused, and nothing is written through it.
	e.mustConverge(e.row("eve", v1alpha1.TenantSpec{}))
	victim := t.TempDir()
	must(t, os.Chmod(victim, 0o700))
	must(t, os.RemoveAll("/srv/www/eve"))
	must(t, os.Symlink(victim, "/srv/www/eve"))
	err = e.converge(e.row("eve", v1alpha1.TenantSpec{}))
	if !errors.Is(err, tenant.ErrSymlink) {
		t.Fatalf("symlinked home: %v", err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("wrote through the symlink: %v", ents)
	}
	if fi, _ := os.Stat(victim); fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o700 {
		t.Errorf("changed the symlink's target: %v", fi.Mode())
	}
	must(t, os.Remove("/srv/www/eve"))

	// A pinned uid that is taken, or outside the range; a full range.
	if err := e.converge(e.row("dave", v1alpha1.TenantSpec{UID: 20000})); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "taken by user eve") {
		t.Errorf("taken uid: %v", err)
	}
	if err := e.converge(e.row("dave", v1alpha1.TenantSpec{UID: 30000})); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "outside the tenant uid range") {
		t.Errorf("uid out of range: %v", err)
	}
	e.mustConverge(e.row("dave", v1alpha1.TenantSpec{}))
	if err := e.converge(e.row("frank", v1alpha1.TenantSpec{})); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "no free uid") {
		t.Errorf("full range: %v", err)
	}
}

func TestRemoveFollowsHomeDeletionPolicy(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, p := range []v1alpha1.HomeDeletionPolicy{v1alpha1.HomeArchive, v1alpha1.HomeDelete, v1alpha1.HomeRetain} {
		name := "t-" + string(p)
		row := e.row(name, v1alpha1.TenantSpec{HomeDeletionPolicy: p})
		e.mustConverge(row)
		site := filepath.Join("/srv/www", name, "domains", "index.html")
		must(t, os.WriteFile(site, []byte("hello "+name), 0o640))
		// A process of the tenant is running: it is stopped first.
		if _, err := run(t, nil, "su", "-s", "/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 &", name); err != nil {
			t.Fatal(err)
		}
		if err := e.step.Remove(ctx, row); err != nil {
			t.Fatalf("%s: remove: %v", p, err)
		}
		if out, err := run(t, nil, "getent", "passwd", name); err == nil {
			t.Errorf("%s: user still there: %s", p, out)
		}
		if out, err := run(t, nil, "getent", "group", name); err == nil {
			t.Errorf("%s: group still there: %s", p, out)
		}
		_, err := os.Stat(site)
		switch p {
		case v1alpha1.HomeRetain:
			if err != nil {
				t.Errorf("retain: home removed: %v", err)
			}
		default:
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: home kept: %v", p, err)
			}
		}
		// Removing again is a no-op.
		if err := e.step.Remove(ctx, row); err != nil {
			t.Errorf("%s: second remove: %v", p, err)
		}
	}
	archives, _ := filepath.Glob("/var/lib/wcp360/archives/t-archive-*.tar.gz")
	if len(archives) != 1 {
		t.Fatalf("archives: %v", archives)
	}
	if got := tarFile(t, archives[0], "t-archive/domains/index.html"); got != "hello t-archive" {
		t.Errorf("archived site: %q", got)
	}
	if fi, _ := os.Stat(archives[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v", fi.Mode())
	}
}

func tarFile(t *testing.T, archive, name string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in %s: %v", name, archive, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}
