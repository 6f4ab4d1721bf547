package wcpd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// wcpd converges tenants into real Linux users and homes: every test that
// serves runs in a sandbox of its own (overlay /etc, tmpfs /srv/www).
func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

type daemonUnderTest struct {
	t       *testing.T
	dir     string
	cfgPath string
	socket  string
	dbURL   string
	sigs    chan os.Signal
	logs    *syncbuf.Buffer
	done    chan int
	stopped bool
	http    *http.Client
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func baseConfig(dir, dbURL, extra string) string {
	return fmt.Sprintf(`node: testnode
database:
  url: %q
paths:
  runDir: %s
  stateDir: %s
api:
  socket: %s
controllers:
  resyncInterval: 10s
  shutdownTimeout: 2s
log:
  level: info
acme:
  directory: ""
%s`, dbURL, dir, dir, filepath.Join(dir, "wcpd.sock"), extra)
}

func startDaemon(t *testing.T) *daemonUnderTest {
	t.Helper()
	return startDaemonWith(t, func(cfg string) string { return cfg })
}

// startDaemonWith starts a daemon whose configuration is edit(baseConfig),
// through first boot (as root on the socket, as `wcp init` does).
func startDaemonWith(t *testing.T, edit func(cfg string) string) *daemonUnderTest {
	t.Helper()
	d := startUninitialized(t, edit)
	d.firstBoot()
	return d
}

// firstBoot initialises the panel unless it is.
func (d *daemonUnderTest) firstBoot() {
	d.t.Helper()
	code, b := d.do("GET", "/api/v1/bootstrap", nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/bootstrap: %d %s", code, b)
	}
	if strings.Contains(string(b), `"initialized":true`) {
		return
	}
	if code, b := d.do("POST", "/api/v1/bootstrap", map[string]any{}); code != http.StatusCreated {
		d.t.Fatalf("first boot: %d %s", code, b)
	}
}

// startUninitialized starts a daemon and leaves first boot to the test.
func startUninitialized(t *testing.T, edit func(cfg string) string) *daemonUnderTest {
	t.Helper()
	if !sandbox.Inside() {
		// wcpd starts nginx and writes /etc: never on the machine itself.
		t.Fatal("startDaemon outside a sandbox: begin the test with `if sandbox.Run(t) { return }`")
	}
	dir := t.TempDir()
	// The run dir holds the PHP-FPM sockets nginx (www-data) connects to,
	// as /run/wcp360 does: traversable by all.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemonUnderTest{t: t, dir: dir, cfgPath: filepath.Join(dir, "wcpd.yaml"),
		socket: filepath.Join(dir, "wcpd.sock"), dbURL: pgtest.New(t),
		sigs: make(chan os.Signal, 4), logs: &syncbuf.Buffer{}, done: make(chan int, 1)}
	writeConfig(t, d.cfgPath, edit(baseConfig(dir, d.dbURL, "")))
	d.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
		}}}
	go func() {
		d.done <- RunEnv(context.Background(), []string{"serve", "--config", d.cfgPath}, nil,
			Env{Environ: []string{}, Stdout: d.logs, Stderr: d.logs, Signals: d.sigs})
	}()
	t.Cleanup(func() {
		if d.stopped {
			return
		}
		d.sigs <- syscall.SIGTERM
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			t.Errorf("daemon did not stop; logs:\n%s", d.logs)
		}
	})
	d.waitHealthy()
	return d
}

func (d *daemonUnderTest) waitHealthy() {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-d.done:
			d.stopped = true
			d.t.Fatalf("daemon exited with %d before serving; logs:\n%s", code, d.logs)
		default:
		}
		resp, err := d.http.Get("http://wcpd/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("daemon not healthy within 30s; logs:\n%s", d.logs)
}

func (d *daemonUnderTest) do(method, path string, body any) (int, []byte) {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			d.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://wcpd"+path, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func tenant(name string) map[string]any {
	return map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": "Tenant",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{}}
}

// waitReady polls until the resource's Ready condition is True for its generation.
func (d *daemonUnderTest) waitReady(plural, name string) v1alpha1.Status {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []byte
	for time.Now().Before(deadline) {
		code, b := d.do("GET", "/api/v1/"+plural+"/"+name, nil)
		last = b
		if code == http.StatusOK {
			var obj struct {
				Metadata v1alpha1.ObjectMeta `json:"metadata"`
				Status   v1alpha1.Status     `json:"status"`
			}
			if err := json.Unmarshal(b, &obj); err != nil {
				d.t.Fatal(err)
			}
			for _, c := range obj.Status.Conditions {
				if c.Type == v1alpha1.ConditionReady && c.Status == v1alpha1.ConditionTrue &&
					obj.Status.ObservedGeneration == obj.Metadata.Generation {
					return obj.Status
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("%s/%s not Ready within 30s; last: %s\nlogs:\n%s", plural, name, last, d.logs)
	return v1alpha1.Status{}
}

func (d *daemonUnderTest) stop() int {
	d.t.Helper()
	d.sigs <- syscall.SIGTERM
	select {
	case code := <-d.done:
		d.stopped = true
		return code
	case <-time.After(30 * time.Second):
		d.t.Fatalf("daemon did not stop within 30s; logs:\n%s", d.logs)
		return -1
	}
}

func TestServeApplyReconcileAndGracefulShutdown(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	code, body := d.do("PUT", "/api/v1/tenants/acme", tenant("acme"))
	if code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, body)
	}
	dom := map[string]any{"apiVersion": v1alpha1.APIVersion, "kind": "Domain",
		"metadata": map[string]any{"name": "acme.test"}, "spec": map[string]any{"tenant": "acme"}}
	if code, body := d.do("PUT", "/api/v1/domains/acme.test", dom); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	d.waitReady("tenants", "acme")
	d.waitReady("domains", "acme.test")

	// The tenant is a real Linux user with its home (in this sandbox).
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil || !strings.Contains(string(passwd), "\nacme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin\n") {
		t.Errorf("tenant user not in /etc/passwd (%v):\n%s", err, passwd)
	}
	if fi, err := os.Stat("/srv/www/acme/domains"); err != nil || !fi.IsDir() {
		t.Errorf("tenant home not laid out: %v", err)
	}

	// An identical apply changes nothing.
	code, body = d.do("PUT", "/api/v1/tenants/acme", tenant("acme"))
	var ar api.ApplyResponse
	if err := json.Unmarshal(body, &ar); err != nil || code != http.StatusOK || ar.Outcome != api.OutcomeUnchanged {
		t.Fatalf("second apply: %d %s (%v)", code, body, err)
	}

	if code := d.stop(); code != ExitOK {
		t.Fatalf("exit code %d; logs:\n%s", code, d.logs)
	}
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind after shutdown: %v", err)
	}
	for _, want := range []string{"shutting down", "wcpd stopped"} {
		if !strings.Contains(d.logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, d.logs)
		}
	}
}

func TestSighupReload(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	// A valid change: log level debug becomes live (API requests are logged at debug).
	writeConfig(t, d.cfgPath, strings.Replace(baseConfig(d.dir, d.dbURL, ""), "level: info", "level: debug", 1))
	d.sigs <- syscall.SIGHUP
	waitLog(t, d.logs, "configuration reloaded")
	d.do("GET", "/api/v1/tenants", nil)
	waitLog(t, d.logs, "api request")

	// An invalid file is rejected and the daemon keeps serving with the old configuration.
	writeConfig(t, d.cfgPath, baseConfig(d.dir, d.dbURL, "bogusKey: 1\n"))
	d.sigs <- syscall.SIGHUP
	waitLog(t, d.logs, "reload rejected")
	if !strings.Contains(d.logs.String(), "bogusKey") {
		t.Errorf("rejection does not name the bad key:\n%s", d.logs)
	}
	if code, body := d.do("PUT", "/api/v1/tenants/after", tenant("after")); code != http.StatusCreated {
		t.Fatalf("apply after rejected reload: %d %s", code, body)
	}
	d.waitReady("tenants", "after")

	// A key that needs a restart is reported, not applied.
	writeConfig(t, d.cfgPath, strings.Replace(baseConfig(d.dir, d.dbURL, ""), "node: testnode", "node: other", 1))
	d.sigs <- syscall.SIGHUP
	waitLog(t, d.logs, "need a restart")
}

func waitLog(t *testing.T, logs *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(logs.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("logs never showed %q:\n%s", want, logs)
}

// The daemon survives its database connections being killed: the pool
// reconnects, the listener re-LISTENs and re-lists, and work resumes.
func TestSurvivesTerminatedBackends(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, d.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var killed int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no wcpd backends to terminate")
	}
	// The first request after the kill may hit a dead pooled connection; it must recover.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := d.do("PUT", "/api/v1/tenants/survivor", tenant("survivor"))
		if code == http.StatusCreated || code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("API did not recover: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.waitReady("tenants", "survivor")
}

func TestBadConfigExitsNaming(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wcpd.yaml")
	writeConfig(t, cfg, "controllers:\n  workers: 0\nnosuchkey: true\n")
	var out bytes.Buffer
	code := RunEnv(context.Background(), []string{"serve", "--config", cfg}, nil,
		Env{Environ: []string{}, Stdout: &out, Stderr: &out})
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d; output:\n%s", code, ExitUsage, out.String())
	}
	for _, want := range []string{"controllers.workers", "nosuchkey"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not name %q:\n%s", want, out.String())
		}
	}
}

func TestUnreachableDatabaseExits(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wcpd.yaml")
	url := "postgres://postgres@/wcp360?host=" + dir + "&sslmode=disable&connect_timeout=2"
	writeConfig(t, cfg, baseConfig(dir, url, ""))
	var out bytes.Buffer
	code := RunEnv(context.Background(), []string{"serve", "--config", cfg}, nil,
		Env{Environ: []string{}, Stdout: &out, Stderr: &out})
	if code != ExitFailure {
		t.Fatalf("exit %d, want %d; output:\n%s", code, ExitFailure, out.String())
	}
	if !strings.Contains(out.String(), "database") {
		t.Errorf("output does not say the database is the problem:\n%s", out.String())
	}
}

func TestMigrateCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wcpd.yaml")
	writeConfig(t, cfg, baseConfig(dir, pgtest.New(t), ""))
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if code := RunEnv(context.Background(), append(args, "--config", cfg), nil,
			Env{Environ: []string{}, Stdout: &out, Stderr: &out}); code != 0 {
			t.Fatalf("wcpd %v: exit %d\n%s", args, code, out.String())
		}
		return out.String()
	}
	if out := run("migrate", "status"); !strings.Contains(out, " no") {
		t.Errorf("fresh database shows applied migrations:\n%s", out)
	}
	if out := run("migrate", "up"); strings.Contains(out, " no\n") {
		t.Errorf("after up, a migration is not applied:\n%s", out)
	}
	if out := run("migrate", "down", "all"); strings.Contains(out, "T") && !strings.Contains(out, " no") {
		t.Errorf("after down all, migrations still applied:\n%s", out)
	}
	run("migrate", "up")
	if out := run("config", "print"); !strings.Contains(out, "xxxxx") && strings.Contains(out, "password") {
		t.Errorf("config print leaks a password:\n%s", out)
	}
	if out := run("config", "validate"); !strings.Contains(out, "valid") {
		t.Errorf("config validate: %s", out)
	}
}
