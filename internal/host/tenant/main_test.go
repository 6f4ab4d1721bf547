package tenant_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// Every test here changes /etc/passwd and /srv/www: each runs in a sandbox
// of its own (sandbox.Run), and Main proves the host's files unchanged.
func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

// env is one tenant step on the sandbox's real /etc and /srv/www.
type env struct {
	t      *testing.T
	status map[string]json.RawMessage // what the controller would have stored
	step   *tenant.Step
	opts   tenant.Options
	snaps  *snapshot.Store
	gen    int64
}

func newEnv(t *testing.T, mod func(*tenant.Options)) *env {
	t.Helper()
	snaps, err := snapshot.New(snapshot.Options{Dir: "/var/lib/wcp360/snapshots"})
	if err != nil {
		t.Fatal(err)
	}
	opts := tenant.Options{
		WWWRoot: "/srv/www", Users: &users.DB{Root: "/", Now: time.Now, LockTimeout: 3 * time.Second},
		Snapshots: snaps, UIDMin: 20000, UIDMax: 20999, ArchiveDir: "/var/lib/wcp360/archives", Clock: time.Now,
	}
	if mod != nil {
		mod(&opts)
	}
	step, err := tenant.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, step: step, opts: opts, snaps: snaps, status: map[string]json.RawMessage{}}
}

// row is a stored Tenant as the controller hands it to the step.
func (e *env) row(name string, spec v1alpha1.TenantSpec) store.Resource {
	e.t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	e.gen++
	return store.Resource{Kind: v1alpha1.KindTenant, Name: name, UID: "00000000-0000-0000-0000-000000000001",
		Generation: e.gen, Spec: b, Status: e.status[name]}
}

// converge is what the controller does: observe, apply when needed, observe again.
func (e *env) converge(row store.Resource) error {
	e.t.Helper()
	ctx := context.Background()
	ds, err := e.step.Observe(ctx, row)
	if err != nil || len(ds) == 0 {
		return err
	}
	if _, err := e.step.Apply(ctx, row, ds); err != nil {
		return err
	}
	left, err := e.step.Observe(ctx, row)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		e.t.Fatalf("still differs after apply: %v", left)
	}
	var st v1alpha1.Status
	if err := e.step.ReportStatus(ctx, row, &st); err != nil {
		return err
	}
	e.status[row.Name], _ = json.Marshal(st)
	return nil
}

func (e *env) mustConverge(row store.Resource) {
	e.t.Helper()
	if err := e.converge(row); err != nil {
		e.t.Fatalf("converge %s: %v", row.Name, err)
	}
}

// run runs a program (as root unless cred is set) and returns its output.
func run(t *testing.T, cred *syscall.Credential, name string, args ...string) (string, error) {
	t.Helper()
	path, err := cmdrun.LookPath(name, "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	if err != nil {
		t.Fatal(err)
	}
	c := cmdrun.Cmd{Path: path, Args: args, Timeout: 30 * time.Second}
	c.Credential = cred
	out, err := cmdrun.Run(context.Background(), c)
	return strings.TrimSpace(string(out)), err
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(t, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func etcSnapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"passwd", "shadow", "group", "gshadow"} {
		out[f] = readFile(t, filepath.Join("/etc", f))
	}
	return out
}
