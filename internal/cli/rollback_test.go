package cli

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

const acmeChanged = `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: acme, labels: {plan: gold}}
spec: {displayName: ACME Ltd., php: {version: "8.3"}}
`

func TestRollback(t *testing.T) {
	d, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))
	mustSucceed(t, wcp.run(t, "apply", "-f", writeManifest(t, "acme.yaml", acmeChanged)))

	r := wcp.run(t, "rollback", "tenant", "acme", "--to-revision", "1", "--dry-run")
	mustSucceed(t, r)
	wantLines(t, "rollback --dry-run", r.stdout,
		"tenant/acme rolled back to revision 1 (dry run; would be generation 3)",
		`  ~ spec.displayName: "ACME Ltd." -> "ACME Inc."`,
		`  ~ spec.php.version: "8.3" -> "8.2"`)
	if row, err := d.Store.Get(ctxT(t), v1alpha1.KindTenant, "acme"); err != nil || row.Generation != 2 {
		t.Fatalf("after a dry run: generation %d, %v; want 2", row.Generation, err)
	}

	r = wcp.run(t, "rollback", "tenant", "acme", "--to-revision", "1")
	mustSucceed(t, r)
	wantLines(t, "rollback", r.stdout,
		"tenant/acme rolled back to revision 1 (generation 3)",
		`  ~ spec.displayName: "ACME Ltd." -> "ACME Inc."`,
		`  ~ spec.php.version: "8.3" -> "8.2"`)

	r = wcp.run(t, "rollback", "tenant", "acme", "--to-revision", "1")
	mustSucceed(t, r)
	wantLines(t, "rollback to the current spec", r.stdout, "tenant/acme unchanged (revision 1 is the current spec)")

	// describe lists the numbers rollback takes, and who made each revision.
	r = wcp.run(t, "describe", "tenant", "acme")
	mustSucceed(t, r)
	for _, want := range [][]string{
		{"Generation:", "3"},
		{"NUMBER", "GENERATION", "ACTOR", "AGE"},
		{"1", "1", "root@unix"},
		{"2", "2", "root@unix"},
		{"3", "3", "root@unix", "(rollback", "to", "1)"},
	} {
		if !hasRow(r.stdout, want) {
			t.Errorf("describe has no line starting with %q:\n%s", want, r.stdout)
		}
	}
}

func TestRollbackErrors(t *testing.T) {
	_, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))
	for _, tc := range []struct {
		name   string
		inv    invocation
		args   []string
		stderr []string // leading lines
	}{
		{"missing revision", wcp, []string{"rollback", "domain", "www.acme.test", "--to-revision", "9"},
			[]string{"error: domain/www.acme.test: Not found", `  revision: Domain "www.acme.test" has no revision 9`}},
		{"missing resource", wcp, []string{"rollback", "tenant", "nobody", "--to-revision", "1"},
			[]string{"error: tenant/nobody: Not found", `  metadata.name: Tenant "nobody" not found`}},
		{"no --to-revision", wcp, []string{"rollback", "tenant", "acme"},
			[]string{`error: required flag(s) "to-revision" not set`}},
		{"revision zero", wcp, []string{"rollback", "tenant", "acme", "--to-revision", "0"},
			[]string{"error: --to-revision must be a revision number (1, 2, ...; see wcp describe tenant acme), got 0"}},
		{"unknown kind", wcp, []string{"rollback", "widget", "acme", "--to-revision", "1"}, nil},
		{"no daemon", invocation{socket: filepath.Join(t.TempDir(), "none.sock")},
			[]string{"rollback", "tenant", "acme", "--to-revision", "1"}, nil},
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
}

func TestRollbackWait(t *testing.T) {
	d, wcp := startDaemon(t)
	d.RunController(t, 50*time.Millisecond)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/nested/a.yml", "--wait", "--timeout", "30s"))
	mustSucceed(t, wcp.run(t, "apply", "-f", writeManifest(t, "alpha.yaml",
		"apiVersion: wcp360.io/v1alpha1\nkind: Tenant\nmetadata: {name: alpha}\nspec: {displayName: Alpha}\n")))

	r := wcp.run(t, "rollback", "tenant", "alpha", "--to-revision", "1", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	got := lines(r.stdout)
	if len(got) < 2 || got[0] != "tenant/alpha rolled back to revision 1 (generation 3)" || got[len(got)-1] != "tenant/alpha: Ready" {
		t.Errorf("rollback --wait printed %q; want the rollback first and Ready last", got)
	}
	if row, err := d.Store.Get(ctxT(t), v1alpha1.KindTenant, "alpha"); err != nil || row.ObservedGeneration != 3 {
		t.Errorf("after rollback --wait: observed generation %d, %v; want 3", row.ObservedGeneration, err)
	}
}
