package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/client/clienttest"
)

// These tests run wcp against the real API handler over a real PostgreSQL
// store (clienttest), on a unix socket.

func startDaemon(t *testing.T) (*clienttest.Daemon, invocation) {
	t.Helper()
	d := clienttest.Start(t)
	return d, invocation{socket: d.Socket}
}

// writeManifest writes a manifest file in a fresh directory and returns its path.
func writeManifest(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func wantLines(t *testing.T, what, got string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, lines(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestApplyTwice(t *testing.T) {
	d, wcp := startDaemon(t)
	r := wcp.run(t, "apply", "-f", "testdata/site")
	mustSucceed(t, r)
	wantLines(t, "first apply", r.stdout, "tenant/acme created", "domain/www.acme.test created", "database/shop created")

	r = wcp.run(t, "apply", "-f", "testdata/site")
	mustSucceed(t, r)
	wantLines(t, "second apply", r.stdout, "tenant/acme unchanged", "domain/www.acme.test unchanged", "database/shop unchanged")
	for _, k := range v1alpha1.Kinds {
		rows, err := d.Store.List(ctxT(t), k, storeAll())
		if err != nil || len(rows) != 1 || rows[0].Generation != 1 {
			t.Errorf("%s rows after two applies: %+v, %v; want one at generation 1", k, rows, err)
		}
	}

	changed := writeManifest(t, "tenant.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: acme, labels: {plan: gold}}
spec: {displayName: ACME Inc., php: {version: "8.3"}}
`)
	r = wcp.run(t, "apply", "-f", changed)
	mustSucceed(t, r)
	wantLines(t, "apply of a changed spec", r.stdout, "tenant/acme configured")
	if row, err := d.Store.Get(ctxT(t), v1alpha1.KindTenant, "acme"); err != nil || row.Generation != 2 {
		t.Errorf("tenant after a spec change: generation %d, %v; want 2", row.Generation, err)
	}
}

func TestApplyDryRun(t *testing.T) {
	_, wcp := startDaemon(t)
	r := wcp.run(t, "apply", "-f", "testdata/nested/a.yml", "--dry-run")
	mustSucceed(t, r)
	wantLines(t, "dry run", r.stdout, "tenant/alpha created (dry run)")
	r = wcp.run(t, "get", "tenants", "-o", "name")
	mustSucceed(t, r)
	if r.stdout != "" {
		t.Fatalf("a dry run stored something: %q", r.stdout)
	}

	// A dry run of each resource alone cannot see the Tenant the same input
	// creates; wcp says so instead of failing.
	r = wcp.run(t, "apply", "-f", "testdata/site", "--dry-run")
	mustSucceed(t, r)
	wantLines(t, "dry run of a new site", r.stdout,
		"tenant/acme created (dry run)",
		"domain/www.acme.test created (dry run; not checked: tenant acme is new too)",
		"database/shop created (dry run; not checked: tenant acme is new too)")

	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/nested/a.yml"))
	changed := writeManifest(t, "alpha.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: alpha}
spec: {displayName: Alpha}
`)
	r = wcp.run(t, "apply", "-f", changed, "--dry-run")
	mustSucceed(t, r)
	wantLines(t, "dry run of a change", r.stdout, "tenant/alpha configured (dry run)", `  + spec.displayName: "Alpha"`)
}

func TestApplyContinuesAfterAFailure(t *testing.T) {
	_, wcp := startDaemon(t)
	orphan := writeManifest(t, "orphan.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Domain
metadata: {name: www.ghost.test}
spec: {tenant: ghost}
`)
	r := wcp.run(t, "apply", "-f", orphan, "-f", "testdata/nested/a.yml")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	wantLines(t, "stdout", r.stdout, "tenant/alpha created")
	errLines := lines(r.stderr)
	if len(errLines) < 3 || !strings.HasPrefix(errLines[0], "error: domain/www.ghost.test: ") ||
		!strings.HasPrefix(errLines[1], "  spec.tenant: ") || errLines[len(errLines)-1] != "1 of 2 resources failed to apply" {
		t.Errorf("stderr does not name the domain, the field and the summary:\n%s", r.stderr)
	}
}

func TestDiff(t *testing.T) {
	_, wcp := startDaemon(t)
	r := wcp.run(t, "diff", "-f", "testdata/site")
	if r.code != diffFound {
		t.Fatalf("diff of a new site: exit %d, want %d", r.code, diffFound)
	}
	wantLines(t, "diff of a new site", r.stdout,
		"--- tenant/acme (live)", "+++ tenant/acme (applied)", "+ (new resource)",
		"--- domain/www.acme.test (live)", "+++ domain/www.acme.test (applied)", "+ (new resource; not checked: tenant acme is new too)",
		"--- database/shop (live)", "+++ database/shop (applied)", "+ (new resource; not checked: tenant acme is new too)")

	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))
	r = wcp.run(t, "diff", "-f", "testdata/site")
	if r.code != diffNone || r.stdout != "" {
		t.Fatalf("diff of what is applied = %d %q, want 0 and nothing", r.code, r.stdout)
	}

	changed := writeManifest(t, "site.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: acme, labels: {plan: gold}}
spec: {displayName: ACME Inc., php: {version: "8.3"}}
---
apiVersion: wcp360.io/v1alpha1
kind: Domain
metadata: {name: www.acme.test}
spec:
  tenant: acme
  aliases: [acme.test, shop.acme.test]
  php: {version: "8.2"}
  tls: {mode: selfsigned}
---
apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: newco}
spec: {}
`)
	r = wcp.run(t, "diff", "-f", changed)
	if r.code != diffFound {
		t.Fatalf("diff of a change: exit %d, want %d", r.code, diffFound)
	}
	wantLines(t, "diff", r.stdout,
		"--- tenant/acme (live)", "+++ tenant/acme (applied)", `~ spec.php.version: "8.2" -> "8.3"`,
		"--- tenant/newco (live)", "+++ tenant/newco (applied)", "+ (new resource)",
		"--- domain/www.acme.test (live)", "+++ domain/www.acme.test (applied)", `+ spec.aliases[1]: "shop.acme.test"`,
	)
	// diff changed nothing.
	mustSucceed(t, wcp.run(t, "diff", "-f", "testdata/site"))

	relabelled := writeManifest(t, "labels.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata: {name: acme, labels: {plan: silver}}
spec: {displayName: ACME Inc., php: {version: "8.2"}}
`)
	r = wcp.run(t, "diff", "-f", relabelled)
	if got := lines(r.stdout); r.code != diffFound || len(got) < 3 || got[0] != "--- tenant/acme (live)" || !strings.Contains(got[2], "metadata") {
		t.Errorf("diff of a label change = %d %q, want 1 and a metadata line", r.code, r.stdout)
	}

	orphan := writeManifest(t, "orphan.yaml", "apiVersion: wcp360.io/v1alpha1\nkind: Domain\nmetadata: {name: www.ghost.test}\nspec: {tenant: ghost}\n")
	if r := wcp.run(t, "diff", "-f", orphan); r.code != diffTrouble {
		t.Errorf("diff refused by the server: exit %d, want %d", r.code, diffTrouble)
	}
	if r := (invocation{socket: filepath.Join(t.TempDir(), "none.sock")}).run(t, "diff", "-f", "testdata/site"); r.code != diffTrouble {
		t.Errorf("diff without a daemon: exit %d, want %d", r.code, diffTrouble)
	}
}

func TestGet(t *testing.T) {
	_, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site", "-f", "testdata/nested/a.yml"))

	r := wcp.run(t, "get", "tenants")
	mustSucceed(t, r)
	wantTable(t, r.stdout,
		[]string{"NAME", "READY", "GENERATION/OBSERVED", "AGE"},
		[]string{"acme", "Unknown", "1/0"},
		[]string{"alpha", "Unknown", "1/0"})
	r = wcp.run(t, "get", "domains")
	mustSucceed(t, r)
	wantTable(t, r.stdout,
		[]string{"NAME", "TENANT", "SERVER", "NAMES", "TLS", "READY", "AGE"},
		[]string{"www.acme.test", "acme", "www.acme.test,acme.test", "selfsigned", "Unknown"})
	r = wcp.run(t, "get", "db", "shop")
	mustSucceed(t, r)
	wantTable(t, r.stdout,
		[]string{"NAME", "TENANT", "ENGINE", "DATABASE", "READY", "AGE"},
		[]string{"shop", "acme", "mariadb", "acme_shop", "Unknown"})

	r = wcp.run(t, "get", "tenants", "-l", "plan=gold", "-o", "name")
	mustSucceed(t, r)
	wantLines(t, "get -l plan=gold", r.stdout, "tenant/acme")
	r = wcp.run(t, "get", "domains", "--tenant", "alpha")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No resources found") {
		t.Errorf("get domains of a tenant without any = %d %q %q", r.code, r.stdout, r.stderr)
	}

	r = wcp.run(t, "get", "tenant", "acme", "-o", "json")
	mustSucceed(t, r)
	var one map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one["kind"] != "Tenant" || !strings.Contains(r.stdout, "\n  \"metadata\"") {
		t.Errorf("get -o json is not an indented Tenant (%v):\n%s", err, r.stdout)
	}
	r = wcp.run(t, "get", "tenant", "acme", "-o", "yaml")
	mustSucceed(t, r)
	if err := yaml.Unmarshal([]byte(r.stdout), &one); err != nil || one["kind"] != "Tenant" || !strings.HasPrefix(r.stdout, "apiVersion: wcp360.io/v1alpha1\n") {
		t.Errorf("get -o yaml is not a Tenant (%v):\n%s", err, r.stdout)
	}
	r = wcp.run(t, "get", "tenants", "-o", "yaml")
	mustSucceed(t, r)
	var list struct {
		Kind  string           `yaml:"kind"`
		Items []map[string]any `yaml:"items"`
	}
	if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil || list.Kind != "TenantList" || len(list.Items) != 2 {
		t.Errorf("get tenants -o yaml is not a TenantList of two (%v):\n%s", err, r.stdout)
	}

	r = wcp.run(t, "get", "tenant", "nobody")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "nobody") {
		t.Errorf("get of a missing tenant = %d %q", r.code, r.stderr)
	}
}

// wantTable checks a table's header and the leading cells of its rows.
func wantTable(t *testing.T, out string, header []string, rows ...[]string) {
	t.Helper()
	got := lines(out)
	if len(got) != len(rows)+1 {
		t.Fatalf("table has %d lines, want %d:\n%s", len(got), len(rows)+1, out)
	}
	if diff := cmp.Diff(header, strings.Fields(got[0])); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	for i, want := range rows {
		cells := strings.Fields(got[i+1])
		if len(cells) < len(want) || !slices.Equal(cells[:len(want)], want) {
			t.Errorf("row %d = %q, want it to start with %q", i, cells, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	d, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))
	if err := d.SetStatus(ctxT(t), v1alpha1.KindDomain, "www.acme.test",
		clienttest.Condition(v1alpha1.ConditionReady, v1alpha1.ConditionTrue, "Succeeded", "serving www.acme.test")); err != nil {
		t.Fatal(err)
	}
	r := wcp.run(t, "describe", "domain", "www.acme.test")
	mustSucceed(t, r)
	for _, want := range [][]string{
		{"Name:", "www.acme.test"},
		{"Kind:", "Domain"},
		{"Tenant:", "acme"},
		{"Labels:", "<none>"},
		{"Generation:", "1"},
		{"Observed", "Generation:", "1"},
		{"Spec:"},
		{"tenant:", "acme"},
		{"Conditions:"},
		{"TYPE", "STATUS", "REASON", "MESSAGE", "AGE"},
		{"Ready", "True", "Succeeded", "serving", "www.acme.test"},
		{"Drift:"},
		{"Revisions:"},
		{"NUMBER", "GENERATION", "ACTOR", "AGE"},
		{"1", "1"},
		{"Events:"},
	} {
		if !hasRow(r.stdout, want) {
			t.Errorf("describe has no line starting with %q", want)
		}
	}
	r = wcp.run(t, "describe", "tenant", "acme")
	mustSucceed(t, r)
	if !hasRow(r.stdout, []string{"Labels:", "plan=gold"}) || !hasRow(r.stdout, []string{"Conditions:"}) {
		t.Errorf("describe tenant lacks labels or conditions:\n%s", r.stdout)
	}
}

// hasRow reports whether some line's fields start with want.
func hasRow(out string, want []string) bool {
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
			return true
		}
	}
	return false
}

func TestDelete(t *testing.T) {
	_, wcp := startDaemon(t)
	mustSucceed(t, wcp.run(t, "apply", "-f", "testdata/site"))

	r := wcp.run(t, "delete", "domain", "www.acme.test", "--dry-run")
	mustSucceed(t, r)
	wantLines(t, "delete --dry-run", r.stdout, "domain/www.acme.test deleted (dry run)")
	r = wcp.run(t, "get", "domain", "www.acme.test")
	mustSucceed(t, r)
	if hasRow(r.stdout, []string{"www.acme.test", "acme", "www.acme.test,acme.test", "selfsigned", "Terminating"}) {
		t.Fatal("a dry-run delete marked the domain")
	}

	r = wcp.run(t, "delete", "domain", "www.acme.test", "missing.acme.test")
	if r.code != 1 {
		t.Errorf("delete of a missing domain: exit %d, want 1", r.code)
	}
	wantLines(t, "delete", r.stdout, "domain/www.acme.test deleted")
	if !strings.HasPrefix(r.stderr, "error: domain/missing.acme.test: ") {
		t.Errorf("stderr does not name the missing domain: %q", r.stderr)
	}
	r = wcp.run(t, "get", "domain", "www.acme.test")
	mustSucceed(t, r)
	wantTable(t, r.stdout, tableHeaderFields(v1alpha1.KindDomain),
		[]string{"www.acme.test", "acme", "www.acme.test,acme.test", "selfsigned", "Terminating"})
}

func tableHeaderFields(k v1alpha1.Kind) []string {
	return strings.Fields(strings.Join(tableHeader(k), " "))
}

func TestApplyWait(t *testing.T) {
	d, wcp := startDaemon(t)
	d.RunController(t, 100*time.Millisecond)
	r := wcp.run(t, "apply", "-f", "testdata/site", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	got := lines(r.stdout)
	for _, want := range []string{
		"tenant/acme created", "domain/www.acme.test created", "database/shop created",
		"tenant/acme: Ready", "domain/www.acme.test: Ready", "database/shop: Ready",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no line %q", want)
		}
	}
	if !slices.Contains(got, "domain/www.acme.test: Reconciling (WaitingForTenant: tenant acme is not Ready)") {
		t.Log("the domain was Ready before wcp saw it wait for its tenant (timing, not a failure)")
	}

	// A second apply changes nothing and is Ready at once.
	r = wcp.run(t, "apply", "-f", "testdata/site", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	wantLines(t, "second apply --wait", r.stdout,
		"tenant/acme unchanged", "domain/www.acme.test unchanged", "database/shop unchanged",
		"tenant/acme: Ready", "domain/www.acme.test: Ready", "database/shop: Ready")

	r = wcp.run(t, "delete", "-f", "testdata/site", "--wait", "--timeout", "30s")
	mustSucceed(t, r)
	got = lines(r.stdout)
	for _, want := range []string{
		"database/shop deleted", "domain/www.acme.test deleted", "tenant/acme deleted",
		"database/shop: Deleted", "domain/www.acme.test: Deleted", "tenant/acme: Deleted",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("no line %q", want)
		}
	}
}

func TestApplyWaitStalled(t *testing.T) {
	d, wcp := startDaemon(t)
	d.RunController(t, 50*time.Millisecond)
	stalled := writeManifest(t, "stalled.yaml", `apiVersion: wcp360.io/v1alpha1
kind: Tenant
metadata:
  name: stuck
  labels: {test.wcp360.io/stall: NeedsAHuman}
spec: {}
`)
	r := wcp.run(t, "apply", "-f", stalled, "--wait", "--timeout", "30s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	want := "tenant/stuck: Stalled (NeedsAHuman: the stand-in controller was told to stall)"
	if !slices.Contains(lines(r.stdout), want) {
		t.Errorf("no progress line %q", want)
	}
	if !strings.Contains(r.stderr, "error: tenant/stuck did not become Ready: Stalled (NeedsAHuman") {
		t.Errorf("stderr does not say the tenant stalled: %q", r.stderr)
	}
}

func TestApplyWaitTimeout(t *testing.T) {
	_, wcp := startDaemon(t) // no controller: nothing ever becomes Ready
	start := time.Now()
	r := wcp.run(t, "apply", "-f", "testdata/nested/a.yml", "--wait", "--timeout", "300ms")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("--timeout 300ms took %v", took)
	}
	wantLines(t, "stderr", r.stderr,
		"error: timed out after 300ms waiting for 1 resource(s) to be Ready:",
		"  tenant/alpha: Pending (not reconciled yet)")
}
