package cgroup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// The V1 tests run on this machine's kernel, in a sandbox each, on a
// hybrid or legacy host: cgroup v1 with memory, cpu, cpuacct, blkio and
// pids (and, for PSI, cgroup2). /sys/fs/cgroup is the host's even in the
// sandbox: each test works in a subtree of its own, wcp360-test-<random>,
// removed when it ends, by the sandboxed test and again by the test
// process outside, even when the sandboxed run died.

// envV1Subtree carries the test's subtree into its sandbox.
const envV1Subtree = "WCP_TEST_V1_SUBTREE"

// v1Tenant is the tenant of the V1 tests.
const v1Tenant = "acme"

// v1Required are the v1 controllers the V1 tests need.
var v1Required = []string{"memory", "cpu", "cpuacct", "blkio", "pids"} //nolint:gochecknoglobals // read only

// v1HostCapability is this host's capability; a host without the v1
// controllers fails the test in CI (CI or WCP_REQUIRE_SANDBOX=1 set) and
// skips it elsewhere.
func v1HostCapability(t *testing.T) Capability {
	t.Helper()
	c, err := Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, n := range v1Required {
		if _, ok := c.V1[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		reason := fmt.Sprintf("this host (%s mode) has no cgroup v1 %s", c.Mode, strings.Join(missing, ", "))
		if os.Getenv("CI") != "" || os.Getenv(sandbox.EnvRequire) == "1" {
			t.Fatalf("%s (required: CI or %s=1 is set)", reason, sandbox.EnvRequire)
		}
		t.Skipf("%s; skipped (set %s=1 to make this a failure)", reason, sandbox.EnvRequire)
	}
	return c
}

// v1Sandbox runs the test in a sandbox with a subtree of its own, as
// sandbox.Run: it returns true in the test process, where the caller
// returns, and false in the sandbox, where the test goes on.
func v1Sandbox(t *testing.T) bool {
	t.Helper()
	if sandbox.Inside() {
		return false
	}
	c := v1HostCapability(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	subtree := "wcp360-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { v1RemoveSubtree(t, c, subtree) })
	sandbox.RunWith(t, sandbox.Options{Env: []string{envV1Subtree + "=" + subtree}})
	return true
}

// v1RemoveSubtree removes the subtree in every hierarchy and in cgroup2,
// killing what is left in it.
func v1RemoveSubtree(t *testing.T, c Capability, subtree string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dirs := map[string]bool{}
	for _, m := range c.V1 {
		dirs[filepath.Join(m, subtree)] = true
	}
	if c.Unified != "" {
		dirs[filepath.Join(c.Unified, subtree)] = true
	}
	for d := range dirs {
		if err := removeTree(ctx, d); err != nil {
			t.Errorf("clean up: %v", err)
		}
	}
}

// newV1 is the V1 driver of the sandboxed test, with its subtree removed
// when the test ends.
func newV1(t *testing.T) *V1 {
	t.Helper()
	c := v1HostCapability(t)
	subtree := os.Getenv(envV1Subtree)
	if subtree == "" {
		t.Fatal("no subtree: run the test through v1Sandbox")
	}
	v, err := NewV1(c, V1Options{Subtree: subtree})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v1RemoveSubtree(t, c, subtree) })
	return v
}

func mustApply(t *testing.T, v *V1, l Limits) []host.Difference {
	t.Helper()
	ds, err := v.Apply(v1Tenant, l)
	if err != nil {
		t.Fatalf("Apply(%+v): %v", l, err)
	}
	if again, err := v.Observe(v1Tenant, l); err != nil || len(again) > 0 {
		t.Fatalf("Observe after Apply(%+v): %v, %v; want no differences", l, again, err)
	}
	return ds
}

// syncBuffer is a bytes.Buffer for a child's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChild starts the test binary with env through v.StartIn.
func startChild(t *testing.T, v *V1, env ...string) (*cmdrun.Process, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	var p *cmdrun.Process
	err := v.StartIn(v1Tenant, func(fd int) error {
		var err error
		// /proc/self/exe: the binary's path may not be visible in the
		// sandbox.
		p, err = cmdrun.Start(t.Context(), cmdrun.Cmd{Path: "/proc/self/exe", Env: env, UseCgroupFD: fd >= 0, CgroupFD: fd}, out)
		return err
	})
	if err != nil {
		t.Fatalf("StartIn: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Wait()
	})
	return p, out
}

func signalOf(err error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func mustUsage(t *testing.T, v *V1) Usage {
	t.Helper()
	u, err := v.Usage(v1Tenant)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestV1MemoryMax: a child born through StartIn that touches 128 MiB under
// memoryMax 32 MiB is OOM-killed (memory.limit_in_bytes and memsw), the
// counters say so, and it runs to its end once Apply raised the limit.
func TestV1MemoryMax(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	mustApply(t, v, Limits{MemoryMax: 32 << 20})
	memDir := v.dir(v1Tenant, "memory")
	if got := readTrim(t, filepath.Join(memDir, "memory.limit_in_bytes")); got != strconv.Itoa(32<<20) {
		t.Errorf("memory.limit_in_bytes = %s", got)
	}

	start := time.Now()
	p, out := startChild(t, v, envHogMiB+"=128")
	err := p.Wait()
	if sig, ok := signalOf(err); !ok || sig != syscall.SIGKILL {
		t.Fatalf("the 128 MiB hog under memoryMax 32 MiB ended with %v (output %q), want SIGKILL", err, out)
	}
	u := mustUsage(t, v)
	oc := keyValues(t, filepath.Join(memDir, "memory.oom_control"))
	// failcnt is only logged: with memsw at the same value, the memsw
	// counter refuses the charge first, and on 6.18 neither failcnt
	// counts it (without memsw, memory.failcnt does).
	failcnt := mustReadInt(t, filepath.Join(memDir, "memory.failcnt"))
	if _, err := os.Stat(filepath.Join(memDir, "memory.memsw.failcnt")); err == nil {
		failcnt += mustReadInt(t, filepath.Join(memDir, "memory.memsw.failcnt"))
	}
	t.Logf("hog killed by SIGKILL after %v: oom_control %v, failcnt (memory + memsw) %d, max_usage_in_bytes %d; Usage %+v",
		time.Since(start).Round(time.Millisecond), oc, failcnt, u.MemoryPeak, u)
	if oc["oom_kill"] < 1 || u.OOMKills < 1 {
		t.Errorf("oom_kill %d, Usage.OOMKills %d: want >= 1", oc["oom_kill"], u.OOMKills)
	}
	// The kernel may charge a little past the limit before it kills
	// (seen: one page).
	if u.MemoryPeak > 32<<20+1<<20 || u.MemoryPeak < 16<<20 {
		t.Errorf("MemoryPeak = %d, want about the 32 MiB limit", u.MemoryPeak)
	}
	if len(u.Missing) > 0 {
		t.Errorf("Usage.Missing = %v, want all read on this host", u.Missing)
	}

	// Raising the limit raises memsw first (the kernel keeps limit <= memsw).
	// 1 GiB: a race-enabled hog needs a shadow page per page it touches.
	ds := mustApply(t, v, Limits{MemoryMax: 1 << 30})
	want := []host.Difference{
		{Field: "memory.memsw.limit_in_bytes", Want: strconv.Itoa(1 << 30), Have: strconv.Itoa(32 << 20)},
		{Field: "memory.limit_in_bytes", Want: strconv.Itoa(1 << 30), Have: strconv.Itoa(32 << 20)},
	}
	if _, err := os.Stat(filepath.Join(memDir, "memory.memsw.limit_in_bytes")); errors.Is(err, fs.ErrNotExist) {
		want = want[1:]
	}
	if d := cmp.Diff(want, ds); d != "" {
		t.Errorf("Apply 1 GiB (-want +got):\n%s", d)
	}
	p, out = startChild(t, v, envHogMiB+"=128")
	if err := p.Wait(); err != nil {
		t.Fatalf("the 128 MiB hog under memoryMax 1 GiB: %v (output %q)", err, out)
	}
	if !strings.Contains(out.String(), "touched 128 MiB") {
		t.Errorf("hog output %q", out)
	}
	if u := mustUsage(t, v); u.MemoryPeak < 128<<20 {
		t.Errorf("MemoryPeak %d after the 128 MiB hog", u.MemoryPeak)
	}
}

// TestV1CPU: a busy loop of two threads under cpu 50% gets about half a
// CPU, and cpu.stat counts the throttling; without the limit it gets more.
func TestV1CPU(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	mustApply(t, v, Limits{CPUPercent: 50})
	dir := v.dir(v1Tenant, "cpu")
	if q, p := readTrim(t, filepath.Join(dir, "cpu.cfs_quota_us")), readTrim(t, filepath.Join(dir, "cpu.cfs_period_us")); q != "50000" || p != "100000" {
		t.Errorf("cfs_quota_us %s, cfs_period_us %s; want 50000 per 100000", q, p)
	}
	// This host may be busy with other work: weigh the test's subtree
	// far above its siblings, so the busy loop gets what its quota allows
	// and the figure measures the quota, not the load. The sandbox's own
	// cgroup, the root of its cgroup namespace, gets the same when it has
	// one (the host's root cgroup refuses, EINVAL).
	write(t, filepath.Join(filepath.Dir(dir), "cpu.shares"), "262144")
	_ = os.WriteFile(filepath.Join(v.hierarchy("cpu").mount, "cpu.shares"), []byte("262144"), 0o644)
	burn := func(ms int) (float64, Usage, Usage) {
		before := mustUsage(t, v)
		start := time.Now()
		p, out := startChild(t, v, fmt.Sprintf("%s=burn %d", envRole, ms))
		if err := p.Wait(); err != nil {
			t.Fatalf("burn: %v (output %q)", err, out)
		}
		wall := time.Since(start)
		after := mustUsage(t, v)
		return float64(after.CPU-before.CPU) / float64(wall), before, after
	}
	// capped runs the 1.5 s busy loop under l (cpu 50%) and checks it got
	// its quota per period; it returns the periods the loop ran in.
	capped := func(l Limits) uint64 {
		t.Helper()
		c := l.CPUMax()
		quota, period := time.Duration(c.Quota)*time.Microsecond, time.Duration(c.Period)*time.Microsecond
		frac, before, after := burn(1500)
		used, periods := after.CPU-before.CPU, after.Periods-before.Periods
		perPeriod := time.Duration(0)
		if periods > 0 {
			perPeriod = used / time.Duration(periods) //nolint:gosec // a few periods
		}
		t.Logf("cpu 50%% of %v: %.3f CPUs over the 1.5 s busy loop (cpuacct.usage +%v); periods +%d, throttled +%d for %v; %v per period",
			period, frac, used.Round(time.Millisecond), periods, after.Throttled-before.Throttled, after.ThrottledTime-before.ThrottledTime, perPeriod.Round(10*time.Microsecond))
		// The cap: at most a quota per period, plus one for the periods the
		// run straddles, whatever else the host runs.
		if frac > 0.56 {
			t.Errorf("the busy loop got %.3f CPUs under cpu 50%% of %v, more than its quota", frac, period)
		}
		// The loop spent its quota, and was throttled, in the periods it ran:
		// it was held at the quota, not below it by other work.
		if after.Throttled <= before.Throttled || after.ThrottledTime <= before.ThrottledTime {
			t.Errorf("cpu.stat: throttled %d -> %d, throttled_time %v -> %v: want more", before.Throttled, after.Throttled, before.ThrottledTime, after.ThrottledTime)
		}
		if perPeriod < quota*7/10 || perPeriod > quota*11/10 {
			t.Errorf("the busy loop used %v per period of %v, want about the quota %v", perPeriod, period, quota)
		}
		// Of the wall time: about half, unless the host had no half a CPU to
		// give, or the child took long to start (a race-enabled binary): then
		// the figure is the host's, not the limit's.
		if frac < 0.35 {
			t.Logf("the loop got only %.3f CPUs of the wall time, its start and exit included (%.3f of the %d periods it ran in)",
				frac, float64(used)/float64(time.Duration(periods)*period), periods) //nolint:gosec // a few periods
		}
		return periods
	}
	long := capped(Limits{CPUPercent: 50})

	// A period of 10 ms: the same share, enforced in 5 ms slices, over
	// about ten times as many periods.
	short := Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}
	mustApply(t, v, short)
	if q, p := readTrim(t, filepath.Join(dir, "cpu.cfs_quota_us")), readTrim(t, filepath.Join(dir, "cpu.cfs_period_us")); q != "5000" || p != "10000" {
		t.Errorf("cfs_quota_us %s, cfs_period_us %s; want 5000 per 10000", q, p)
	}
	if n := capped(short); n < long*6 || n > long*14 {
		t.Errorf("the loop ran in %d periods of 10 ms and %d of 100 ms: want about ten times as many", n, long)
	}
	// The default period written back by hand is drift.
	write(t, filepath.Join(dir, "cpu.cfs_period_us"), "100000")
	diffs, err := v.Observe(v1Tenant, short)
	if err != nil || len(diffs) != 1 || diffs[0] != (host.Difference{Field: "cpu.cfs_period_us", Want: "10000", Have: "100000"}) {
		t.Errorf("Observe after a hand-changed period: %v, %v", diffs, err)
	}
	mustApply(t, v, short)
	if p := readTrim(t, filepath.Join(dir, "cpu.cfs_period_us")); p != "10000" {
		t.Errorf("cfs_period_us %s after Apply, want 10000", p)
	}

	if runtime.NumCPU() < 2 {
		return
	}
	mustApply(t, v, Limits{})
	if q := readTrim(t, filepath.Join(dir, "cpu.cfs_quota_us")); q != "-1" {
		t.Errorf("cfs_quota_us %s without a limit, want -1", q)
	}
	frac, before, after := burn(500)
	t.Logf("no cpu limit: %.3f CPUs over the 0.5 s busy loop of two threads; throttled +%d", frac, after.Throttled-before.Throttled)
	if after.Throttled != before.Throttled {
		t.Errorf("without a limit the loop was throttled %d times", after.Throttled-before.Throttled)
	}
}

// TestV1Pids: a child that forks until refused is refused with EAGAIN when
// pids.current reaches pids.max.
func TestV1Pids(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	const limit = 24
	mustApply(t, v, Limits{Pids: limit})
	pidsDir := v.dir(v1Tenant, "pids")
	p, out := startChild(t, v, envV1Role+"=pids "+pidsDir)
	if err := p.Wait(); err != nil {
		t.Fatalf("pids role: %v (output %q)", err, out)
	}
	var r v1PidsResult
	if err := json.Unmarshal(bytes.TrimSpace([]byte(out.String())), &r); err != nil {
		t.Fatalf("pids role output %q: %v", out, err)
	}
	t.Logf("pids.max %d: %d children forked, then %q; pids.current %s, the forker's threads %d", limit, r.Started, r.Errno, r.Current, r.Threads)
	if !r.EAGAIN {
		t.Errorf("fork failed with %q, want EAGAIN", r.Errno)
	}
	if r.Current != strconv.Itoa(limit) || r.Max != strconv.Itoa(limit) {
		t.Errorf("at the refusal pids.current %s, pids.max %s; want both %d", r.Current, r.Max, limit)
	}
	if r.Started+r.Threads != limit {
		t.Errorf("%d children + %d threads, want %d tasks", r.Started, r.Threads, limit)
	}
	if u := mustUsage(t, v); u.Pids != 0 {
		t.Errorf("Usage.Pids = %d after the child ended, want 0", u.Pids)
	}
}

// procCgroups reads /proc/<pid>/cgroup (or a task's).
func procCgroups(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cgs, err := parseProcCgroup(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return v1Paths(cgs)
}

// waitOutput waits until out holds a line "<prefix> <n>" and returns n.
func waitOutput(t *testing.T, out *syncBuffer, prefix string) int {
	t.Helper()
	for range 500 {
		for l := range strings.Lines(out.String()) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(l), prefix+" "); ok {
				v, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("output %q: %v", out, err)
				}
				return v
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q line in the output %q", prefix, out)
	return 0
}

// TestV1StartIn: the child StartIn starts, and the grandchild it forks as
// its first action, are in the tenant's cgroup in every hierarchy and in
// cgroup2; the thread that started it was not the main thread and is back
// where it was, the caller's thread never moved, and no thread the
// runtime made meanwhile is left in the tenant's cgroups.
func TestV1StartIn(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	mustApply(t, v, Limits{MemoryMax: 256 << 20, CPUPercent: 100, Pids: 100})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	callerBefore := procCgroups(t, "/proc/thread-self/cgroup")
	processBefore := procCgroups(t, "/proc/self/cgroup")
	threadsBefore, _ := os.ReadDir("/proc/self/task")

	var tid int
	var duringText []byte
	out := &syncBuffer{}
	var p *cmdrun.Process
	err := v.StartIn(v1Tenant, func(fd int) error {
		tid = unix.Gettid()
		var err error
		if duringText, err = os.ReadFile("/proc/thread-self/cgroup"); err != nil {
			return err
		}
		// Goroutines blocked in syscalls make the runtime start threads
		// while this one is in the tenant's cgroups.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { _ = unix.Nanosleep(&unix.Timespec{Nsec: 30e6}, nil) })
		}
		wg.Wait()
		p, err = cmdrun.Start(t.Context(), cmdrun.Cmd{Path: "/proc/self/exe", Env: []string{envV1Role + "=tree"}, UseCgroupFD: fd >= 0, CgroupFD: fd}, out)
		return err
	})
	if err != nil {
		t.Fatalf("StartIn: %v", err)
	}
	t.Cleanup(func() {
		_ = p.Signal(syscall.SIGKILL)
		_ = p.Wait()
	})
	grandchild := waitOutput(t, out, "grandchild")
	t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })

	cgs, err := parseProcCgroup(string(duringText))
	if err != nil {
		t.Fatal(err)
	}
	during := v1Paths(cgs)
	want := map[string]string{}
	for k, p := range processBefore {
		want[k] = p
	}
	tenantPath := "/" + v.subtree + "/" + v1Tenant
	for _, c := range v1Required {
		want[c] = tenantPath
	}
	want[""] = tenantPath
	for _, pid := range []int{p.Pid(), grandchild} {
		if d := cmp.Diff(want, procCgroups(t, fmt.Sprintf("/proc/%d/cgroup", pid))); d != "" {
			t.Errorf("/proc/%d/cgroup (-want +got):\n%s", pid, d)
		}
	}
	for _, c := range v1Required {
		if during[c] != tenantPath {
			t.Errorf("while starting, the thread's %s cgroup was %s, want %s", c, during[c], tenantPath)
		}
	}
	if during[""] != processBefore[""] {
		t.Errorf("while starting, the thread's cgroup2 cgroup was %s, want %s (unchanged)", during[""], processBefore[""])
	}
	if tid == os.Getpid() {
		t.Errorf("StartIn moved the main thread (%d)", tid)
	}
	if d := cmp.Diff(processBefore, procCgroups(t, fmt.Sprintf("/proc/self/task/%d/cgroup", tid))); d != "" {
		t.Errorf("StartIn's thread %d after StartIn (-want +got):\n%s", tid, d)
	}
	if d := cmp.Diff(callerBefore, procCgroups(t, "/proc/thread-self/cgroup")); d != "" {
		t.Errorf("the caller's thread (-before +after):\n%s", d)
	}
	if d := cmp.Diff(processBefore, procCgroups(t, "/proc/self/cgroup")); d != "" {
		t.Errorf("the main thread (-before +after):\n%s", d)
	}
	threadsAfter, _ := os.ReadDir("/proc/self/task")
	for _, c := range v1Required {
		tasks := strings.Fields(readTrim(t, filepath.Join(v.dir(v1Tenant, c), "tasks")))
		for _, s := range tasks {
			if _, err := os.Stat("/proc/self/task/" + s); err == nil {
				t.Errorf("thread %s of the test process is left in the tenant's %s cgroup", s, c)
			}
		}
		if len(tasks) < 2 {
			t.Errorf("the tenant's %s tasks %v, want the child's and the grandchild's", c, tasks)
		}
	}
	t.Logf("child %d and grandchild %d in %s everywhere; StartIn's thread %d back; the process had %d threads before, %d after",
		p.Pid(), grandchild, tenantPath, tid, len(threadsBefore), len(threadsAfter))
}

// TestV1ThreadMove: memory cgroup v1 takes a thread that is not the
// thread group leader (nor the mm's owner) alone; the memory it touches
// there is charged to the process's memory cgroup, not the tenant's, so
// no OOM; Remove never kills the process of such a thread, it waits.
func TestV1ThreadMove(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	mustApply(t, v, Limits{MemoryMax: 16 << 20})
	memDir := v.dir(v1Tenant, "memory")
	home := procCgroups(t, "/proc/self/cgroup")["memory"]
	mount := v.hierarchy("memory").mount

	moved := make(chan int)
	back := make(chan struct{})
	done := make(chan error, 1)
	work := func() { // on a locked thread that is not the main one
		tid := unix.Gettid()
		if err := writeFile(filepath.Join(memDir, "tasks"), strconv.Itoa(tid)); err != nil {
			done <- err
			return
		}
		// 64 MiB touched by this thread while it is in the 16 MiB cgroup.
		b := make([]byte, 64<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
		moved <- tid
		<-back
		if err := writeFile(filepath.Join(mount, home, "tasks"), strconv.Itoa(tid)); err != nil {
			done <- err
			return // locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		done <- nil
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != os.Getpid() {
			work()
			return
		}
		// The main thread, locked here, runs no other goroutine.
		inner := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			work()
			close(inner)
		}()
		<-inner
		runtime.UnlockOSThread()
	}()
	var tid int
	select {
	case tid = <-moved:
	case err := <-done:
		t.Fatal(err)
	}
	got := procCgroups(t, fmt.Sprintf("/proc/self/task/%d/cgroup", tid))["memory"]
	if want := "/" + v.subtree + "/" + v1Tenant; got != want {
		t.Errorf("thread %d is in memory cgroup %s, want %s", tid, got, want)
	}
	if leader := procCgroups(t, "/proc/self/cgroup")["memory"]; leader != home {
		t.Errorf("the main thread moved too: %s, want %s", leader, home)
	}
	usage := mustReadInt(t, filepath.Join(memDir, "memory.usage_in_bytes"))
	oc := keyValues(t, filepath.Join(memDir, "memory.oom_control"))
	t.Logf("thread %d alone in the tenant's memory cgroup, after touching 64 MiB: usage_in_bytes %d, oom_kill %d", tid, usage, oc["oom_kill"])
	if usage > 1<<20 || oc["oom_kill"] != 0 {
		t.Errorf("usage_in_bytes %d, oom_kill %d: the thread's memory was charged to the tenant", usage, oc["oom_kill"])
	}
	if procs := strings.Fields(readTrim(t, filepath.Join(memDir, "cgroup.procs"))); !slices.Equal(procs, []string{strconv.Itoa(os.Getpid())}) {
		t.Errorf("cgroup.procs %v, want this process %d (for its thread)", procs, os.Getpid())
	}

	// Remove must not kill this process: it waits for the thread to go.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err := v.Remove(ctx, v1Tenant)
	cancel()
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Remove with this process's thread inside: %v, want ErrBusy", err)
	}
	close(back)
	if err := <-done; err != nil {
		t.Fatalf("moving the thread back: %v", err)
	}
	if ok, err := v.Remove(t.Context(), v1Tenant); !ok || err != nil {
		t.Errorf("Remove once the thread left: %v, %v", ok, err)
	}
}

// TestV1Drift: hand edits are differences Observe reports and Apply
// corrects, memory rounded to pages as the kernel keeps it.
func TestV1Drift(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	l := Limits{MemoryMax: 32<<20 + 100, MemoryHigh: 24 << 20, CPUPercent: 150, Pids: 64}
	disk, err := DeviceOf(SysDevBlock, "/")
	if err == nil {
		io := NoIOLimit()
		io.ReadBPS, io.WriteIOPS = 1<<20, 300
		l.IO = map[Device]IOMax{disk: io}
	} else {
		t.Logf("no io limits: %v", err)
	}
	first := mustApply(t, v, l)
	mem := strconv.Itoa(32 << 20)
	for _, want := range []host.Difference{
		{Field: "memory.limit_in_bytes", Want: mem, Have: "max"},
		{Field: "memory.soft_limit_in_bytes", Want: strconv.Itoa(24 << 20), Have: "max"},
		{Field: "cpu.cfs_quota_us", Want: "150000", Have: "-1"},
		{Field: "pids.max", Want: "64", Have: "max"},
	} {
		if !slices.Contains(first, want) {
			t.Errorf("the first Apply's differences %v lack %v", first, want)
		}
	}
	if l.IO != nil {
		if got := readTrim(t, filepath.Join(v.dir(v1Tenant, "blkio"), "blkio.throttle.read_bps_device")); got != disk.String()+" 1048576" {
			t.Errorf("read_bps_device %q", got)
		}
	}
	memDir, cpuDir, pidsDir, blkDir := v.dir(v1Tenant, "memory"), v.dir(v1Tenant, "cpu"), v.dir(v1Tenant, "pids"), v.dir(v1Tenant, "blkio")
	type edit struct{ file, value string }
	tests := []struct {
		name  string
		edits []edit
		want  []host.Difference
	}{
		{"memory lowered", []edit{{filepath.Join(memDir, "memory.limit_in_bytes"), "16777217"}},
			[]host.Difference{{Field: "memory.limit_in_bytes", Want: mem, Have: "16777216"}}},
		{"memory and memsw raised", []edit{
			{filepath.Join(memDir, "memory.memsw.limit_in_bytes"), "-1"},
			{filepath.Join(memDir, "memory.limit_in_bytes"), "64M"},
		}, []host.Difference{
			// The limit comes down first: it must stay <= memsw.
			{Field: "memory.limit_in_bytes", Want: mem, Have: strconv.Itoa(64 << 20)},
			{Field: "memory.memsw.limit_in_bytes", Want: mem, Have: "max"},
		}},
		{"soft limit", []edit{{filepath.Join(memDir, "memory.soft_limit_in_bytes"), "-1"}},
			[]host.Difference{{Field: "memory.soft_limit_in_bytes", Want: strconv.Itoa(24 << 20), Have: "max"}}},
		{"cpu", []edit{{filepath.Join(cpuDir, "cpu.cfs_quota_us"), "-1"}, {filepath.Join(cpuDir, "cpu.cfs_period_us"), "50000"}},
			[]host.Difference{{Field: "cpu.cfs_period_us", Want: "100000", Have: "50000"}, {Field: "cpu.cfs_quota_us", Want: "150000", Have: "-1"}}},
		{"pids", []edit{{filepath.Join(pidsDir, "pids.max"), "max"}},
			[]host.Difference{{Field: "pids.max", Want: "64", Have: "max"}}},
	}
	if l.IO != nil {
		d := disk.String()
		tests = append(tests, struct {
			name  string
			edits []edit
			want  []host.Difference
		}{"io", []edit{
			{filepath.Join(blkDir, "blkio.throttle.read_bps_device"), d + " 2097152"},
			{filepath.Join(blkDir, "blkio.throttle.write_bps_device"), d + " 5000"},
			{filepath.Join(blkDir, "blkio.throttle.write_iops_device"), d + " 0"},
		}, []host.Difference{
			{Field: "blkio.throttle.read_bps_device " + d, Want: "1048576", Have: "2097152"},
			{Field: "blkio.throttle.write_bps_device " + d, Want: "none", Have: "5000"},
			{Field: "blkio.throttle.write_iops_device " + d, Want: "300", Have: "none"},
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, e := range tt.edits {
				write(t, e.file, e.value)
			}
			got, err := v.Observe(v1Tenant, l)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Observe after the hand edit (-want +got):\n%s", d)
			}
			fixed, err := v.Apply(v1Tenant, l)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, fixed); d != "" {
				t.Errorf("Apply's fixes (-want +got):\n%s", d)
			}
			if again, err := v.Observe(v1Tenant, l); err != nil || len(again) > 0 {
				t.Errorf("Observe after Apply: %v, %v", again, err)
			}
		})
	}

	// No limits: everything back to unlimited, which v1 prints as
	// PAGE_COUNTER_MAX pages; Observe shows it as "max".
	mustApply(t, v, Limits{})
	if got, want := readTrim(t, filepath.Join(memDir, "memory.limit_in_bytes")), strconv.FormatInt(v.unlimitedMem, 10); got != want {
		t.Errorf("memory.limit_in_bytes without a limit = %s, want %s", got, want)
	}
	if ok, err := v.Remove(t.Context(), v1Tenant); !ok || err != nil {
		t.Fatalf("Remove: %v, %v", ok, err)
	}
	ds, err := v.Observe(v1Tenant, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := v.dirs(v1Tenant)
	var want []host.Difference
	for _, d := range dirs {
		want = append(want, host.Difference{Field: "cgroup", Want: d.path, Have: "absent"})
	}
	if d := cmp.Diff(want, ds); d != "" {
		t.Errorf("Observe after Remove (-want +got):\n%s", d)
	}
}

// TestV1Pressure: the tenant's PSI comes from its cgroup2 directory, and
// cpu.pressure's "some" total grows while the tenant is throttled; a
// trigger on it fires.
func TestV1Pressure(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	if !v.Enforcement().PSI {
		t.Fatalf("no PSI on this host: %+v", v.Enforcement())
	}
	mustApply(t, v, Limits{CPUPercent: 20})
	before, err := v.Pressure(v1Tenant)
	if err != nil {
		t.Fatal(err)
	}
	// A window of 2 s: without CAP_SYS_RESOURCE (this test's sandbox may
	// lack it) the kernel takes multiples of 2 s only.
	fired, err := v.WatchPressure(t.Context(), v1Tenant, CPU, Trigger{Stall: 100 * time.Millisecond, Window: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, out := startChild(t, v, envRole+"=burn 1500")
	if err := p.Wait(); err != nil {
		t.Fatalf("burn: %v (output %q)", err, out)
	}
	ended := time.Now()
	after, err := v.Pressure(v1Tenant)
	if err != nil {
		t.Fatal(err)
	}
	grew := after.CPU.Some.Total - before.CPU.Some.Total
	t.Logf("cpu 20%%, two threads busy for 1.5 s: cpu.pressure some total +%v (avg10 %.2f%%)", grew, after.CPU.Some.Avg10)
	if grew < 500*time.Millisecond {
		t.Errorf("cpu.pressure some total grew %v, want most of the 1.5 s", grew)
	}
	// Unprivileged triggers are checked with the averages, every 2 s.
	select {
	case <-fired:
		t.Logf("the trigger fired, seen %v after the busy loop ended", time.Since(ended).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Errorf("the cpu trigger (some 100 ms per 2 s) did not fire")
	}
	dir := filepath.Join(v.unified, v.subtree, v1Tenant)
	if !strings.Contains(readTrim(t, filepath.Join(dir, "cpu.pressure")), "some avg10=") {
		t.Errorf("the tenant's cgroup2 cpu.pressure %q", readTrim(t, filepath.Join(dir, "cpu.pressure")))
	}
}

// TestV1Remove: Remove kills the child and grandchild running in the
// tenant's cgroups and removes every directory, one made by hand below
// them too.
func TestV1Remove(t *testing.T) {
	if v1Sandbox(t) {
		return
	}
	v := newV1(t)
	mustApply(t, v, Limits{MemoryMax: 64 << 20, Pids: 32})
	p, out := startChild(t, v, envV1Role+"=tree")
	grandchild := waitOutput(t, out, "grandchild")
	sub := filepath.Join(v.dir(v1Tenant, "pids"), "by-hand")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "cgroup.procs"), strconv.Itoa(grandchild))

	start := time.Now()
	ok, err := v.Remove(t.Context(), v1Tenant)
	if !ok || err != nil {
		t.Fatalf("Remove: %v, %v", ok, err)
	}
	took := time.Since(start)
	if sig, ok := signalOf(p.Wait()); !ok || sig != syscall.SIGKILL {
		t.Errorf("the child ended with %v, want SIGKILL", p.Wait())
	}
	// The grandchild, orphaned, is this PID 1's zombie until reaped.
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(grandchild, &ws, 0, nil); err == nil && (!ws.Signaled() || ws.Signal() != syscall.SIGKILL) {
		t.Errorf("the grandchild ended with %v, want SIGKILL", ws)
	}
	dirs, _ := v.dirs(v1Tenant)
	for _, d := range dirs {
		if _, err := os.Stat(d.path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Remove: %v", d.path, err)
		}
	}
	t.Logf("Remove killed the child and the grandchild and removed %d cgroups in %v", len(dirs)+1, took.Round(time.Millisecond))
	if ok, err := v.Remove(t.Context(), v1Tenant); ok || err != nil {
		t.Errorf("Remove again: %v, %v; want false, nil", ok, err)
	}
}

// TestV1HostEnforcement: what V1 says it enforces on this host.
func TestV1HostEnforcement(t *testing.T) {
	c := v1HostCapability(t)
	v, err := NewV1(c, V1Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := v.Enforcement()
	t.Logf("%+v", e)
	for _, n := range v1Required {
		if !strings.Contains(e.Driver, n) {
			t.Errorf("Driver %q does not name %s", e.Driver, n)
		}
	}
	if d := cmp.Diff([]string{LimitMemoryMax, LimitCPU, LimitPids}, e.Enforced); d != "" {
		t.Errorf("Enforced (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{LimitIO, LimitMemoryHigh}, slices.Sorted(maps.Keys(e.NotEnforced))); d != "" {
		t.Errorf("NotEnforced (-want +got):\n%s", d)
	}
	if e.PSI != (c.Unified != "" && c.PSI) {
		t.Errorf("PSI %v; cgroup2 at %q with PSI %v", e.PSI, c.Unified, c.PSI)
	}
}
