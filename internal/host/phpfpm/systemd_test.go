package phpfpm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// TestSystemd runs the systemd runner against a real systemd: neither our
// machines nor CI boot with systemd, so the test boots one. On the host it
// builds (once, cached) a Debian 12 rootfs with systemd and php8.2-fpm
// (hack/systemd-rootfs.sh), builds this test binary statically, boots the
// rootfs with systemd-nspawn (--volatile=overlay: the cached tree never
// changes; --private-network) and runs the binary in the container's
// namespaces (nsenter), where TestSystemd runs testSystemdInContainer.
//
// With CI (or WCP_REQUIRE_SANDBOX=1) set, every missing prerequisite is a
// failure; elsewhere a skip. A cold run builds the rootfs (~80 s, 224 MB);
// then the whole test takes ~3 s (boot ~0.3 s, the scenario ~1.7 s).
func TestSystemd(t *testing.T) {
	if os.Getenv(systemdInnerEnv) == "1" {
		testSystemdInContainer(t)
		return
	}
	if testing.Short() {
		t.Skip("-short: boots a systemd container (and builds its rootfs, once)")
	}
	required := os.Getenv("CI") != "" || os.Getenv(sandbox.EnvRequire) == "1"
	missing := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf("CI or %s=1 is set, and "+format, append([]any{sandbox.EnvRequire}, args...)...)
		}
		t.Skipf(format, args...)
	}
	switch {
	case runtime.GOOS != "linux":
		missing("systemd-nspawn needs Linux")
	case os.Geteuid() != 0:
		missing("booting a systemd container needs root")
	}
	timed := func(what string, start time.Time) { t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond)) }

	start := time.Now()
	var env []string // where the rootfs is cached and fetched from, when set
	for _, k := range []string{"WCP_ROOTFS_CACHE", "WCP_DEBIAN_MIRROR", "http_proxy", "https_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "../../../hack/systemd-rootfs.sh", Env: env, Timeout: 15 * time.Minute})
	if err != nil {
		missing("no systemd rootfs (hack/systemd-rootfs.sh): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	rootfs := lines[len(lines)-1]
	if !filepath.IsAbs(rootfs) {
		t.Fatalf("hack/systemd-rootfs.sh printed %q, not a path", rootfs)
	}
	timed("rootfs "+rootfs, start)
	nspawn, err := cmdrun.LookPath("systemd-nspawn", "/usr/bin")
	if err != nil {
		missing("%v (hack/systemd-rootfs.sh installs it)", err)
	}
	nsenter, err := cmdrun.LookPath("nsenter", "/usr/bin")
	if err != nil {
		missing("%v (util-linux)", err)
	}

	// This package's tests, statically linked: they run in any rootfs.
	start = time.Now()
	bin := t.TempDir()
	goTool, err := cmdrun.LookPath("go", "/usr/local/go/bin")
	if err != nil {
		missing("%v", err)
	}
	if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: goTool, Args: []string{"test", "-c", "-o", filepath.Join(bin, "phpfpm.test"), "."},
		Env: append(os.Environ(), "CGO_ENABLED=0"), Timeout: 5 * time.Minute}); err != nil {
		t.Fatalf("build the test binary: %v", err)
	}
	timed("static test binary", start)

	start = time.Now()
	leader := bootContainer(t, nspawn, nsenter, rootfs, bin)
	timed("boot", start)

	// The container is the sandbox the package's TestMain wants to run in
	// (sandbox.Inside: WCP_SANDBOX names the current mount namespace);
	// without it, TestMain would report the container's /etc/passwd,
	// which the test changes, as the host's.
	mntns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", leader))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	out, err = cmdrun.Run(t.Context(), cmdrun.Cmd{Path: nsenter,
		Args: []string{"-t", strconv.Itoa(leader), "-a", "--", "/wcp360-test/phpfpm.test",
			"-test.run", "^TestSystemd$", "-test.v", "-test.count=1", "-test.timeout=4m"},
		Env: []string{systemdInnerEnv + "=1", "WCP_SANDBOX=" + mntns}, Timeout: 5 * time.Minute})
	timed("test in the container", start)
	t.Logf("in the container:\n%s", indent(string(out)))
	if err != nil {
		t.Fatalf("the test in the container failed: %v", err)
	}
}

// systemdInnerEnv tells the test binary that it runs in the container.
const systemdInnerEnv = "WCP_PHPFPM_SYSTEMD_INNER"

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
}

// bootContainer boots rootfs with systemd-nspawn, bin bound read-only at
// /wcp360-test, and returns the container's PID 1 (as the host sees it)
// once systemd has finished booting. Cleanup powers it off.
//
// nspawn runs in cgroups of its own, made here and removed afterwards: it
// puts the container's cgroups below its own (payload/, supervisor/), and
// they would otherwise stay behind in the host's hierarchy.
func bootContainer(t *testing.T, nspawn, nsenter, rootfs, bin string) int {
	t.Helper()
	name := fmt.Sprintf("wcp-phpfpm-%d", os.Getpid())
	cgroups := ownCgroups(t, name)
	console := filepath.Join(t.TempDir(), "console.log")
	logf, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	args := append([]string{"-c", `while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"`, "sh"},
		cgroups...)
	args = append(args, "--", nspawn, "--quiet", "--directory", rootfs, "--boot", "--volatile=overlay",
		"--register=no", "--keep-unit", "--private-network", "--machine", name, "--link-journal=no",
		"--resolv-conf=off", "--timezone=off", "--console=read-only", "--bind-ro="+bin+":/wcp360-test")
	p, err := cmdrun.Start(context.WithoutCancel(t.Context()), cmdrun.Cmd{Path: "/bin/sh", Args: args}, logf)
	if err != nil {
		t.Fatal(err)
	}
	consoleTail := func() string {
		b, _ := os.ReadFile(console)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return indent(string(b))
	}
	t.Cleanup(func() {
		// SIGTERM: nspawn asks the container's systemd to power off.
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			t.Errorf("the container did not power off in 30 s; killing it")
			_ = p.Signal(syscall.SIGKILL)
			<-p.Done()
		}
		removeCgroups(t, cgroups)
	})

	// PID 1 of the container is nspawn's child running systemd.
	leader := 0
	deadline := time.Now().Add(30 * time.Second)
	for leader == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no systemd in the container after 30 s; console:\n%s", consoleTail())
		}
		select {
		case <-p.Done():
			t.Fatalf("systemd-nspawn exited (%d); console:\n%s", p.ExitCode(), consoleTail())
		case <-time.After(20 * time.Millisecond):
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.Pid(), p.Pid()))
		for f := range strings.FieldsSeq(string(b)) {
			if comm, _ := os.ReadFile("/proc/" + f + "/comm"); strings.TrimSpace(string(comm)) == "systemd" {
				leader, _ = strconv.Atoi(f)
			}
		}
	}
	// systemctl needs systemd's private socket, made early in the boot.
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", leader)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /run/systemd/private in the container after 30 s; console:\n%s", consoleTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: nsenter,
		Args: []string{"-t", strconv.Itoa(leader), "-a", "--", "systemctl", "is-system-running", "--wait"}, Timeout: time.Minute})
	if state := strings.TrimSpace(string(out)); state != "running" && state != "degraded" {
		t.Fatalf("the container's systemd: %q, %v; console:\n%s", state, err, consoleTail())
	}
	return leader
}

// ownCgroups makes a cgroup named name below the current one in each
// hierarchy nspawn uses (the cgroup2 one, and name=systemd on a hybrid
// host) and returns their directories.
func ownCgroups(t *testing.T, name string) []string {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{} // "" (cgroup2) or "name=systemd" → path
	for line := range strings.Lines(string(self)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 && (f[1] == "" || f[1] == "name=systemd") {
			paths[f[1]] = f[2]
		}
	}
	mounts, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer mounts.Close()
	var dirs []string
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		// id parent dev root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		var hier string
		switch {
		case g[0] == "cgroup2":
		case g[0] == "cgroup" && slices.Contains(strings.Split(g[2], ","), "name=systemd"):
			hier = "name=systemd"
		default:
			continue
		}
		if path, ok := paths[hier]; ok && f[3] == "/" {
			dir := filepath.Join(f[4], path, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		t.Fatal("no cgroup hierarchy found for systemd-nspawn")
	}
	return dirs
}

// removeCgroups removes the cgroups (and what nspawn made below them),
// deepest first, once their processes are gone.
func removeCgroups(t *testing.T, dirs []string) {
	t.Helper()
	for _, dir := range dirs {
		var all []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
		slices.Reverse(all)
		for _, d := range all {
			var err error
			for range 100 {
				if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
					break
				}
				time.Sleep(50 * time.Millisecond) // EBUSY: processes still exiting
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cgroup %s left behind: %v", d, err)
			}
		}
	}
}

// testSystemdInContainer is the systemd runner's test proper: root in a
// container whose PID 1 is systemd.
func testSystemdInContainer(t *testing.T) {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Fatal("systemd is not PID 1 here")
	}
	ctx := t.Context()
	// What the sandbox's tmpfs is elsewhere: tenants' homes are below it.
	if err := os.MkdirAll("/srv/www", 0o755); err != nil {
		t.Fatal(err)
	}
	withSystemd := func(o *phpfpm.Options) { o.Runner = phpfpm.RunnerSystemd }
	m := newManager(t, withSystemd)
	// A tenant name with a '-': escaped in the slice's name.
	p := newTenant(t, "acme-co", 20000)
	const (
		svc   = "wcp360-php-acme-co-8.2.service"
		sock  = "wcp360-php-acme-co-8.2.socket"
		slice = `wcp360-tenant-acme\x2dco.slice`
	)
	cgroup := "/wcp360.slice/wcp360-tenant.slice/" + slice + "/" + svc

	// Apply: the units run, the master in the tenant's slice, its worker as the tenant.
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if st := unitProps(t, sock, "ActiveState"); st["ActiveState"] != "active" {
		t.Fatalf("%s: %v", sock, st)
	}
	pid := mainPID(t, svc)
	if pidFile, _ := master(t, m, p); pidFile != pid {
		t.Errorf("pid file %d, MainPID %d", pidFile, pid)
	}
	if cg := cgroupOf(pid); cg != cgroup {
		t.Errorf("master %d in cgroup %q, want %q", pid, cg, cgroup)
	}
	info := probe(t, m, p)
	if info.EUID != p.UID {
		t.Errorf("PHP runs as uid %d, want %d", info.EUID, p.UID)
	}
	if cg := cgroupOf(info.PID); cg != cgroup {
		t.Errorf("worker %d in cgroup %q, want %q", info.PID, cg, cgroup)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(m.Socket(p.Tenant, p.Version), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Mode&0o7777 != 0o660 || int(st.Uid) != p.UID || st.Gid != 33 {
		t.Errorf("socket mode %o owner %d:%d, want socket 0660 %d:33", st.Mode, st.Uid, st.Gid, p.UID)
	}

	// A config change: a graceful reload, the same main process.
	p.MemoryLimit = 96 << 20
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if got := probe(t, m, p).MemoryLimit; got != "96M" {
		t.Errorf("memory_limit %q after the reload, want 96M", got)
	}
	if pid2 := mainPID(t, svc); pid2 != pid {
		t.Errorf("MainPID %d became %d: restarted, not reloaded", pid, pid2)
	}

	// The master killed: systemd restarts it (Restart=on-failure), and
	// the socket, held by systemd, never went away.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "systemd to restart the master", 15*time.Second, func() bool {
		p := unitProps(t, svc, "ActiveState", "MainPID")
		return p["ActiveState"] == "active" && p["MainPID"] != "0" && p["MainPID"] != strconv.Itoa(pid)
	})
	pid = mainPID(t, svc)
	if got := probe(t, m, p).MemoryLimit; got != "96M" {
		t.Errorf("memory_limit %q after the restart, want 96M", got)
	}
	mustConverged(t, m, p)

	// wcpd restarts: the master runs on, and a new Manager adopts it.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatal("Close stopped the master")
	}
	m = newManager(t, withSystemd)
	if err := m.Adopt(ctx); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	mustConverged(t, m, p)
	mustApply(t, m, p)
	if pid2 := mainPID(t, svc); pid2 != pid {
		t.Errorf("Apply after Adopt replaced master %d by %d", pid, pid2)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// IdleStop: the idle master is stopped, the socket stays, and the next
	// request has systemd start it (socket activation).
	p.IdleTimeout = time.Second
	m = newManager(t, func(o *phpfpm.Options) { withSystemd(o); o.IdleStop = time.Second })
	if err := m.Adopt(ctx); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	mustApply(t, m, p)
	waitFor(t, "the idle master to be stopped", 20*time.Second, func() bool {
		return unitProps(t, svc, "ActiveState")["ActiveState"] == "inactive"
	})
	if st := unitProps(t, sock, "ActiveState"); st["ActiveState"] != "active" {
		t.Fatalf("%s after the idle stop: %v", sock, st)
	}
	if alive(pid) {
		t.Errorf("master %d still runs after the idle stop", pid)
	}
	if m.Stats().IdleStops != 1 {
		t.Errorf("Stats %+v, want 1 idle stop", m.Stats())
	}
	mustConverged(t, m, p)
	start := time.Now()
	info = probe(t, m, p)
	t.Logf("first request, master start included: %s", time.Since(start).Round(time.Millisecond))
	if info.EUID != p.UID || info.MemoryLimit != "96M" {
		t.Errorf("after activation: uid %d, memory_limit %q", info.EUID, info.MemoryLimit)
	}
	pid = mainPID(t, svc)
	if cg := cgroupOf(pid); cg != cgroup {
		t.Errorf("activated master %d in cgroup %q, want %q", pid, cg, cgroup)
	}
	mustConverged(t, m, p)
	waitFor(t, "the sweep to see the activated master", 10*time.Second, func() bool { return m.Stats().Running == 1 })

	// Remove: units and files gone.
	if err := m.Remove(ctx, p.Tenant, p.Version); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, u := range []string{svc, sock} {
		if st := unitProps(t, u, "LoadState"); st["LoadState"] != "not-found" {
			t.Errorf("%s after Remove: %v", u, st)
		}
	}
	if alive(pid) {
		t.Errorf("master %d runs after Remove", pid)
	}
	for _, f := range []string{m.Socket(p.Tenant, p.Version), runDir + "/held/acme-co-8.2.sock", runDir + "/acme-co-8.2.pid",
		runDir + "/acme-co-8.2.loaded", "/etc/wcp360/php-fpm/acme-co-8.2.conf", "/etc/wcp360/php-fpm/acme-co-8.2.pool.conf"} {
		if _, err := os.Lstat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Remove: %v", f, err)
		}
	}
}

// unitProps reads properties of a unit with systemctl (not through the
// code under test).
func unitProps(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := mustRun(t, "systemctl", "show", "--property="+strings.Join(props, ","), unit)
	m := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[k] = v
		}
	}
	return m
}

func mainPID(t *testing.T, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(unitProps(t, unit, "MainPID")["MainPID"])
	if err != nil || pid == 0 {
		t.Fatalf("%s has no main process", unit)
	}
	return pid
}

// cgroupOf is the process's cgroup in the systemd hierarchy.
func cgroupOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 && (f[1] == "name=systemd" || f[0] == "0") {
			return f[2]
		}
	}
	return ""
}
