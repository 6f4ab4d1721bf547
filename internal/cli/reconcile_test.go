package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/host"
)

// homeObserver is a small real Observer for the test daemon: the home of
// tenant x is dir/x, a directory of mode 0750; a tenant named "broken"
// cannot be observed.
type homeObserver struct{ dir string }

func (o homeObserver) Observe(_ context.Context, kind v1alpha1.Kind, name string) ([]host.Difference, error) {
	if name == "broken" {
		return nil, errors.New("/srv/www/broken is a symlink")
	}
	fi, err := os.Stat(filepath.Join(o.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []host.Difference{{Field: "home", Want: "present", Have: "absent"}}, nil
	case err != nil:
		return nil, err
	case fi.Mode().Perm() != 0o750:
		return []host.Difference{{Field: "home mode", Want: "0750", Have: fmt.Sprintf("%04o", fi.Mode().Perm())}}, nil
	}
	return nil, nil
}

// section returns the lines of describe's section title, without the title.
func section(out, title string) []string {
	var got []string
	in := false
	for _, l := range lines(out) {
		switch {
		case l == title:
			in = true
		case in && !strings.HasPrefix(l, " "):
			return got
		case in:
			got = append(got, strings.Join(strings.Fields(l), " "))
		}
	}
	return got
}

func TestDescribeShowsTheHostLive(t *testing.T) {
	dir := t.TempDir()
	d := clienttest.StartWith(t, clienttest.Options{Observer: homeObserver{dir: dir}})
	wcp := invocation{socket: d.Socket}
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/nested/a.yml"))
	mustSucceed(t, wcp.run(t, "apply", "-f", writeManifest(t, "broken.yaml",
		"apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: broken}\nspec: {}\n")))
	home := filepath.Join(dir, "alpha")
	if err := os.Mkdir(home, 0o750); err != nil {
		t.Fatal(err)
	}

	r := wcp.run(t, "describe", "tenant", "alpha")
	mustSucceed(t, r)
	if diff := cmp.Diff([]string{"in sync"}, section(r.stdout, "Host (live):")); diff != "" {
		t.Errorf("Host (live) of a tenant in sync (-want +got):\n%s", diff)
	}
	// The live section comes after the drift the controller recorded.
	titles := []string{}
	for _, l := range lines(r.stdout) {
		if strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " ") {
			titles = append(titles, l)
		}
	}
	if diff := cmp.Diff([]string{"Spec:", "Conditions:", "Resources:", "Drift:", "Host (live):", "Revisions:", "Events:"}, titles); diff != "" {
		t.Errorf("describe sections (-want +got):\n%s", diff)
	}

	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	r = wcp.run(t, "describe", "tenant", "alpha")
	mustSucceed(t, r)
	if diff := cmp.Diff([]string{"FIELD WANT HAVE", "home mode 0750 0777"}, section(r.stdout, "Host (live):")); diff != "" {
		t.Errorf("Host (live) of a drifted tenant (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"<none>"}, section(r.stdout, "Drift:")); diff != "" {
		t.Errorf("the stored drift is the controller's, not the live one (-want +got):\n%s", diff)
	}

	// The host cannot be observed: describe says so, and still succeeds.
	r = wcp.run(t, "describe", "tenant", "broken")
	mustSucceed(t, r)
	want := []string{"<unavailable: could not observe the host: /srv/www/broken is a symlink>"}
	if diff := cmp.Diff(want, section(r.stdout, "Host (live):")); diff != "" {
		t.Errorf("Host (live) when observing fails (-want +got):\n%s", diff)
	}

	// A daemon that does not observe the host.
	_, bare := startDaemon(t)
	mustSucceed(t, bare.run(t, "apply", "-f", "testdata/nested/a.yml"))
	r = bare.run(t, "describe", "tenant", "alpha")
	mustSucceed(t, r)
	if diff := cmp.Diff([]string{"<not observed: this daemon does not observe the host>"}, section(r.stdout, "Host (live):")); diff != "" {
		t.Errorf("Host (live) without an observer (-want +got):\n%s", diff)
	}
}

func TestReconcile(t *testing.T) {
	d, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))
	r := wcp.run(t, "reconcile", "domain", "www.acme.test")
	mustSucceed(t, r)
	wantLines(t, "reconcile", r.stdout, "domain/www.acme.test reconcile requested")
	if diff := cmp.Diff([]clienttest.Key{{Kind: v1alpha1.KindDomain, Name: "www.acme.test"}}, d.Enqueued()); diff != "" {
		t.Errorf("enqueued (-want +got):\n%s", diff)
	}
	if row, err := d.Store.Get(ctxT(t), v1alpha1.KindDomain, "www.acme.test"); err != nil || row.Generation != 1 {
		t.Errorf("after a reconcile: generation %d, %v; want 1", row.Generation, err)
	}

	bare := clienttest.StartWith(t, clienttest.Options{NoControllers: true})
	for _, tc := range []struct {
		name   string
		inv    invocation
		args   []string
		stderr []string
	}{
		{"missing resource", wcp, []string{"reconcile", "tenant", "nobody"},
			[]string{"error: tenant/nobody: Not found", `  metadata.name: Tenant "nobody" not found`}},
		{"unknown kind", wcp, []string{"reconcile", "widget", "acme"}, nil},
		{"no daemon", invocation{socket: filepath.Join(t.TempDir(), "none.sock")}, []string{"reconcile", "tenant", "acme"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.inv.run(t, tc.args...)
			if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "error: ") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, an error", r.code, r.stdout, r.stderr)
			}
			if got := lines(r.stderr); len(got) < len(tc.stderr) || !slices.Equal(got[:len(tc.stderr)], tc.stderr) {
				t.Errorf("stderr = %q, want it to start with %q", got, tc.stderr)
			}
		})
	}
	mustSucceed(t, invocation{socket: bare.Socket}.run(t, "apply", "-f", "testdata/nested/a.yml"))
	r = invocation{socket: bare.Socket}.run(t, "reconcile", "tenant", "alpha")
	if r.code != 1 || r.stderr != "error: tenant/alpha: No controllers: this daemon runs no controllers to reconcile with\n" {
		t.Errorf("reconcile without controllers: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(d.Enqueued()) != 1 {
		t.Errorf("refused reconciles were enqueued: %v", d.Enqueued())
	}
}

// The stand-in controller runs once an hour here: only the reconcile request
// can make the tenant Ready within the test.
func TestReconcileWait(t *testing.T) {
	d, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/nested/a.yml"))
	d.RunController(t, time.Hour)
	r := wcp.run(t, "reconcile", "tenant", "alpha", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	got := lines(r.stdout)
	if len(got) < 2 || got[0] != "tenant/alpha reconcile requested" || got[len(got)-1] != "tenant/alpha: Ready" {
		t.Errorf("reconcile --wait printed %q; want the request first and Ready last", got)
	}
}

func TestReconcileWaitStalled(t *testing.T) {
	d, wcp := startDaemon(t)
	stuck := "apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: stuck\n  labels: {test.wcp360.io/stall: NeedsAHuman}\nspec: {}\n"
	mustSucceed(t, wcp.run(t, "apply", "-f", writeManifest(t, "stuck.yaml", stuck)))
	d.RunController(t, time.Hour)
	waitStalled(t, d, "stuck")

	// Still stalled: the controller looks again, fails again, and --wait
	// says so at once rather than at its timeout.
	start := time.Now()
	r := wcp.run(t, "reconcile", "tenant", "stuck", "--wait", "--timeout", "30s")
	if r.code != 1 || !strings.Contains(r.stderr, "error: tenant/stuck did not become Ready: Stalled (NeedsAHuman") {
		t.Errorf("reconcile --wait of a tenant still stalled: exit %d, stderr %q", r.code, r.stderr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("reconcile --wait of a tenant still stalled took %v", took)
	}

	// A human fixed it: a Stalled from before the request is not the answer.
	mustSucceed(t, wcp.run(t, "apply", "-f", writeManifest(t, "fixed.yaml", strings.Replace(stuck, "  labels: {test.wcp360.io/stall: NeedsAHuman}\n", "", 1))))
	r = wcp.run(t, "reconcile", "tenant", "stuck", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	if got := lines(r.stdout); len(got) < 2 || got[len(got)-1] != "tenant/stuck: Ready" {
		t.Errorf("reconcile --wait of a fixed tenant printed %q; want Ready last", got)
	}
}

func waitStalled(t *testing.T, d *clienttest.Daemon, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		row, err := d.Store.Get(ctxT(t), v1alpha1.KindTenant, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(row.Status), `"Stalled"`) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("tenant %s not Stalled within 30s", name)
}

func TestDiffShowsHostDrift(t *testing.T) {
	dir := t.TempDir()
	d := clienttest.StartWith(t, clienttest.Options{Observer: homeObserver{dir: dir}})
	wcp := invocation{socket: d.Socket}
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/nested/a.yml"))
	if err := os.Mkdir(filepath.Join(dir, "alpha"), 0o750); err != nil {
		t.Fatal(err)
	}
	if r := wcp.run(t, "diff", "-f", "testdata/nested/a.yml"); r.code != 0 || r.stdout != "" {
		t.Fatalf("diff of an applied manifest on a host in sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.Chmod(filepath.Join(dir, "alpha"), 0o777); err != nil {
		t.Fatal(err)
	}
	r := wcp.run(t, "diff", "-f", "testdata/nested/a.yml")
	want := "--- tenant/alpha (host)\n+++ tenant/alpha (stored spec)\n~ host home mode: want 0750, have 0777\n"
	if r.code != 1 || r.stdout != want {
		t.Errorf("diff with host drift: exit %d, stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
}
