package phpfpm_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/testutil/nspawn"
)

// TestSystemd runs the systemd runner against a real systemd: neither our
// machines nor CI boot with systemd, so the test boots one (package
// nspawn): on the host it builds (once, cached) a Debian 12 rootfs with
// systemd and php8.2-fpm (hack/systemd-rootfs.sh), builds this test binary
// statically, boots the rootfs with systemd-nspawn and runs the binary in
// the container's namespaces, where TestSystemd runs
// testSystemdInContainer.
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
	h := nspawn.Prepare(t, "phpfpm")
	leader := h.Boot(t, nspawn.Options{Name: fmt.Sprintf("wcp-phpfpm-%d", os.Getpid())})

	// The container is the sandbox the package's TestMain wants to run in
	// (sandbox.Inside: WCP_SANDBOX names the current mount namespace);
	// without it, TestMain would report the container's /etc/passwd,
	// which the test changes, as the host's.
	mntns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", leader))
	if err != nil {
		t.Fatal(err)
	}
	h.RunTest(t, leader, "TestSystemd", []string{systemdInnerEnv + "=1", "WCP_SANDBOX=" + mntns})
}

// systemdInnerEnv tells the test binary that it runs in the container.
const systemdInnerEnv = "WCP_PHPFPM_SYSTEMD_INNER"

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
