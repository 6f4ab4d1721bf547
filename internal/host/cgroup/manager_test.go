package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/host"
)

// fakeTree makes a directory that looks like a cgroup2 root to the
// Manager: plain files, so what a "write" leaves is what is read back
// (the kernel's io.max keeps a line per device; here the last line wins).
// The real thing is tested in TestKernelLimits.
func fakeTree(t *testing.T, controllers string, tenants ...string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{"cgroup.controllers": controllers, "cgroup.subtree_control": ""}
	dirs := []string{root, filepath.Join(root, "wcp360")}
	for _, tn := range tenants {
		dirs = append(dirs, filepath.Join(root, "wcp360", tn))
	}
	for i, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range files {
			writeT(t, filepath.Join(d, f), v)
		}
		if i >= 2 {
			for f, v := range map[string]string{"memory.high": "max\n", "memory.max": "max\n", "cpu.max": "max 100000\n", "pids.max": "max\n", "io.max": ""} {
				writeT(t, filepath.Join(d, f), v)
			}
		}
	}
	return root
}

func writeT(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestManagerApplyObserve(t *testing.T) {
	root := fakeTree(t, "cpuset cpu io memory hugetlb pids rdma misc\n", "shop")
	m, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	disk := Device{254, 0}
	l := Limits{MemoryHigh: 512 << 20, CPUPercent: 150, Pids: 100, IO: map[Device]IOMax{disk: {ReadBPS: 10 << 20, WriteBPS: Unlimited, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}}
	want := []host.Difference{
		{Field: "memory.high", Want: "536870912", Have: "max"},
		{Field: "cpu.max", Want: "150000 100000", Have: "max 100000"},
		{Field: "pids.max", Want: "100", Have: "max"},
		{Field: "io.max 254:0", Want: "rbps=10485760 wbps=max riops=max wiops=max", Have: "none"},
	}
	got, err := m.Observe("shop", l)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Observe (-want +got):\n%s", d)
	}
	changed, err := m.Apply("shop", l)
	if err != nil {
		t.Fatal(err)
	}
	wantChanged := append([]host.Difference{
		{Field: "subtree_control " + root, Want: "+cpu +io +memory +pids", Have: ""},
		{Field: "subtree_control " + filepath.Join(root, "wcp360"), Want: "+cpu +io +memory +pids", Have: ""},
	}, want...)
	if d := cmp.Diff(wantChanged, changed); d != "" {
		t.Errorf("Apply (-want +got):\n%s", d)
	}
	dir, _ := m.Dir("shop")
	for f, want := range map[string]string{"memory.high": "536870912", "cpu.max": "150000 100000", "pids.max": "100", "io.max": "254:0 rbps=10485760 wbps=max riops=max wiops=max"} {
		if b, _ := os.ReadFile(filepath.Join(dir, f)); string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	// The fake subtree_control keeps the last write only.
	writeT(t, filepath.Join(root, "cgroup.subtree_control"), "cpu io memory pids")
	writeT(t, filepath.Join(root, "wcp360", "cgroup.subtree_control"), "cpu io memory pids")
	if again, err := m.Apply("shop", l); err != nil || len(again) > 0 {
		t.Errorf("Apply again: %v, %v; want no change", again, err)
	}

	// By hand: memory.max, and an io.max line of another device.
	writeT(t, filepath.Join(dir, "memory.max"), "1073741824\n")
	writeT(t, filepath.Join(dir, "io.max"), "254:0 rbps=10485760 wbps=max riops=max wiops=max\n8:0 rbps=max wbps=2 riops=max wiops=max\n")
	got, err = m.Observe("shop", l)
	if err != nil {
		t.Fatal(err)
	}
	want = []host.Difference{
		{Field: "memory.max", Want: "max", Have: "1073741824"},
		{Field: "io.max 8:0", Want: "none", Have: "rbps=max wbps=2 riops=max wiops=max"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Observe after hand edits (-want +got):\n%s", d)
	}
	if _, err := m.Apply("shop", l); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "io.max")); string(b) != "8:0 rbps=max wbps=max riops=max wiops=max" {
		t.Errorf("io.max written %q, want the line that lifts 8:0's limit", b)
	}
}

func TestManagerCPUPeriod(t *testing.T) {
	root := fakeTree(t, "cpu io memory pids\n", "shop")
	m, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "wcp360", "shop")
	l := Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}
	writeT(t, filepath.Join(dir, "cpu.max"), "50000 100000\n") // the default period's 50%
	got, err := m.Observe("shop", l)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]host.Difference{{Field: "cpu.max", Want: "5000 10000", Have: "50000 100000"}}, got); d != "" {
		t.Errorf("Observe (-want +got):\n%s", d)
	}
	if _, err := m.Apply("shop", l); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cpu.max")); string(b) != "5000 10000" {
		t.Errorf("cpu.max = %q, want \"5000 10000\"", b)
	}
	// A period changed by hand, the share kept, is drift all the same.
	writeT(t, filepath.Join(dir, "cpu.max"), "10000 20000\n")
	if got, err := m.Observe("shop", l); err != nil || len(got) != 1 || got[0].Have != "10000 20000" {
		t.Errorf("Observe after a hand-changed period: %v, %v", got, err)
	}
	// A cpu limit under 1 ms of the period is refused before any write.
	if _, err := m.Apply("shop", Limits{CPUPercent: 5, CPUPeriod: 10 * time.Millisecond}); !errors.Is(err, ErrInvalidLimits) {
		t.Errorf("Apply 5%% of 10ms: %v, want ErrInvalidLimits", err)
	}
}

func TestManagerObserveAbsent(t *testing.T) {
	root := fakeTree(t, "cpu io memory pids")
	m, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Observe("shop", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []host.Difference{{Field: "cgroup", Want: filepath.Join(root, "wcp360", "shop"), Have: "absent"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Observe (-want +got):\n%s", d)
	}
	// A directory without the controllers' files: they are not enabled.
	if err := os.Mkdir(filepath.Join(root, "wcp360", "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = m.Observe("shop", Limits{Pids: 5, IO: map[Device]IOMax{{8, 0}: {2, 2, 2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if d.Have != "absent" {
			t.Errorf("%v: want absent", d)
		}
	}
	if len(got) != 5 {
		t.Errorf("Observe: %v, want 5 absent files", got)
	}
}

func TestManagerControllerUnavailable(t *testing.T) {
	// cgroup2 on a hybrid host: no controllers.
	root := fakeTree(t, "hugetlb\n")
	m, err := New(Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply("shop", Limits{})
	if !errors.Is(err, ErrControllerUnavailable) || !strings.Contains(err.Error(), "cpu, io, memory, pids") {
		t.Errorf("Apply: %v, want ErrControllerUnavailable naming cpu, io, memory, pids", err)
	}
	if _, err := os.Stat(filepath.Join(root, "wcp360", "shop")); err == nil {
		t.Error("Apply made the tenant's cgroup without controllers")
	}
}

func TestNames(t *testing.T) {
	for _, o := range []Options{{Root: "relative"}, {Subtree: "../x"}, {Subtree: "a/b"}, {Subtree: "A"}} {
		if _, err := New(o); !errors.Is(err, ErrInvalidName) {
			t.Errorf("New(%+v): %v, want ErrInvalidName", o, err)
		}
	}
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := m.Dir("shop-2"); err != nil || d != "/sys/fs/cgroup/wcp360/shop-2" {
		t.Errorf("Dir(shop-2) = %q, %v", d, err)
	}
	for _, n := range []string{"", ".", "..", "a/b", "Shop", "-a", strings.Repeat("a", 64), "a\n"} {
		if _, err := m.Dir(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Dir(%q): %v, want ErrInvalidName", n, err)
		}
	}
	if _, err := m.Stat("shop", "../../x.y"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Stat of ../../x.y: %v", err)
	}
}

func TestHostPressureFile(t *testing.T) {
	proc := t.TempDir()
	if err := os.Mkdir(filepath.Join(proc, "pressure"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cpu", "memory", "io"} {
		writeT(t, filepath.Join(proc, "pressure", f), "some avg10=1.50 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	}
	p, err := HostPressure(proc)
	if err != nil {
		t.Fatal(err)
	}
	if p.IO.Some.Avg10 != 1.5 || p.Memory.Full == nil {
		t.Errorf("HostPressure = %+v", p)
	}
	writeT(t, filepath.Join(proc, "pressure", "io"), "some nonsense\n")
	if _, err := HostPressure(proc); !errors.Is(err, ErrParse) {
		t.Errorf("HostPressure with a bad io file: %v", err)
	}
}

// TestHostPressure reads this machine's /proc/pressure, when it has it.
func TestHostPressure(t *testing.T) {
	if _, err := os.Stat("/proc/pressure/cpu"); err != nil {
		t.Skipf("no PSI here: %v", err)
	}
	p, err := HostPressure("/proc")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cpu %s; memory %s; io %s", p.CPU.Some, p.Memory.Some, p.IO.Some)
}
