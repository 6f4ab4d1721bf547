package sandbox_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) }))
}

const testUser = "wcpsbxtest"

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: name, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func passwdHas(t *testing.T, user string) bool {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
		return strings.HasPrefix(l, user+":")
	})
}

func TestUseraddStaysInside(t *testing.T) {
	if sandbox.Run(t) {
		if passwdHas(t, testUser) {
			t.Fatalf("the host's /etc/passwd has %s", testUser)
		}
		_, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "getent", Args: []string{"passwd", testUser}})
		if err == nil {
			t.Fatalf("getent passwd %s finds the sandbox's user on the host", testUser)
		}
		if _, err := os.Stat("/home/" + testUser); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the sandbox's home directory is on the host: %v", err)
		}
		return
	}
	if passwdHas(t, testUser) {
		t.Fatalf("%s exists before useradd", testUser)
	}
	run(t, "useradd", "--create-home", "--shell", "/bin/sh", testUser)
	if out := run(t, "getent", "passwd", testUser); !strings.HasPrefix(out, testUser+":") {
		t.Fatalf("getent passwd %s = %q", testUser, out)
	}
	if st, err := os.Stat("/home/" + testUser); err != nil || !st.IsDir() {
		t.Fatalf("home directory: %v", err)
	}
}

func TestRenameOverEtcPasswd(t *testing.T) {
	const user = "wcpsbxrename"
	if sandbox.Run(t) {
		if passwdHas(t, user) {
			t.Fatalf("the host's /etc/passwd has %s", user)
		}
		return
	}
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, user+":x:4242:4242::/nonexistent:/usr/sbin/nologin\n"...)
	tmp := "/etc/.passwd.wcp-tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, "/etc/passwd"); err != nil {
		t.Fatalf("rename over /etc/passwd: %v", err)
	}
	if out := run(t, "getent", "passwd", user); !strings.HasPrefix(out, user+":x:4242:") {
		t.Fatalf("getent passwd %s = %q", user, out)
	}
}

func fsType(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type
}

func TestPrivateFilesystems(t *testing.T) {
	const marker = "wcp-sandbox-test-marker"
	if sandbox.Run(t) {
		if _, err := os.Stat("/srv/www/" + marker); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a file the sandbox wrote in /srv/www is on the host: %v", err)
		}
		if _, err := os.Stat("/var/lib/" + marker); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("a file the sandbox wrote in /var/lib is on the host: %v", err)
		}
		return
	}
	for _, dir := range []string{"/run", "/srv/www", "/var/lib/wcp360"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("%s is not empty: %v", dir, entries)
		}
	}
	for _, dir := range []string{"/run", "/tmp", "/dev/shm", "/srv/www", "/var/lib/wcp360", "/var/log"} {
		if got := fsType(t, dir); got != unix.TMPFS_MAGIC {
			t.Errorf("%s: filesystem type %#x, want tmpfs", dir, got)
		}
	}
	for _, dir := range []string{"/etc", "/var", "/home"} {
		if got := fsType(t, dir); got != unix.OVERLAYFS_SUPER_MAGIC {
			t.Errorf("%s: filesystem type %#x, want overlay", dir, got)
		}
	}
	// /var/log keeps the host's directories (packages expect them), no files.
	err := filepath.WalkDir("/var/log", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("/var/log has a file: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/srv/www/" + marker, "/var/lib/" + marker, "/run/" + marker} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNetwork(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces = %+v, want lo, up", ifaces)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("hello\n"))
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("read %q, %v", line, err)
	}
}

func TestPIDAndHostname(t *testing.T) {
	hostBefore, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if sandbox.Run(t) {
		if h, _ := os.Hostname(); h != hostBefore {
			t.Fatalf("host name changed from %s to %s", hostBefore, h)
		}
		if sandbox.Inside() {
			t.Fatal("Inside() in the test process")
		}
		return
	}
	if !sandbox.Inside() {
		t.Fatal("Inside() = false in the sandbox")
	}
	if pid := os.Getpid(); pid != 1 {
		t.Fatalf("pid = %d, want 1", pid)
	}
	if hostBefore != sandbox.Hostname {
		t.Fatalf("hostname = %s, want %s", hostBefore, sandbox.Hostname)
	}
	if out := run(t, "hostname"); out != sandbox.Hostname+"\n" {
		t.Fatalf("hostname prints %q", out)
	}
	if b, err := os.ReadFile("/etc/hostname"); err != nil || string(b) != sandbox.Hostname+"\n" {
		t.Fatalf("/etc/hostname = %q, %v", b, err)
	}
	if b, err := os.ReadFile("/etc/hosts"); err != nil || !strings.HasPrefix(string(b), "127.0.0.1 localhost wcp-sandbox\n::1 localhost\n") {
		t.Fatalf("/etc/hosts = %q, %v", b, err)
	}
	if got := run(t, "getent", "hosts", sandbox.Hostname); !strings.HasPrefix(got, "127.0.0.1") {
		t.Fatalf("getent hosts %s = %q", sandbox.Hostname, got)
	}
}

// findProcess returns the pids whose command line is exactly args.
func findProcess(t *testing.T, args ...string) []string {
	t.Helper()
	want := strings.Join(args, "\x00") + "\x00"
	var pids []string
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dirs {
		if b, err := os.ReadFile(f); err == nil && string(b) == want {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

func randomSeconds(t *testing.T) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1e9))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("1000.%09d", n)
}

func TestProcessesDieWithTheSandbox(t *testing.T) {
	shared := t.TempDir()
	if sandbox.RunWith(t, sandbox.Options{Binds: []sandbox.Bind{{Source: shared, Target: "/run/wcp-test"}}}) {
		b, err := os.ReadFile(filepath.Join(shared, "markers"))
		if err != nil {
			t.Fatalf("the sandbox wrote no markers: %v", err)
		}
		markers := strings.Fields(string(b))
		if len(markers) != 2 {
			t.Fatalf("markers = %q", markers)
		}
		for _, m := range markers {
			if pids := findProcess(t, "sleep", m); len(pids) > 0 {
				t.Errorf("sleep %s still runs on the host after the sandbox ended: pids %v", m, pids)
			}
		}
		return
	}
	child, orphan := randomSeconds(t), randomSeconds(t)
	// A child of the test process, never waited for...
	if _, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: "sleep", Args: []string{child}}, nil); err != nil {
		t.Fatal(err)
	}
	// ...and a daemon, orphaned into the sandbox's PID 1.
	run(t, "sh", "-c", "sleep "+orphan+" >/dev/null 2>&1 &")
	for _, m := range []string{child, orphan} {
		deadline := time.Now().Add(5 * time.Second)
		for len(findProcess(t, "sleep", m)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("sleep %s is not running", m)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := os.WriteFile("/run/wcp-test/markers", []byte(child+" "+orphan+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBindsHostsEnv(t *testing.T) {
	shared := t.TempDir()
	if !sandbox.Inside() {
		if err := os.WriteFile(filepath.Join(shared, "in"), []byte("from host"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := sandbox.Options{
		Binds: []sandbox.Bind{
			{Source: shared, Target: "/run/wcp-test/shared"},
			{Source: shared, Target: "/srv/www/ro", ReadOnly: true},
		},
		Hosts: map[string]string{"db.sandbox.test": "10.11.12.13", "v6.sandbox.test": "fd00::1"},
		Env:   []string{"WCP_SANDBOX_TEST=42"},
	}
	if sandbox.RunWith(t, opts) {
		if b, err := os.ReadFile(filepath.Join(shared, "out")); err != nil || string(b) != "from sandbox" {
			t.Fatalf("out = %q, %v", b, err)
		}
		return
	}
	if b, err := os.ReadFile("/run/wcp-test/shared/in"); err != nil || string(b) != "from host" {
		t.Fatalf("in = %q, %v", b, err)
	}
	if err := os.WriteFile("/run/wcp-test/shared/out", []byte("from sandbox"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/srv/www/ro/x", nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to a read-only bind: %v", err)
	}
	if v := os.Getenv("WCP_SANDBOX_TEST"); v != "42" {
		t.Fatalf("WCP_SANDBOX_TEST = %q", v)
	}
	if got := run(t, "getent", "hosts", "db.sandbox.test"); !strings.HasPrefix(got, "10.11.12.13 ") {
		t.Fatalf("getent hosts db.sandbox.test = %q", got)
	}
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), "v6.sandbox.test")
	if err != nil || len(addrs) != 1 || addrs[0] != "fd00::1" {
		t.Fatalf("lookup v6.sandbox.test = %v, %v", addrs, err)
	}
}

func TestPostgres(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT sum(id) FROM t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("sum = %d, %v", n, err)
	}
	if pgtest.Shared(t).Dir != "" && !strings.HasPrefix(pgtest.Shared(t).Dir, "/tmp/") {
		t.Fatalf("cluster in %s, want the sandbox's /tmp", pgtest.Shared(t).Dir)
	}
}

// envHelper selects what TestHelperResult does; it only runs when this test
// binary is started by TestRunReportsResults.
const envHelper = "WCP_SANDBOX_TEST_HELPER"

func TestHelperResult(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper of TestRunReportsResults")
	}
	if sandbox.Run(t) {
		t.Log("back in the test process")
		return
	}
	switch mode {
	case "fail":
		t.Fatal("deliberate failure")
	case "skip":
		t.Skip("deliberate skip")
	}
}

func TestRunReportsResults(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	tests := []struct {
		mode string
		fail bool
		want []string
	}{
		{"pass", false, []string{"sandbox| --- PASS: TestHelperResult", "back in the test process", "--- PASS: TestHelperResult"}},
		{"fail", true, []string{"sandbox| --- FAIL: TestHelperResult", "deliberate failure",
			"TestHelperResult failed in its sandbox (exit status 1)", "--- FAIL: TestHelperResult"}},
		{"skip", false, []string{"deliberate skip", "TestHelperResult skipped in its sandbox", "--- SKIP: TestHelperResult"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{
				Path: os.Args[0],
				Args: []string{"-test.run=^TestHelperResult$", "-test.v", "-test.count=1"},
				Env:  []string{envHelper + "=" + tt.mode, "GORACE=atexit_sleep_ms=0"},
			})
			if (err != nil) != tt.fail {
				t.Fatalf("err = %v, want failure: %v; output:\n%s", err, tt.fail, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A sandboxed test runs in the sandbox's cgroups, in a cgroup namespace
// whose root they are: every thread of it, so that what it starts from any
// goroutine is there too. /proc/self/cgroup shows the root of each v1
// hierarchy, and cgroup2's init leaf (the root of the inside has no
// processes of its own, so that it can give controllers to its children).
func TestCgroupNamespace(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mounts), " - cgroup") {
		sandbox.Unavailable(t, "no cgroup file system is mounted")
	}
	v2 := strings.Contains(string(mounts), " - cgroup2 ")
	check := func(what, procCgroup string) {
		t.Helper()
		for line := range strings.Lines(procCgroup) {
			f := strings.SplitN(strings.TrimSpace(line), ":", 3)
			want := "/"
			if f[1] == "" && v2 {
				want = "/init"
			}
			if len(f) != 3 || f[2] != want {
				t.Errorf("%s: %q, want the cgroup %s", what, line, want)
			}
		}
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	check("this process", string(self))
	outs := make(chan string, 8)
	for range cap(outs) {
		go func() {
			runtime.LockOSThread() // each on a thread of its own
			out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "cat", Args: []string{"/proc/self/cgroup"}})
			if err != nil {
				out = []byte(err.Error())
			}
			outs <- string(out)
		}()
	}
	for range cap(outs) {
		check("cat, started from another thread", <-outs)
	}
	ns, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := filepath.Glob("/proc/self/task/*/ns/cgroup")
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads: %v, %v", tasks, err)
	}
	for _, task := range tasks {
		got, err := os.Readlink(task)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil || got != ns {
			t.Errorf("%s: %s, %v; want the process's %s", task, got, err, ns)
		}
	}
}
