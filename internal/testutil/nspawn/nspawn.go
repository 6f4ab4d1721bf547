// Package nspawn boots a Debian 12 container with systemd as PID 1, for
// tests of code that drives systemd: neither our machines nor CI boot with
// systemd, so such a test boots one.
//
//	func TestSystemd(t *testing.T) {
//		if os.Getenv(innerEnv) == "1" {
//			testSystemdInContainer(t) // in the container, as root
//			return
//		}
//		h := nspawn.Prepare(t, "phpfpm")
//		leader := h.Boot(t, nspawn.Options{Name: fmt.Sprintf("wcp-phpfpm-%d", os.Getpid())})
//		h.RunTest(t, leader, "TestSystemd", []string{innerEnv + "=1"})
//	}
//
// On the host, Prepare builds (once, cached) the rootfs of
// hack/systemd-rootfs.sh and the calling package's tests as a static
// binary; Boot boots the rootfs with systemd-nspawn (--volatile=overlay:
// the cached tree never changes; --private-network), the binary bound
// read-only at /wcp360-test; RunTest runs it in the container's namespaces
// (nsenter).
//
// With CI (or sandbox.EnvRequire=1) set, every missing prerequisite is a
// failure; elsewhere a skip.
package nspawn

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
	"github.com/wcp360/wcp360/internal/sandbox"
)

// testDir is where the test binary's directory is bound in the container.
const testDir = "/wcp360-test"

// Host is what Prepare found and built on the host.
type Host struct {
	Nspawn  string // systemd-nspawn
	Nsenter string // nsenter
	Rootfs  string // the tree of hack/systemd-rootfs.sh
	Bin     string // the directory of the static test binary
	pkg     string // the test binary is pkg.test
}

// Options are a container's.
type Options struct {
	// Name is the machine's name, and that of the cgroups nspawn runs in:
	// unique among the containers running at once.
	Name string
	// Env is added to systemd-nspawn's environment (such as
	// SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1).
	Env []string
}

// Prepare finds systemd-nspawn, nsenter and the rootfs (building it if
// need be) and builds the calling package's tests, statically linked so
// that they run in any rootfs, as pkg.test. It skips the test, or fails it
// with CI or sandbox.EnvRequire=1 set, when one is missing.
func Prepare(t *testing.T, pkg string) Host {
	t.Helper()
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

	goTool, err := cmdrun.LookPath("go", "/usr/local/go/bin")
	if err != nil {
		missing("%v", err)
	}
	gomod, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: goTool, Args: []string{"env", "GOMOD"}, Env: os.Environ(), Timeout: time.Minute})
	if mod := strings.TrimSpace(string(gomod)); err != nil || filepath.Base(mod) != "go.mod" {
		t.Fatalf("no module's root, to find hack/systemd-rootfs.sh: go env GOMOD: %q, %v", mod, err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))

	start := time.Now()
	var env []string // where the rootfs is cached and fetched from, when set
	for _, k := range []string{"WCP_ROOTFS_CACHE", "WCP_DEBIAN_MIRROR", "http_proxy", "https_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: filepath.Join(root, "hack", "systemd-rootfs.sh"), Env: env, Timeout: 15 * time.Minute})
	if err != nil {
		missing("no systemd rootfs (hack/systemd-rootfs.sh): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	h := Host{Rootfs: lines[len(lines)-1], pkg: pkg}
	if !filepath.IsAbs(h.Rootfs) {
		t.Fatalf("hack/systemd-rootfs.sh printed %q, not a path", h.Rootfs)
	}
	timed(t, "rootfs "+h.Rootfs, start)
	if h.Nspawn, err = cmdrun.LookPath("systemd-nspawn", "/usr/bin"); err != nil {
		missing("%v (hack/systemd-rootfs.sh installs it)", err)
	}
	if h.Nsenter, err = cmdrun.LookPath("nsenter", "/usr/bin"); err != nil {
		missing("%v (util-linux)", err)
	}

	start = time.Now()
	h.Bin = t.TempDir()
	if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: goTool, Args: []string{"test", "-c", "-o", filepath.Join(h.Bin, pkg+".test"), "."},
		Env: append(os.Environ(), "CGO_ENABLED=0"), Timeout: 5 * time.Minute}); err != nil {
		t.Fatalf("build the test binary: %v", err)
	}
	timed(t, "static test binary", start)
	return h
}

func timed(t *testing.T, what string, start time.Time) {
	t.Helper()
	t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
}

// RunTest runs the test binary in the container of leader, with env as its
// environment, to run the test named test (the calling test, typically,
// which then takes env to mean that it runs in the container). Its output
// is logged; it failing fails t.
func (h Host) RunTest(t *testing.T, leader int, test string, env []string) {
	t.Helper()
	start := time.Now()
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: h.Nsenter,
		Args: []string{"-t", strconv.Itoa(leader), "-a", "--", testDir + "/" + h.pkg + ".test",
			"-test.run", "^" + test + "$", "-test.v", "-test.count=1", "-test.timeout=4m"},
		Env: env, Timeout: 5 * time.Minute})
	timed(t, "test in the container", start)
	t.Logf("in the container:\n%s", indent(string(out)))
	if err != nil {
		t.Fatalf("the test in the container failed: %v", err)
	}
}

// Boot boots the rootfs with systemd-nspawn, the test binary's directory
// bound read-only at /wcp360-test, and returns the container's PID 1 (as
// the host sees it) once systemd has finished booting. Cleanup powers it
// off: SIGTERM, then SIGKILL after 30 s. A failed boot fails t with the
// end of the container's console.
//
// nspawn runs in cgroups of its own, made here and removed afterwards: it
// puts the container's cgroups below its own (payload/, supervisor/), and
// they would otherwise stay behind in the host's hierarchy.
func (h Host) Boot(t *testing.T, o Options) int {
	t.Helper()
	start := time.Now()
	cgroups := ownCgroups(t, o.Name)
	console := filepath.Join(t.TempDir(), "console.log")
	logf, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	args := append([]string{"-c", `while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"`, "sh"},
		cgroups...)
	args = append(args, "--", h.Nspawn, "--quiet", "--directory", h.Rootfs, "--boot", "--volatile=overlay",
		"--register=no", "--keep-unit", "--private-network", "--machine", o.Name, "--link-journal=no",
		"--resolv-conf=off", "--timezone=off", "--console=read-only", "--bind-ro="+h.Bin+":"+testDir)
	p, err := cmdrun.Start(context.WithoutCancel(t.Context()), cmdrun.Cmd{Path: "/bin/sh", Args: args, Env: o.Env}, logf)
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
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: h.Nsenter,
		Args: []string{"-t", strconv.Itoa(leader), "-a", "--", "systemctl", "is-system-running", "--wait"}, Timeout: time.Minute})
	if state := strings.TrimSpace(string(out)); state != "running" && state != "degraded" {
		t.Fatalf("the container's systemd: %q, %v; console:\n%s", state, err, consoleTail())
	}
	timed(t, "boot", start)
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
	defer func() { _ = mounts.Close() }()
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
			if err := os.Mkdir(dir, 0o755); err != nil { //nolint:gosec // a cgroup, readable like its siblings
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
