package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
	"github.com/wcp360/wcp360/internal/testutil/vm"
)

// cgroupEnv is what the host offers the cgroup tests.
type cgroupEnv struct {
	hier []hierarchy
	// memory is the cgroup v1 memory hierarchy's mount point, v2 the cgroup2
	// one's ("" when not mounted): the same inside a sandbox.
	memory, v2 string
	// psi: the host's cgroup2 root has pressure files.
	psi bool
}

// requireCgroups skips (fails, in CI) where the sandbox's cgroups cannot
// be tested: without root, or without cgroup v1 memory or cgroup2 mounted
// at /sys/fs/cgroup.
func requireCgroups(t *testing.T) cgroupEnv {
	t.Helper()
	requireSandbox(t)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mounts := parseMountinfo(string(mi))
	env := cgroupEnv{hier: findHierarchies(mounts, parseProcCgroup(string(self)))}
	for _, m := range layoutOf(mounts).Mounts {
		switch {
		case m.FSType == "cgroup2" && env.v2 == "":
			env.v2 = m.Point
		case m.FSType == "cgroup" && env.memory == "" && strings.Contains(","+m.Data+",", ",memory,"):
			env.memory = m.Point
		}
	}
	if env.memory == "" && env.v2 == "" {
		Unavailable(t, "neither cgroup v1 memory nor cgroup2 is mounted at /sys/fs/cgroup")
	}
	if env.v2 != "" {
		_, err := os.Stat(filepath.Join(env.v2, "cpu.pressure"))
		env.psi = err == nil
	}
	return env
}

// scriptEnv are the variables the test scripts use: MEM and V2, the
// memory and cgroup2 mount points inside ("" when there is none).
// (The race detector's exit delay is off, for the sandbox's PID 1.)
func (e cgroupEnv) scriptEnv(more ...string) []string {
	return append([]string{"MEM=" + e.memory, "V2=" + e.v2, noRaceExitDelay}, more...)
}

// noRaceExitDelay spares a second at the exit of a race-enabled PID 1.
const noRaceExitDelay = "GORACE=atexit_sleep_ms=0"

// sandboxDir is the sandbox's cgroup (on the host) in the hierarchy
// mounted at mount.
func sandboxDir(t *testing.T, p *Process, mount string) string {
	t.Helper()
	if p.cgroups == nil {
		t.Fatal("the sandbox has no cgroups of its own")
	}
	for _, d := range p.cgroups.dirs {
		if strings.HasPrefix(d, mount+"/") {
			return d
		}
	}
	t.Fatalf("the sandbox has no cgroup below %s: %v", mount, p.cgroups.dirs)
	return ""
}

// ownCgroups lists the cgroups of this process's sandboxes that exist.
func ownCgroups(t *testing.T, env cgroupEnv) []string {
	t.Helper()
	_, start, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%s%d-%d-", cgroupPrefix, os.Getpid(), start)
	var found []string
	for _, h := range env.hier {
		for _, parent := range []string{h.mount, h.current} {
			m, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
			found = append(found, m...)
		}
	}
	return found
}

// scriptRun is a sandbox running a script that waits on its stdin.
type scriptRun struct {
	p     *Process
	out   *syncbuf.Buffer
	stdin *io.PipeWriter
}

func startScript(t *testing.T, opts Options, script string) *scriptRun {
	t.Helper()
	r := &scriptRun{out: &syncbuf.Buffer{}}
	stdin, w := io.Pipe()
	r.stdin = w
	p, err := Start(t.Context(), opts, []string{"sh", "-c", script}, Stdio{Stdin: stdin, Stdout: r.out, Stderr: r.out})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	t.Cleanup(func() {
		_ = w.Close()
		_ = p.Kill()
		_, _ = p.Wait()
	})
	return r
}

// waitFor waits until the script has printed line.
func (r *scriptRun) waitFor(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(r.out.String(), line+"\n") {
		select {
		case <-r.p.Done():
			t.Fatalf("the sandbox exited before printing %q:\n%s", line, r.out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q from the sandbox after 20 s:\n%s", line, r.out.String())
		}
	}
}

// finish closes the script's stdin and waits for the sandbox.
func (r *scriptRun) finish(t *testing.T) (int, string) {
	t.Helper()
	_ = r.stdin.Close()
	code, err := r.p.Wait()
	if err != nil {
		t.Fatalf("%v; output:\n%s", err, r.out.String())
	}
	return code, r.out.String()
}

// checkProcCgroup checks the sandbox's /proc/self/cgroup: the root of
// every v1 hierarchy, cgroup2's init leaf (when cgroup2 is mounted).
func checkProcCgroup(t *testing.T, env cgroupEnv, procCgroup string) {
	t.Helper()
	lines := parseProcCgroup(procCgroup)
	if len(lines) == 0 {
		t.Fatalf("no /proc/self/cgroup in:\n%s", procCgroup)
	}
	for _, l := range lines {
		want := "/"
		if len(l.controllers) == 0 && env.v2 != "" {
			want = "/" + initLeaf
		}
		if l.path != want {
			t.Errorf("/proc/self/cgroup: %s in %q, want %q", strings.Join(l.controllers, ","), l.path, want)
		}
	}
}

func gone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is on the host after the sandbox ended (%v)", p, err)
		}
	}
}

// Two sandboxes at once each make the cgroup wcp360/acme, with a memory
// limit of their own: each sees its own, below its cgroup on the host,
// and both are gone afterwards.
func TestCgroupsPrivate(t *testing.T) {
	env := requireCgroups(t)
	const script = `set -e
cat /proc/self/cgroup
for d in $MEM $V2; do mkdir -p $d/wcp360/acme; done
[ -z "$MEM" ] || echo $LIMIT >$MEM/wcp360/acme/memory.limit_in_bytes
[ -z "$V2" ] || ls $V2/cpu.pressure $V2/memory.pressure $V2/io.pressure $V2/wcp360/acme/cpu.pressure
echo ready
read x || true
[ -z "$MEM" ] || echo "limit $(cat $MEM/wcp360/acme/memory.limit_in_bytes)"
`
	limits := []int{64 << 20, 96 << 20}
	hostBefore := map[string]bool{}
	for _, m := range []string{env.memory, env.v2} {
		if _, err := os.Stat(filepath.Join(m, "wcp360", "acme")); m != "" && err == nil {
			hostBefore[m] = true
		}
	}
	var runs []*scriptRun
	for _, limit := range limits {
		runs = append(runs, startScript(t, Options{Env: env.scriptEnv("LIMIT=" + strconv.Itoa(limit))}, script))
	}
	for _, r := range runs {
		r.waitFor(t, "ready")
	}
	var dirs []string
	for i, r := range runs {
		checkProcCgroup(t, env, r.out.String())
		if env.psi && !strings.Contains(r.out.String(), env.v2+"/wcp360/acme/cpu.pressure\n") {
			t.Errorf("no pressure files in the sandbox's cgroup2:\n%s", r.out.String())
		}
		for _, m := range []string{env.memory, env.v2} {
			if m == "" {
				continue
			}
			dir := sandboxDir(t, r.p, m)
			dirs = append(dirs, r.p.cgroups.dirs...)
			acme := filepath.Join(dir, "wcp360", "acme")
			if _, err := os.Stat(acme); err != nil {
				t.Errorf("the sandbox's wcp360/acme is not below its cgroup on the host: %v", err)
			}
			if _, err := os.Stat(filepath.Join(m, "wcp360", "acme")); err == nil && !hostBefore[m] {
				t.Errorf("the sandbox's wcp360/acme is at the root of the host's %s", m)
			}
			if m == env.memory {
				b, err := os.ReadFile(filepath.Join(acme, "memory.limit_in_bytes"))
				if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || got != limits[i] {
					t.Errorf("sandbox %d: the host's %s/memory.limit_in_bytes = %q, %v; want %d", i, acme, b, err, limits[i])
				}
			}
		}
	}
	for i, r := range runs {
		code, out := r.finish(t)
		if code != 0 {
			t.Errorf("sandbox %d: exit status %d:\n%s", i, code, out)
		}
		if want := fmt.Sprintf("limit %d\n", limits[i]); env.memory != "" && !strings.Contains(out, want) {
			t.Errorf("sandbox %d: no %q inside (another sandbox's limit?):\n%s", i, want, out)
		}
	}
	gone(t, dirs...)
	if left := ownCgroups(t, env); len(left) > 0 {
		t.Errorf("cgroups of this test's sandboxes are left: %v", left)
	}
}

// randomName is a cgroup name for a test.
func randomName(t *testing.T, prefix string) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// startSleep starts a sleep on the host, that only a kill ends.
func startSleep(t *testing.T) *cmdrun.Process {
	t.Helper()
	p, err := cmdrun.Start(context.WithoutCancel(t.Context()), cmdrun.Cmd{Path: "sleep", Args: []string{"1000"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Signal(os.Kill)
		<-p.Done()
	})
	return p
}

func join(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := writeCgroupFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}
}

func mustDie(t *testing.T, p *cmdrun.Process, what string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("%s still runs after the sandbox ended", what)
	}
}

// A sandbox killed while processes run in cgroups it made, one of them
// from the host (which the end of the sandbox's PID namespace does not
// kill): they are killed, and the cgroups removed.
func TestCgroupsRemovedWhenKilled(t *testing.T) {
	env := requireCgroups(t)
	const script = `set -e
for d in $MEM $V2; do mkdir -p $d/left/deeper; done
sleep 1000 &
for d in $MEM $V2; do echo $! >$d/left/deeper/cgroup.procs; done
echo ready
exec sleep 1000
`
	r := startScript(t, Options{Env: env.scriptEnv()}, script)
	r.waitFor(t, "ready")
	var hostSleeps []*cmdrun.Process
	if env.v2 != "" {
		// In the sandbox's cgroup2 cgroup (and the host's v1 ones).
		s := startSleep(t)
		join(t, filepath.Join(sandboxDir(t, r.p, env.v2), "left"), s.Pid())
		hostSleeps = append(hostSleeps, s)
	}
	if env.memory != "" {
		// Only in the sandbox's v1 memory cgroup: cgroup.kill misses it.
		s := startSleep(t)
		join(t, filepath.Join(sandboxDir(t, r.p, env.memory), "left", "deeper"), s.Pid())
		hostSleeps = append(hostSleeps, s)
	}
	dirs := r.p.cgroups.dirs
	if err := r.p.Kill(); err != nil {
		t.Fatal(err)
	}
	code, err := r.p.Wait()
	if err != nil || code != 128+9 {
		t.Fatalf("exit status %d, %v; want %d", code, err, 128+9)
	}
	for _, s := range hostSleeps {
		mustDie(t, s, fmt.Sprintf("the host's sleep %d in the sandbox's cgroup", s.Pid()))
	}
	gone(t, dirs...)
	if left := ownCgroups(t, env); len(left) > 0 {
		t.Errorf("cgroups of this test's sandboxes are left: %v", left)
	}
}

// Start removes the cgroups of sandboxes whose process is gone, with what
// runs in them, and leaves those of live ones alone.
func TestCgroupsSweep(t *testing.T) {
	env := requireCgroups(t)
	_, start, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The stale cgroups' owner lives until they are made: Starts elsewhere
	// (other test binaries) would sweep them before.
	owner := startSleep(t)
	_, ownerStart, err := procStat(owner.Pid())
	if err != nil {
		t.Fatal(err)
	}
	stale := randomName(t, fmt.Sprintf("%s%d-%d-", cgroupPrefix, owner.Pid(), ownerStart))
	live := randomName(t, fmt.Sprintf("%s%d-%d-", cgroupPrefix, os.Getpid(), start))
	var staleDirs, liveDirs []string
	sleep := startSleep(t)
	for _, h := range env.hier {
		parent := h.current
		if h.v2 {
			parent = cgroup2Parents(h)[0]
		}
		s, l := filepath.Join(parent, stale), filepath.Join(parent, live)
		for _, d := range []string{filepath.Join(s, "inner"), l} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := inheritCpuset(parent, s); err != nil {
			t.Fatal(err)
		}
		if err := inheritCpuset(s, filepath.Join(s, "inner")); err != nil {
			t.Fatal(err)
		}
		staleDirs, liveDirs = append(staleDirs, s), append(liveDirs, l)
		if h.mount == env.memory || h.mount == env.v2 {
			join(t, filepath.Join(s, "inner"), sleep.Pid())
		}
	}
	t.Cleanup(func() { _ = removeCgroups(append(staleDirs, liveDirs...)) })
	if err := owner.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-owner.Done()

	if code, err := Exec(t.Context(), Options{Env: []string{noRaceExitDelay}}, []string{"true"}, Stdio{}); err != nil || code != 0 {
		t.Fatalf("exit status %d, %v", code, err)
	}
	gone(t, staleDirs...)
	mustDie(t, sleep, "the sleep in a stale sandbox's cgroup")
	for _, d := range liveDirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("a live sandbox's cgroup was removed: %v", err)
		}
	}
}

// envStarterHelper makes TestHelperStarter start a sandbox.
const envStarterHelper = "WCP_SANDBOX_TEST_STARTER"

// The process that started a sandbox is killed: the sandbox dies with it
// (the parent-death signal survives the child's second start, in its
// cgroup namespace), its cgroups stay, with nobody to remove them, and the
// next Start sweeps them away, killing what is left in them.
func TestCgroupsOfAKilledStarter(t *testing.T) {
	requireCgroups(t)
	out := &syncbuf.Buffer{}
	starter, err := cmdrun.Start(context.WithoutCancel(t.Context()), cmdrun.Cmd{Path: os.Args[0],
		Args: []string{"-test.run=^TestHelperStarter$", "-test.v", "-test.count=1"},
		Env:  []string{envStarterHelper + "=1", noRaceExitDelay}}, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = starter.Signal(os.Kill)
		<-starter.Done()
	})
	var fields []string
	for i := 0; len(fields) == 0; i++ {
		if _, rest, ok := strings.Cut(out.String(), "sandbox: "); ok && strings.Contains(rest, "\n") {
			fields = strings.Fields(strings.SplitN(rest, "\n", 2)[0])
		}
		if i == 2000 {
			t.Fatalf("the starter started no sandbox:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || len(fields) < 2 {
		t.Fatalf("the starter printed %q", fields)
	}
	dirs := fields[1:]
	if err := starter.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	<-starter.Done()
	for i := 0; ; i++ {
		state, _, err := procStat(pid)
		if err != nil || state == "Z" {
			break
		}
		if i == 500 {
			t.Fatalf("the sandbox (pid %d) still runs 5 s after its starter was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Its cgroups stay, until a Start (this one, or one in another test
	// binary running now) sweeps them.
	if code, err := Exec(t.Context(), Options{Env: []string{noRaceExitDelay}}, []string{"true"}, Stdio{}); err != nil || code != 0 {
		t.Fatalf("exit status %d, %v", code, err)
	}
	gone(t, dirs...)
}

// TestHelperStarter runs only when TestCgroupsOfAKilledStarter starts it.
func TestHelperStarter(t *testing.T) {
	if os.Getenv(envStarterHelper) == "" {
		t.Skip("helper of TestCgroupsOfAKilledStarter")
	}
	p, err := Start(context.Background(), Options{Env: []string{noRaceExitDelay}}, []string{"sleep", "1000"}, Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	waitProgram(t, p) // set up, in its cgroup namespace
	fmt.Printf("sandbox: %d %s\n", p.Pid(), strings.Join(p.cgroups.dirs, " "))
	_, _ = p.Wait()
}

// A memory limit set in the sandbox is the kernel's: a process past it is
// OOM-killed, the same process outside the cgroup is not.
func TestCgroupMemoryLimit(t *testing.T) {
	env := requireCgroups(t)
	const script = `set -e
if [ -n "$MEM" ]; then
	cg=$MEM/wcp-oom
	mkdir $cg
	echo 32M >$cg/memory.limit_in_bytes
	[ ! -e $cg/memory.memsw.limit_in_bytes ] || echo 32M >$cg/memory.memsw.limit_in_bytes
else
	echo +memory >$V2/cgroup.subtree_control
	cg=$V2/wcp-oom
	mkdir $cg
	echo 32M >$cg/memory.max
	[ ! -e $cg/memory.swap.max ] || echo 0 >$cg/memory.swap.max
fi
set +e
sh -c "echo \$\$ >$cg/cgroup.procs && exec dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null"
echo "in the cgroup: $?"
dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null
echo "outside: $?"
`
	if env.memory == "" {
		if b, err := os.ReadFile(filepath.Join(env.v2, "cgroup.controllers")); err != nil || !strings.Contains(" "+string(b), " memory") {
			Unavailable(t, "no memory controller, in cgroup v1 or cgroup2")
		}
	}
	var out, stderr strings.Builder // the shell says "Killed" on stderr
	code, err := Exec(t.Context(), Options{Env: env.scriptEnv()}, []string{"sh", "-c", script}, Stdio{Stdout: &out, Stderr: &stderr})
	if err != nil || code != 0 {
		t.Fatalf("exit status %d, %v:\n%s%s", code, err, out.String(), stderr.String())
	}
	if want := "in the cgroup: 137\noutside: 0\n"; out.String() != want {
		t.Fatalf("output %q (stderr %q), want %q (dd of 128 MiB: OOM-killed in a cgroup of 32 MiB only)", out.String(), stderr.String(), want)
	}
}

// With RootFS, /sys is a fresh read-only sysfs: the sandbox's cgroups are
// mounted there all the same.
func TestRootFSCgroups(t *testing.T) {
	env := requireCgroups(t)
	root, binds := miniRootFS(t)
	var out strings.Builder
	p, err := Start(t.Context(), Options{RootFS: root, Binds: binds, Env: env.scriptEnv()},
		[]string{"/bin/sh", "-c", "set -e; cat /proc/self/cgroup; for d in $MEM $V2; do mkdir $d/x; done; echo made"},
		Stdio{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	dirs := p.cgroups.dirs
	if code, err := p.Wait(); err != nil || code != 0 || !strings.HasSuffix(out.String(), "made\n") {
		t.Fatalf("exit status %d, %v:\n%s", code, err, out.String())
	}
	checkProcCgroup(t, env, out.String())
	gone(t, dirs...)
}

// HostCgroups: the sandbox stays in the starting process's cgroups, in
// the host's cgroup namespace.
func TestHostCgroups(t *testing.T) {
	requireCgroups(t)
	var out strings.Builder
	p, err := Start(t.Context(), Options{HostCgroups: true, Env: []string{noRaceExitDelay}}, []string{"cat", "/proc/self/cgroup"}, Stdio{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if p.cgroups != nil {
		t.Errorf("cgroups %v made with HostCgroups", p.cgroups.dirs)
	}
	if code, err := p.Wait(); err != nil || code != 0 {
		t.Fatalf("exit status %d, %v", code, err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(self) {
		t.Errorf("/proc/self/cgroup inside:\n%s\nwant the host's:\n%s", out.String(), self)
	}
}

// envCgroup2Helper hands TestHelperCgroup2 a sandbox's cgroupSetup.
const envCgroup2Helper = "WCP_SANDBOX_TEST_CGROUP2"

// A pure cgroup v2 host: the VM's, where cgroup2 with every controller is
// mounted on /sys/fs/cgroup and the test runs in the root cgroup. The
// sandbox's cgroup goes below the root, which gives it the controllers,
// and its processes into its init leaf; inside, the root offers them to
// the cgroups made there, where the kernel enforces limits; removing it
// kills what is left. The VM has no overlayfs, which a sandbox needs:
// TestHelperCgroup2 does, in a process of its own, what the sandbox's
// child does with the cgroups.
func TestCgroupsOnCgroup2Host(t *testing.T) {
	if vm.Run(t, vm.Options{}) {
		return
	}
	c, err := newCgroups()
	if err != nil || c == nil {
		t.Fatalf("newCgroups: %v, %v", c, err)
	}
	t.Cleanup(func() { _ = c.remove() })
	want := cgroupLayout{Mounts: []fsMount{{Point: cgroupDir, FSType: "cgroup2"}}}
	if diff := cmp.Diff(want, c.setup.Layout); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	if len(c.dirs) != 1 || filepath.Dir(c.dirs[0]) != cgroupDir {
		t.Fatalf("the sandbox's cgroups %v, want one below %s", c.dirs, cgroupDir)
	}
	dir := c.dirs[0]
	if !cmp.Equal(c.setup.Init, []string{filepath.Join(dir, initLeaf)}) {
		t.Errorf("init leaves %v", c.setup.Init)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range delegated {
		if !slices.Contains(strings.Fields(string(b)), want) {
			t.Errorf("the sandbox's cgroup.controllers %q lack %s", b, want)
		}
	}
	setup, err := json.Marshal(c.setup)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: os.Args[0], Args: []string{"-test.run=^TestHelperCgroup2$", "-test.v", "-test.count=1"},
		Env: []string{envCgroup2Helper + "=" + string(setup)}, Timeout: time.Minute})
	t.Logf("the sandbox's child, as it were:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperCgroup2") {
		t.Fatalf("TestHelperCgroup2: %v", err)
	}
	acme := filepath.Join(dir, "wcp360", "acme")
	if b, err := os.ReadFile(filepath.Join(acme, "memory.max")); err != nil || string(b) != "33554432\n" {
		t.Errorf("%s/memory.max on the host: %q, %v", acme, b, err)
	}
	_, rest, _ := strings.Cut(string(out), "left in the cgroup: ")
	left, _ := strconv.Atoi(strings.Fields(rest + " x")[0])
	if pids := readPids(filepath.Join(acme, "cgroup.procs")); left == 0 || !cmp.Equal(pids, []int{left}) {
		t.Fatalf("processes in %s: %v, want the helper's %d", acme, pids, left)
	}
	if err := c.remove(); err != nil {
		t.Fatal(err)
	}
	gone(t, dir)
	for i := 0; ; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", left))
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if i == 100 {
			t.Fatalf("process %d, left in the sandbox's cgroup, still runs", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelperCgroup2 runs only when TestCgroupsOnCgroup2Host starts it.
func TestHelperCgroup2(t *testing.T) {
	raw := os.Getenv(envCgroup2Helper)
	if raw == "" {
		t.Skip("helper of TestCgroupsOnCgroup2Host")
	}
	var setup cgroupSetup
	if err := json.Unmarshal([]byte(raw), &setup); err != nil {
		t.Fatal(err)
	}
	// This thread enters the namespaces; it ends with the test.
	runtime.LockOSThread()
	for _, d := range setup.Roots {
		join(t, d, 0)
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP | unix.CLONE_NEWNS); err != nil {
		t.Fatal(err)
	}
	for _, d := range setup.Init {
		join(t, d, 0)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := mountCgroups(setup.Layout); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/proc/thread-self/cgroup"); err != nil || string(b) != "0::/init\n" {
		t.Fatalf("/proc/thread-self/cgroup = %q, %v; want 0::/init", b, err)
	}
	for _, f := range []string{"cpu.pressure", "memory.pressure", "io.pressure", "init"} {
		if _, err := os.Stat(filepath.Join(cgroupDir, f)); err != nil {
			t.Errorf("the sandbox's %s: %v", cgroupDir, err)
		}
	}
	// What WCP360's cgroup driver does: controllers on the way down.
	acme := filepath.Join(cgroupDir, "wcp360", "acme")
	if err := os.MkdirAll(acme, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{cgroupDir, filepath.Dir(acme)} {
		if err := writeCgroupFile(filepath.Join(d, "cgroup.subtree_control"), "+cpu +io +memory +pids"); err != nil {
			t.Fatal(err)
		}
	}
	for f, v := range map[string]string{"memory.max": "32M", "memory.swap.max": "0"} {
		if err := writeCgroupFile(filepath.Join(acme, f), v); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(acme, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// Born in the cgroup: 128 MiB of dd is OOM-killed, and a sleep is left.
	dd := cmdrun.Cmd{Path: "dd", Args: []string{"if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"}, UseCgroupFD: true, CgroupFD: fd}
	if _, err := cmdrun.Run(t.Context(), dd); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("dd of 128 MiB in a cgroup of 32 MiB: %v; want it OOM-killed", err)
	}
	if ev, err := os.ReadFile(filepath.Join(acme, "memory.events")); err != nil || !strings.Contains(string(ev), "oom_kill 1\n") {
		t.Errorf("memory.events: %q, %v; want oom_kill 1", ev, err)
	}
	sleep, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: "sleep", Args: []string{"1000"}, UseCgroupFD: true, CgroupFD: fd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("left in the cgroup: %d\n", sleep.Pid())
}
