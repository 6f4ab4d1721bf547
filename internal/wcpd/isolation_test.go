package wcpd

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/cli"
	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/host/isolation"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// On this machine's hybrid cgroups (v1 controllers, cgroup2 without them)
// a tenant's limits go through the v1 fallback: memoryMax, cpu and pids
// are enforced, memoryHigh and io are not and status says why; its PHP
// master and workers are born in its cgroups, so a PHP request that
// allocates past memoryMax is killed by the kernel; a memory limit written
// by hand is drift, corrected; usage and pressure are in the status and
// /metrics; the disk quota is unsupported on the sandbox's tmpfs and says
// so. On a pure cgroup2 host the same test checks the cgroup2 driver.
func TestTenantLimitsEnforced(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	capab, err := cgroup.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	v2 := capab.Enforced() == nil
	if !v2 && capab.V1["memory"] == "" {
		t.Fatalf("neither cgroup2 with controllers nor the v1 memory controller: %s", capab)
	}
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "resyncInterval: 10s", "resyncInterval: 1h", 1)
	})
	spec := map[string]any{
		"limits": map[string]any{"memoryMax": "64Mi", "memoryHigh": "48Mi", "cpu": "50%", "pids": 64,
			"io":   map[string]any{"writeBPS": "10Mi"},
			"disk": map[string]any{"bytes": "100Mi"}},
		"php": map[string]any{"memoryLimit": "512Mi"},
	}
	ten := tenant("alpha")
	ten["spec"] = spec
	if code, body := d.do("PUT", "/api/v1/tenants/alpha", ten); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	if code, body := d.do("PUT", "/api/v1/domains/alpha.test", domainManifest("alpha.test", "alpha", nil)); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	st := d.waitReady("tenants", "alpha")
	d.waitReady("domains", "alpha.test")

	rs := st.Resources
	if rs == nil || rs.Usage == nil {
		t.Fatalf("status.resources %+v: want the driver and usage", rs)
	}
	wantEnforced := []string{"memoryMax", "cpu", "pids"}
	if v2 {
		wantEnforced = []string{"memoryHigh", "memoryMax", "cpu", "pids"}
	}
	for _, l := range wantEnforced {
		if !slices.Contains(rs.Enforced, l) {
			t.Errorf("%s not enforced by %s: %+v", l, rs.Driver, rs)
		}
	}
	if !v2 {
		if !strings.HasPrefix(rs.Driver, "cgroup v1") || rs.NotEnforced["memoryHigh"] == "" {
			t.Errorf("driver %q, memoryHigh %q: want cgroup v1 saying why memoryHigh is not enforced", rs.Driver, rs.NotEnforced["memoryHigh"])
		}
		c := condition(st, isolation.ConditionLimits)
		if c == nil || c.Status != v1alpha1.ConditionFalse || c.Reason != isolation.ReasonNotEnforced || !strings.Contains(c.Message, "memoryHigh") {
			t.Errorf("Limits condition %+v: want False NotEnforced naming memoryHigh", c)
		}
	}
	// The sandbox's /srv/www is a tmpfs: no disk to throttle.
	if !strings.Contains(rs.NotEnforced["io"], "has no block device to throttle") || slices.Contains(rs.Enforced, "io") {
		t.Errorf("io on a tmpfs /srv/www: enforced %v, not enforced %q; want why not", rs.Enforced, rs.NotEnforced["io"])
	}
	if rs.Pressure == nil {
		t.Errorf("no pressure in status.resources (PSI is read from cgroup2, which this host has at %q)", capab.Unified)
	}
	if rs.Disk == nil || rs.Disk.Quota || rs.Disk.Reason == "" {
		t.Errorf("status.resources.disk %+v: want no quota (tmpfs) and why", rs.Disk)
	}
	if c := condition(st, isolation.ConditionDiskQuota); c == nil || c.Reason != isolation.ReasonQuotaUnsupported {
		t.Errorf("DiskQuota condition %+v: want QuotaUnsupported", c)
	}

	// PHP is born in the tenant's cgroups: the master and its workers.
	acct := st.Account
	pub := "/srv/www/alpha/domains/alpha.test/public"
	writeAs(t, filepath.Join(pub, "index.php"), `<?php echo getmypid();`, acct.UID, acct.GID)
	writeAs(t, filepath.Join(pub, "hog.php"), `<?php $s = str_repeat("x", 200 << 20); echo strlen($s);`, acct.UID, acct.GID)
	code, body := get(t, "alpha.test", "/")
	worker, err := strconv.Atoi(body)
	if code != http.StatusOK || err != nil {
		t.Fatalf("PHP page: %d %q", code, body)
	}
	master := parentOf(t, worker)
	for _, pid := range []int{master, worker} {
		cg := readCgroups(t, pid)
		for _, h := range cgroupHierarchies(capab) {
			if !strings.HasSuffix(cg[h], "/wcp360/alpha") {
				t.Errorf("pid %d is in %q of hierarchy %q, want .../wcp360/alpha (all: %v)", pid, cg[h], h, cg)
			}
		}
	}

	// 200 MiB under memoryMax 64Mi: the kernel kills the worker.
	if code, body := get(t, "alpha.test", "/hog.php"); code == http.StatusOK {
		t.Errorf("a 200 MiB PHP request under memoryMax 64Mi answered %d %q", code, body)
	}
	if n := d.metricLabelled("wcp360_tenant_oom_kills_total", `tenant="alpha"`); n < 1 {
		t.Errorf("wcp360_tenant_oom_kills_total of alpha = %v after the hog, want ≥ 1", n)
	}
	if code, _ := get(t, "alpha.test", "/"); code != http.StatusOK {
		t.Errorf("PHP after the OOM kill: %d, want 200 (the master forks a new worker)", code)
	}

	// Half a CPU for a loop that wants a whole one: the tenant stalls on
	// CPU, and its PSI trigger records an event.
	writeAs(t, filepath.Join(pub, "burn.php"), `<?php $end = microtime(true) + 3; while (microtime(true) < $end) {} echo "done";`, acct.UID, acct.GID)
	if code, body := get(t, "alpha.test", "/burn.php"); code != http.StatusOK || body != "done" {
		t.Errorf("burn.php: %d %q", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !hasEvent(d.events("alpha"), "Warning", isolation.ReasonPressureStall, "cpu pressure") {
		time.Sleep(100 * time.Millisecond)
	}
	if !hasEvent(d.events("alpha"), "Warning", isolation.ReasonPressureStall, "cpu pressure") {
		t.Errorf("no PressureStall event for cpu after 3 s at half a CPU; events: %+v", d.events("alpha"))
	}
	if n := d.metricLabelled("wcp360_tenant_cpu_throttled_periods_total", `tenant="alpha"`); n < 1 {
		t.Errorf("wcp360_tenant_cpu_throttled_periods_total of alpha = %v, want ≥ 1", n)
	}

	// The host stalls too when more threads want CPU than it has: logged
	// and counted.
	stop := time.Now().Add(2500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 2 * runtime.NumCPU() {
		wg.Go(func() {
			for time.Now().Before(stop) { //nolint:revive // burning CPU is the point
			}
		})
	}
	wg.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && d.metricLabelled("wcp360_host_pressure_stalls_total", `resource="cpu"`) < 1 {
		time.Sleep(100 * time.Millisecond)
	}
	if n := d.metricLabelled("wcp360_host_pressure_stalls_total", `resource="cpu"`); n < 1 || !strings.Contains(d.logs.String(), "the host stalls") {
		t.Errorf("wcp360_host_pressure_stalls_total{cpu} = %v after 2.5 s of twice as many busy threads as CPUs; want ≥ 1 and a log line", n)
	}

	// A limit written by hand is drift: reported, then corrected. (Lower:
	// v1 refuses a memory limit above memory+swap's, which is 64Mi too.)
	file := memoryLimitFile(capab, "alpha")
	if err := os.WriteFile(file, []byte("50331648"), 0o644); err != nil {
		t.Fatal(err)
	}
	if drift := d.liveDrift("alpha"); len(drift) != 1 || !strings.Contains(drift[0], "50331648") {
		t.Errorf("live drift after a hand write of %s: %q, want the one memory limit", file, drift)
	}
	d.reconcile("alpha")
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !hasEvent(d.events("alpha"), "Normal", "DriftCorrected", "memory") {
		time.Sleep(50 * time.Millisecond)
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Errorf("%s = %s after the reconcile, want %d", file, b, 64<<20)
	}
	// wcp describe puts spec, use and enforcement side by side.
	var out, errOut strings.Builder
	if code := cli.Run(t.Context(), []string{"--socket", d.socket, "describe", "tenant", "alpha"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("wcp describe tenant alpha: %d %s", code, errOut.String())
	}
	described := strings.Join(strings.Fields(out.String()), " ")
	wants := []string{"Resources (read ", "memoryMax 64Mi", "OOM kills yes", "pids 64", "Pressure (share of time stalled", "memoryHigh 48Mi"}
	if !v2 {
		wants = append(wants, "NO: cgroup v1 has no memory.high")
	}
	for _, want := range wants {
		if !strings.Contains(described, want) {
			t.Errorf("wcp describe tenant alpha lacks %q:\n%s", want, out.String())
		}
	}
	st = d.status("alpha")
	if st.Resources == nil || st.Resources.Usage == nil || st.Resources.Usage.OOMKills < 1 {
		t.Errorf("status.resources.usage %+v after the hog: want oomKills ≥ 1", st.Resources)
	}
}

// parentOf is the parent pid of pid.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, the last ')' ends it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

// readCgroups maps each hierarchy of /proc/<pid>/cgroup ("memory",
// "cpu,cpuacct", "" for cgroup2) to the process's cgroup in it.
func readCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for l := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(l), ":", 3)
		if len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
	return out
}

// cgroupHierarchies are the /proc/<pid>/cgroup keys of the hierarchies a
// tenant's processes must be in.
func cgroupHierarchies(c cgroup.Capability) []string {
	if c.Enforced() == nil {
		return []string{""}
	}
	var hs []string
	for _, ctrl := range []string{"memory", "cpu", "pids"} {
		if mnt := c.V1[ctrl]; mnt != "" {
			hs = append(hs, v1Key(mnt))
		}
	}
	if c.Unified != "" {
		hs = append(hs, "")
	}
	return hs
}

// v1Key is the controllers of a v1 mount as /proc/<pid>/cgroup names them
// ("/sys/fs/cgroup/cpu,cpuacct" → "cpu,cpuacct").
func v1Key(mount string) string {
	if real, err := filepath.EvalSymlinks(mount); err == nil {
		mount = real
	}
	return filepath.Base(mount)
}

func memoryLimitFile(c cgroup.Capability, tenant string) string {
	if c.Enforced() == nil {
		return filepath.Join(c.Unified, "wcp360", tenant, "memory.max")
	}
	return filepath.Join(c.V1["memory"], "wcp360", tenant, "memory.limit_in_bytes")
}

// metricLabelled is the sample of name with exactly labels
// (`tenant="alpha"`), or -1 when there is none.
func (d *daemonUnderTest) metricLabelled(name, labels string) float64 {
	d.t.Helper()
	code, b := d.do("GET", "/metrics", nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: %d %s", code, b)
	}
	v, ok, err := metrics.Value(b, name+"{"+labels+"}")
	if err != nil {
		d.t.Fatalf("GET /metrics: %s: %v", name, err)
	}
	if !ok {
		return -1
	}
	return v
}
