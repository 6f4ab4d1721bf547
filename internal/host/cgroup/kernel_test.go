package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/vm"
)

// envHogMiB makes the test binary a memory hog: it touches that many MiB
// and exits 0.
const envHogMiB = "WCP_TEST_HOG_MIB"

// envRole makes the test binary a helper process of the kernel tests (see
// role).
const envRole = "WCP_TEST_ROLE"

func TestMain(m *testing.M) {
	if v := os.Getenv(envHogMiB); v != "" {
		os.Exit(hog(v))
	}
	if v := os.Getenv(envRole); v != "" {
		os.Exit(role(v))
	}
	if r := os.Getenv(envV1Role); r != "" {
		os.Exit(v1Role(r))
	}
	// The V1 tests run in a sandbox each (sandbox.Run).
	os.Exit(sandbox.Main(m))
}

// hog allocates mib MiB and writes to every page of it.
func hog(mib string) int {
	n, err := strconv.Atoi(mib)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	b := make([]byte, n<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Printf("touched %d MiB\n", n)
	return 0
}

// TestKernelMemoryMax: a process that allocates past its cgroup's
// memory.max is OOM-killed, and memory.events counts it.
func TestKernelMemoryMax(t *testing.T) {
	if vm.Run(t, vm.Options{MemoryMiB: 512}) {
		return
	}
	const limit = 32 << 20
	cg := newCgroup(t, "/sys/fs/cgroup", "wcp360-test", "tenant-a")
	write(t, filepath.Join(cg, "memory.max"), strconv.Itoa(limit))
	write(t, filepath.Join(cg, "memory.swap.max"), "0")

	fd, err := unix.Open(cg, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: os.Args[0], Env: []string{envHogMiB + "=128"}, UseCgroupFD: true, CgroupFD: fd})
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("the 128 MiB hog under memory.max=32M: want it killed, got %v (output %q)", err, out)
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the hog ended with %v, want SIGKILL", exitErr)
	}
	events := keyValues(t, filepath.Join(cg, "memory.events"))
	if events["oom_kill"] < 1 {
		t.Errorf("memory.events oom_kill = %d, want >= 1 (%v)", events["oom_kill"], events)
	}
	// The kernel may charge a little past memory.max before it kills
	// (seen: one page on 6.1), never much.
	if peak := mustReadInt(t, filepath.Join(cg, "memory.peak")); peak > limit+1<<20 {
		t.Errorf("memory.peak = %d, want about memory.max %d", peak, limit)
	}

	// The same hog within the limit runs to the end.
	write(t, filepath.Join(cg, "memory.max"), strconv.Itoa(256<<20))
	if out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: os.Args[0], Env: []string{envHogMiB + "=128"}, UseCgroupFD: true, CgroupFD: fd}); err != nil {
		t.Errorf("the 128 MiB hog under memory.max=256M: %v (output %q)", err, out)
	}
}

// newCgroup makes the cgroup root/parent/child with the memory controller
// enabled for child, removed when the test ends.
func newCgroup(t *testing.T, root, parent, child string) string {
	t.Helper()
	p := filepath.Join(root, parent)
	c := filepath.Join(p, child)
	write(t, filepath.Join(root, "cgroup.subtree_control"), "+memory")
	for _, d := range []string{p, c} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(d) })
		if d == p {
			write(t, filepath.Join(p, "cgroup.subtree_control"), "+memory")
		}
	}
	return c
}

func write(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustReadInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// keyValues reads a flat-keyed cgroup file such as memory.events.
func keyValues(t *testing.T, path string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for l := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, l, err)
		}
		m[k] = n
	}
	return m
}
