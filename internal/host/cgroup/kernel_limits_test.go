package cgroup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/testutil/vm"
)

// role runs a helper: "burn <ms>" spins two goroutines for that long;
// "odirect <file> <MiB>" writes that many MiB to file with O_DIRECT and
// fsyncs it.
func role(spec string) int {
	f := strings.Fields(spec)
	switch {
	case len(f) == 2 && f[0] == "burn":
		ms, err := strconv.Atoi(f[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				for n := 0; time.Now().Before(end); n++ {
					_ = n * n
				}
			})
		}
		wg.Wait()
		return 0
	case len(f) == 3 && f[0] == "odirect":
		mib, err := strconv.Atoi(f[2])
		if err == nil {
			err = writeDirect(f[1], mib)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown role %q\n", spec)
	return 2
}

func writeDirect(path string, mib int) error {
	// O_DIRECT needs an aligned buffer: a mapping is page-aligned.
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	for i := range buf {
		buf[i] = byte(i)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_DIRECT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for range mib {
		if _, err := unix.Write(fd, buf); err != nil {
			return err
		}
	}
	return unix.Fsync(fd)
}

// runIn runs the test binary as a helper inside dir's cgroup, born there,
// and returns how long it took.
func runIn(t *testing.T, dir string, env ...string) (time.Duration, []byte, error) {
	t.Helper()
	c := cmdrun.Cmd{Path: os.Args[0], Env: env, Timeout: time.Minute}
	if dir != "" {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		c.UseCgroupFD, c.CgroupFD = true, fd
	}
	start := time.Now()
	out, err := cmdrun.Run(t.Context(), c)
	return time.Since(start), out, err
}

func newManager(t *testing.T, tenant string, l Limits) (*Manager, string) {
	t.Helper()
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(tenant, l); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is canceled by the time cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := m.Remove(ctx, tenant); err != nil {
			t.Errorf("Remove(%s): %v", tenant, err)
		}
	})
	dir, err := m.Dir(tenant)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := m.Observe(tenant, l); err != nil || len(d) > 0 {
		t.Fatalf("Observe right after Apply: %v, %v", d, err)
	}
	return m, dir
}

func stat(t *testing.T, m *Manager, tenant, file string) map[string]uint64 {
	t.Helper()
	st, err := m.Stat(tenant, file)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func pressure(t *testing.T, m *Manager, tenant string) Pressure {
	t.Helper()
	p, err := m.Pressure(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKernelLimits checks, on a real kernel, that each limit Apply writes
// is enforced, that Observe sees a limit changed by hand, and that PSI
// moves under load: one VM, a subtest per limit.
func TestKernelLimits(t *testing.T) {
	if vm.Run(t, vm.Options{MemoryMiB: 512, CPUs: 2, Disks: []vm.Disk{{Name: "data", FS: vm.XFS, SizeMiB: 320}, {Name: "parts", FS: vm.Raw, SizeMiB: 8}}}) {
		return
	}
	t.Run("drift", testKernelDrift)
	t.Run("memory.high", testKernelMemoryHigh)
	t.Run("cpu.max", testKernelCPUMax)
	t.Run("pids.max", testKernelPidsMax)
	t.Run("io.max", testKernelIOMax)
	t.Run("partition", testKernelPartition)
	t.Run("host pressure", func(t *testing.T) {
		p, err := HostPressure("/proc")
		if err != nil {
			t.Fatal(err)
		}
		if p.CPU.Some.Total == 0 {
			t.Errorf("/proc/pressure/cpu some total is 0 after the load above: %+v", p.CPU)
		}
		t.Logf("host pressure: cpu %s memory %s io %s", p.CPU.Some, p.Memory.Some, p.IO.Some)
	})
}

func testKernelDrift(t *testing.T) {
	// 50 MB is no whole number of pages: the kernel rounds it down, which
	// must not look like drift.
	l := Limits{MemoryHigh: 50_000_000, MemoryMax: 64 << 20, CPUPercent: 150, Pids: 100}
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := m.Apply("drift", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first Apply changed: %s", host.Summary(changed))
	t.Cleanup(func() { _, _ = m.Remove(context.Background(), "drift") })
	for _, f := range []string{"/sys/fs/cgroup/cgroup.subtree_control", "/sys/fs/cgroup/wcp360/cgroup.subtree_control"} {
		if w, err := readWords(f); err != nil || !w["cpu"] || !w["io"] || !w["memory"] || !w["pids"] {
			t.Errorf("%s: %v %v, want cpu io memory pids", f, w, err)
		}
	}
	if again, err := m.Apply("drift", l); err != nil || len(again) > 0 {
		t.Errorf("second Apply: changed %v, %v; want nothing", again, err)
	}
	dir, _ := m.Dir("drift")
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "cpu.max"))); got != "150000 100000" {
		t.Errorf("cpu.max = %q, want 150000 100000", got)
	}
	// By hand.
	write(t, filepath.Join(dir, "memory.max"), "16M")
	write(t, filepath.Join(dir, "pids.max"), "max")
	want := []host.Difference{
		{Field: "memory.max", Want: "67108864", Have: "16777216"},
		{Field: "pids.max", Want: "100", Have: "max"},
	}
	d, err := m.Observe("drift", l)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Observe after a hand-written memory.max (-want +got):\n%s", diff)
	}
	fixed, err := m.Apply("drift", l)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, fixed); diff != "" {
		t.Errorf("Apply corrected (-want +got):\n%s", diff)
	}
	if d, err := m.Observe("drift", l); err != nil || len(d) > 0 {
		t.Errorf("Observe after Apply: %v, %v", d, err)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "memory.max"))); got != "67108864" {
		t.Errorf("memory.max = %q after Apply", got)
	}
	// Lifting every limit.
	if _, err := m.Apply("drift", Limits{}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"memory.high": "max", "memory.max": "max", "cpu.max": "max 100000", "pids.max": "max"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(dir, f))); got != want {
			t.Errorf("%s = %q after Apply(no limits), want %q", f, got, want)
		}
	}
	// A cgroup below the tenant's, made by hand, goes too.
	if err := os.MkdirAll(filepath.Join(dir, "sub", "subsub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Remove(t.Context(), "drift"); !ok || err != nil {
		t.Errorf("Remove = %v, %v", ok, err)
	}
	if ok, err := m.Remove(t.Context(), "drift"); ok || err != nil {
		t.Errorf("Remove again = %v, %v; want false, nil", ok, err)
	}
	if d, err := m.Observe("drift", l); err != nil || len(d) != 1 || d[0].Have != "absent" {
		t.Errorf("Observe of a removed cgroup: %v, %v", d, err)
	}
}

// memory.high throttles: a hog past it is slowed down (not killed) and
// memory.events counts high.
func testKernelMemoryHigh(t *testing.T) {
	m, dir := newManager(t, "memhigh", Limits{MemoryHigh: 32 << 20})
	write(t, filepath.Join(dir, "memory.swap.max"), "0")
	free, out, err := runIn(t, "", envHogMiB+"=48")
	if err != nil {
		t.Fatalf("the hog unlimited: %v %s", err, out)
	}
	wait := max(5*free, 3*time.Second)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fired, err := m.WatchPressure(t.Context(), "memhigh", Memory, Trigger{Stall: 50 * time.Millisecond, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, err := cmdrun.Start(t.Context(), cmdrun.Cmd{Path: os.Args[0], Env: []string{envHogMiB + "=48"}, UseCgroupFD: true, CgroupFD: fd}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		t.Errorf("the 48 MiB hog under memory.high=32M ended within %s (unlimited: %s): not throttled", wait, free)
	case <-time.After(wait):
	}
	ev := stat(t, m, "memhigh", "memory.events")
	cur := mustReadInt(t, filepath.Join(dir, "memory.current"))
	ps := pressure(t, m, "memhigh")
	t.Logf("unlimited: %s; under memory.high after %s: memory.current %d MiB, events %v, memory.pressure %s", free, wait, cur>>20, ev, ps.Memory.Some)
	if ev["high"] == 0 || ev["oom_kill"] != 0 || ev["max"] != 0 {
		t.Errorf("memory.events %v: want high > 0, no max and no oom_kill", ev)
	}
	if ps.Memory.Some.Total == 0 {
		t.Errorf("memory.pressure some total 0 while throttled: %s", ps.Memory)
	}
	select {
	case <-fired:
	default:
		t.Error("the memory trigger (50ms in 1s) did not fire while the hog was throttled")
	}
	// Remove kills the hog (cgroup.kill) and waits for it.
	if ok, err := m.Remove(t.Context(), "memhigh"); !ok || err != nil {
		t.Fatalf("Remove with the hog inside: %v %v", ok, err)
	}
	<-p.Done()
	// A watch on a removed cgroup ends.
	select {
	case _, open := <-fired:
		for open {
			_, open = <-fired
		}
	case <-time.After(5 * time.Second):
		t.Error("the memory trigger's channel stayed open after Remove")
	}
}

// cpu.max: two spinning threads under 50% are throttled, and use about
// half a CPU.
func testKernelCPUMax(t *testing.T) {
	m, _ := newManager(t, "cpu", Limits{CPUPercent: 50})
	before := pressure(t, m, "cpu")
	// PSI triggers, the tenant's and the host's, fire under the load.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tr := Trigger{Stall: 100 * time.Millisecond, Window: time.Second}
	tenantFired, err := m.WatchPressure(ctx, "cpu", CPU, tr)
	if err != nil {
		t.Fatal(err)
	}
	hostFired, err := WatchHostPressure(ctx, "/proc", CPU, tr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tenantFired:
		t.Error("the tenant's cpu trigger fired before the load")
	default:
	}
	wall, out, err := runIn(t, mustDir(t, m, "cpu"), envRole+"=burn 2000")
	if err != nil {
		t.Fatalf("burner: %v %s", err, out)
	}
	for name, c := range map[string]<-chan struct{}{"tenant": tenantFired, "host": hostFired} {
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Errorf("the %s's cpu trigger %q did not fire under the load", name, tr)
		}
	}
	st := stat(t, m, "cpu", "cpu.stat")
	after := pressure(t, m, "cpu")
	usage := time.Duration(st["usage_usec"]) * time.Microsecond
	t.Logf("2 burners for %s under cpu.max 50000 100000: cpu.stat %v; cpu.pressure %s", wall, st, after.CPU.Some)
	if st["nr_throttled"] == 0 {
		t.Errorf("nr_throttled = 0: %v", st)
	}
	// Half a CPU of wall time, with a period of slack; at least a fifth
	// of it (TCG is slow, but the burner does get the CPU).
	if hi, lo := wall/2+wall/5+100*time.Millisecond, wall/10; usage > hi || usage < lo {
		t.Errorf("usage %s in %s under 50%%: want %s to %s", usage, wall, lo, hi)
	}
	if after.CPU.Some.Total <= before.CPU.Some.Total {
		t.Errorf("cpu.pressure some total did not move: %s -> %s", before.CPU.Some, after.CPU.Some)
	}
	// A period of 10 ms: the kernel takes "5000 10000", and prints it
	// back as Observe compares it.
	short := Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}
	if _, err := m.Apply("cpu", short); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(mustDir(t, m, "cpu"), "cpu.max"))); got != "5000 10000" {
		t.Errorf("cpu.max = %q, want 5000 10000", got)
	}
	if diffs, err := m.Observe("cpu", short); err != nil || len(diffs) > 0 {
		t.Errorf("Observe after a 10 ms period: %v, %v", diffs, err)
	}
}

func mustDir(t *testing.T, m *Manager, tenant string) string {
	t.Helper()
	d, err := m.Dir(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pids.max: a fork loop stops at the limit with EAGAIN.
func testKernelPidsMax(t *testing.T) {
	const limit = 20
	m, dir := newManager(t, "pids", Limits{Pids: limit})
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The shell counts the sleeps it started; a failed fork ends it.
	loop := `n=0; while :; do sleep 60 >/dev/null 2>&1 & n=$((n + 1)); echo "$n"; done`
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "/bin/sh", Args: []string{"-c", loop}, UseCgroupFD: true, CgroupFD: fd, Timeout: time.Minute})
	if err == nil {
		t.Fatalf("the fork loop ended without error: %s", out)
	}
	lines := strings.Fields(string(out))
	started := 0
	for _, l := range lines {
		if n, err := strconv.Atoi(l); err == nil {
			started = n
		}
	}
	cur := mustReadInt(t, filepath.Join(dir, "pids.current"))
	ev := stat(t, m, "pids", "pids.events")
	last := strings.TrimSpace(string(out))
	last = last[strings.LastIndexByte(last, '\n')+1:]
	t.Logf("fork loop under pids.max %d: started %d, pids.current %d, pids.events %v, last words %q", limit, started, cur, ev, last)
	// The shell is one of the limit.
	if started != limit-1 || cur != limit-1 {
		t.Errorf("started %d sleeps, pids.current %d: want %d each", started, cur, limit-1)
	}
	if ev["max"] == 0 {
		t.Errorf("pids.events max = 0: %v", ev)
	}
	if !strings.Contains(strings.ToLower(last), unix.EAGAIN.Error()) {
		t.Errorf("the fork loop did not stop on EAGAIN (%q): %s", unix.EAGAIN.Error(), last)
	}
}

// io.max: a direct write of n MiB under wbps takes about n/wbps seconds;
// the device is resolved from the mounted file system.
func testKernelIOMax(t *testing.T) {
	dev := vm.Device(t, "data")
	mnt := t.TempDir()
	if err := unix.Mount(dev, mnt, "xfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	d, err := DeviceOf(SysDevBlock, mnt)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(readFile(t, filepath.Join("/sys/block", filepath.Base(dev), "dev"))); d.String() != want {
		t.Fatalf("DeviceOf(%s) = %s, want %s (%s)", mnt, d, want, dev)
	}
	const mib, wbps = 8, 4 << 20
	l := Limits{IO: map[Device]IOMax{d: {ReadBPS: Unlimited, WriteBPS: wbps, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}}
	m, dir := newManager(t, "io", l)
	// Lifted by hand: the kernel drops the line, which is drift.
	write(t, filepath.Join(dir, "io.max"), d.String()+" wbps=max")
	wantDrift := []host.Difference{{Field: "io.max " + d.String(), Want: "rbps=max wbps=4194304 riops=max wiops=max", Have: "none"}}
	if got, err := m.Observe("io", l); err != nil || !cmp.Equal(got, wantDrift) {
		t.Errorf("Observe after io.max was lifted by hand: %v, %v; want %v", got, err, wantDrift)
	}
	if got, err := m.Apply("io", l); err != nil || !cmp.Equal(got, wantDrift) {
		t.Errorf("Apply after io.max was lifted by hand: %v, %v; want %v", got, err, wantDrift)
	}
	if got, want := strings.TrimSpace(readFile(t, filepath.Join(dir, "io.max"))), d.String()+" rbps=max wbps=4194304 riops=max wiops=max"; got != want {
		t.Errorf("io.max = %q, want %q", got, want)
	}
	free, out, err := runIn(t, "", fmt.Sprintf("%s=odirect %s %d", envRole, filepath.Join(mnt, "free"), mib))
	if err != nil {
		t.Fatalf("unlimited write: %v %s", err, out)
	}
	before := pressure(t, m, "io")
	took, out, err := runIn(t, dir, fmt.Sprintf("%s=odirect %s %d", envRole, filepath.Join(mnt, "limited"), mib))
	if err != nil {
		t.Fatalf("limited write: %v %s", err, out)
	}
	after := pressure(t, m, "io")
	want := time.Duration(mib<<20) * time.Second / wbps
	t.Logf("%d MiB direct: unlimited %s, under wbps=4MiB/s %s (want about %s); io.pressure %s", mib, free, took, want, after.IO.Some)
	if took < want*6/10 || took > 3*want+5*time.Second {
		t.Errorf("the limited write took %s, want about %s", took, want)
	}
	if after.IO.Some.Total <= before.IO.Some.Total {
		t.Errorf("io.pressure some total did not move: %s -> %s", before.IO.Some, after.IO.Some)
	}
}

// partition: io.max refuses a partition; WholeDisk maps it to its disk.
func testKernelPartition(t *testing.T) {
	dev := vm.Device(t, "parts")
	// An MBR with one Linux partition from sector 2048, 4096 sectors long.
	mbr := make([]byte, 512)
	e := mbr[446:]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	mbr[510], mbr[511] = 0x55, 0xaa
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		t.Fatalf("BLKRRPART: %v", err)
	}
	name := filepath.Base(dev)
	disk, err := parseDevice(strings.TrimSpace(readFile(t, filepath.Join("/sys/block", name, "dev"))))
	if err != nil {
		t.Fatal(err)
	}
	part, err := parseDevice(strings.TrimSpace(readFile(t, filepath.Join("/sys/block", name, name+"1", "dev"))))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := WholeDisk(SysDevBlock, part); err != nil || got != disk {
		t.Errorf("WholeDisk(%s) = %s, %v; want %s", part, got, err, disk)
	}
	if got, err := WholeDisk(SysDevBlock, disk); err != nil || got != disk {
		t.Errorf("WholeDisk(%s) = %s, %v; want itself", disk, got, err)
	}
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply("parts", Limits{IO: map[Device]IOMax{part: {ReadBPS: 1 << 20, WriteBPS: Unlimited, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}})
	t.Cleanup(func() { _, _ = m.Remove(context.Background(), "parts") })
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("io.max on partition %s: %v, want ENODEV", part, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
