package cgroup

import (
	"bytes"
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
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/testutil/nspawn"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// TestSystemd runs the Systemd driver against a real systemd (Debian 12's
// 252): neither our machines nor CI boot with systemd, so the test boots
// one, as phpfpm's TestSystemd does (package nspawn): on the host it
// builds (once, cached) the Debian 12 rootfs of hack/systemd-rootfs.sh,
// builds this package's tests statically, boots the rootfs with
// systemd-nspawn and runs the binary in the container's namespaces, where
// TestSystemd runs testSystemdInContainer. It boots twice: as nspawn picks
// the cgroup layout from the host's (on a hybrid host: hybrid, the v1
// controllers mounted read-only in the container), and with
// SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 (cgroup2 only, with whatever
// controllers the host delegates: none on a hybrid host).
//
// With CI (or WCP_REQUIRE_SANDBOX=1) set, every missing prerequisite is a
// failure; elsewhere a skip.
func TestSystemd(t *testing.T) {
	if os.Getenv(sdInnerEnv) == "1" {
		testSystemdInContainer(t)
		return
	}
	if testing.Short() {
		t.Skip("-short: boots systemd containers (and builds their rootfs, once)")
	}
	h := nspawn.Prepare(t, "cgroup")

	for _, layout := range []struct {
		name string
		env  []string
	}{
		{"nspawn-default", nil},
		{"unified", []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"}},
	} {
		t.Run(layout.name, func(t *testing.T) {
			t.Parallel()
			leader := h.Boot(t, nspawn.Options{Name: fmt.Sprintf("wcp-cgroup-%s-%d", layout.name, os.Getpid()), Env: layout.env})
			h.RunTest(t, leader, "TestSystemd", []string{sdInnerEnv + "=1"})
		})
	}
}

// sdInnerEnv tells the test binary that it runs in the container.
const sdInnerEnv = "WCP_CGROUP_SYSTEMD_INNER"

// The tenant of the test in the container: a '-' in its name is escaped in
// the slice's.
const (
	sdTenant      = "acme-co"
	sdSlice       = `wcp360-tenant-acme\x2dco.slice`
	sdSliceCgroup = `/wcp360.slice/wcp360-tenant.slice/` + sdSlice
)

// testSystemdInContainer is the test proper: root in a container whose
// PID 1 is systemd, in no unit of its (nsenter).
func testSystemdInContainer(t *testing.T) {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Fatal("systemd is not PID 1 here")
	}
	ctx := t.Context()
	s, err := NewSystemd(ctx, SystemdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	lay := sdReadLayout(t)
	en := s.Enforcement()
	t.Logf("systemd %s, %s; enforcement %+v", s.Version(), lay, en)
	sdCheckClaims(t, en, lay)
	if got := SystemdSliceCgroup(sdTenant); got != sdSliceCgroup {
		t.Errorf("SystemdSliceCgroup = %q, want %q", got, sdSliceCgroup)
	}
	dev := sdAnyDisk(t)
	devPath := sdDevicePath(dev)
	l1 := Limits{MemoryHigh: 200<<20 + 123, MemoryMax: 256 << 20, CPUPercent: 150, Pids: 64,
		IO: map[Device]IOMax{dev: {ReadBPS: 10 << 20, WriteBPS: Unlimited, ReadIOPS: Unlimited, WriteIOPS: 500}}}

	// Nothing yet: the slice is a difference.
	ds := sdMust(s.Observe(sdTenant, l1))(t)
	if !slices.ContainsFunc(ds, func(d host.Difference) bool { return d.Field == "slice "+sdSlice && d.Want == "active" }) {
		t.Errorf("Observe before Apply: %v, want the slice missing", ds)
	}

	// Apply makes the slice, transient, with the properties.
	start := time.Now()
	ds = sdMust(s.Apply(sdTenant, l1))(t)
	t.Logf("first Apply: %s", time.Since(start).Round(time.Microsecond))
	sdWantFields(t, "first Apply", ds, "slice "+sdSlice, "MemoryHigh", "MemoryMax", "CPUQuota", "TasksMax",
		"IOReadBandwidthMax "+devPath, "IOWriteIOPSMax "+devPath)
	sdWantProps(t, map[string]string{"ActiveState": "active", "Transient": "yes", "ControlGroup": sdSliceCgroup,
		"MemoryHigh": "209715323", "MemoryMax": "268435456", "CPUQuotaPerSecUSec": "1.500000s", "TasksMax": "64",
		"IOReadBandwidthMax": devPath + " 10485760", "IOWriteIOPSMax": devPath + " 500", "IOWriteBandwidthMax": "", "IOReadIOPSMax": "",
		"MemoryAccounting": "yes", "CPUAccounting": "yes", "TasksAccounting": "yes", "IOAccounting": "yes"})
	sdCheckFiles(t, en, lay, l1)
	sdWantConverged(t, s, sdTenant, l1)
	start = time.Now()
	if ds := sdMust(s.Apply(sdTenant, l1))(t); len(ds) > 0 {
		t.Errorf("Apply again: %v, want nothing", ds)
	}
	t.Logf("Apply without changes: %s", time.Since(start).Round(time.Microsecond))

	// New limits: only what changed.
	l2 := Limits{MemoryHigh: 200<<20 + 123, MemoryMax: 300 << 20, CPUPercent: 50,
		IO: map[Device]IOMax{dev: {ReadBPS: 10 << 20, WriteBPS: 5 << 20, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}}
	ds = sdMust(s.Apply(sdTenant, l2))(t)
	sdWantFields(t, "Apply of new limits", ds, "MemoryMax", "CPUQuota", "TasksMax",
		"IOWriteBandwidthMax "+devPath, "IOWriteIOPSMax "+devPath)
	sdWantProps(t, map[string]string{"MemoryMax": "314572800", "CPUQuotaPerSecUSec": "500ms", "TasksMax": "infinity",
		"IOReadBandwidthMax": devPath + " 10485760", "IOWriteBandwidthMax": devPath + " 5242880", "IOWriteIOPSMax": ""})
	sdCheckFiles(t, en, lay, l2)
	sdWantConverged(t, s, sdTenant, l2)

	// By hand: systemctl set-property is drift, an IO entry for another
	// device included; Apply puts it back.
	sdRun(t, "systemctl", "set-property", "--runtime", sdSlice, "MemoryMax=1G", "TasksMax=5", "IOReadBandwidthMax=/dev/block/7:0 1M")
	ds = sdMust(s.Observe(sdTenant, l2))(t)
	sdWantDiffs(t, "Observe after set-property", ds, []host.Difference{
		{Field: "MemoryMax", Want: "314572800", Have: "1073741824"},
		{Field: "TasksMax", Want: "infinity", Have: "5"},
		{Field: "IOReadBandwidthMax /dev/block/7:0", Want: "infinity", Have: "1000000"},
	})
	ds = sdMust(s.Apply(sdTenant, l2))(t)
	sdWantFields(t, "Apply after set-property", ds, "MemoryMax", "TasksMax", "IOReadBandwidthMax /dev/block/7:0")
	sdWantProps(t, map[string]string{"MemoryMax": "314572800", "TasksMax": "infinity", "IOReadBandwidthMax": devPath + " 10485760"})
	sdCheckFiles(t, en, lay, l2)
	sdWantConverged(t, s, sdTenant, l2)

	// By hand in the kernel's files, systemd's properties unchanged: drift
	// too, where the controller is there to have the file.
	sdKernelDrift(t, s, en, lay, l2)

	// A transient slice and its runtime properties survive daemon-reload.
	sdRun(t, "systemctl", "daemon-reload")
	sdWantConverged(t, s, sdTenant, l2)

	// Processes in the slice: a service, and CPU burnt by two more.
	sdRun(t, "systemd-run", "--quiet", "--unit=wcp-sleep", "--slice="+sdSlice, "/usr/bin/sleep", "1000")
	sleepPID := sdMainPID(t, "wcp-sleep.service")
	if cg := sdCgroupOf(sleepPID); cg != sdSliceCgroup+"/wcp-sleep.service" {
		t.Errorf("the service's process is in %q, want it in the slice", cg)
	}
	fired := make(chan struct{}, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	// A 2 s window: without CAP_SYS_RESOURCE (as on some CI machines) the
	// kernel takes no other.
	watchC, err := s.WatchPressure(wctx, sdTenant, CPU, Trigger{Stall: 100 * time.Millisecond, Window: 2 * time.Second})
	if err != nil {
		t.Fatalf("WatchPressure: %v", err)
	}
	watchClosed := make(chan struct{})
	go func() {
		defer close(watchClosed)
		for range watchC {
			select {
			case fired <- struct{}{}:
			default:
			}
		}
	}()
	before := sdMust(s.Usage(sdTenant))(t)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			if out, status := sdRunUnit(t, fmt.Sprintf("wcp-burn-%d", i), []string{"--slice=" + sdSlice, "--setenv=" + envRole + "=burn 700"},
				"/wcp360-test/cgroup.test"); status != 0 {
				t.Errorf("the burner exited %d: %s", status, out)
			}
		})
	}
	wg.Wait()
	u := sdMust(s.Usage(sdTenant))(t)
	t.Logf("usage %+v", u)
	// (How much CPU they get depends on the machine's load.)
	if burnt := u.CPU - before.CPU; burnt < 100*time.Millisecond {
		t.Errorf("Usage: %s of CPU burnt by two 700 ms burners, want at least 100 ms (%+v)", burnt, u)
	}
	sdCheckUsage(t, en, u)
	p := sdMust(s.Pressure(sdTenant))(t)
	t.Logf("pressure: cpu %s memory %s io %s", p.CPU, p.Memory, p.IO)
	// Four spinning threads on fewer CPUs wait for one.
	if runtime.NumCPU() < 4 {
		if p.CPU.Some.Total == 0 {
			t.Errorf("cpu.pressure of the slice: %s, want some stall", p.CPU)
		}
		select {
		case <-fired:
		case <-time.After(5 * time.Second):
			t.Errorf("the PSI trigger did not fire (cpu.pressure %s)", p.CPU)
		}
	}

	// StartIn: born in a scope in the slice, where cgroup2 holds the
	// processes; refused elsewhere.
	started := sdStartIn(t, s, lay)

	// Remove stops the slice and everything in it.
	start = time.Now()
	if ok, err := s.Remove(ctx, sdTenant); err != nil || !ok {
		t.Fatalf("Remove: %v, %v", ok, err)
	}
	t.Logf("Remove: %s", time.Since(start).Round(time.Millisecond))
	for _, pid := range append(started, sleepPID) {
		if sdAlive(pid) {
			t.Errorf("process %d still runs after Remove", pid)
		}
	}
	sdWantProps(t, map[string]string{"ActiveState": "inactive", "ControlGroup": ""})
	if st := sdUnitProps(t, "wcp-sleep.service", "ActiveState")["ActiveState"]; st == "active" {
		t.Errorf("wcp-sleep.service is %s after Remove", st)
	}
	if lay.unified != "" {
		if _, err := os.Stat(filepath.Join(lay.unified, sdSliceCgroup)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the slice's cgroup after Remove: %v", err)
		}
	}
	select {
	case <-watchClosed:
	case <-time.After(5 * time.Second):
		t.Error("the pressure watch was not closed when the slice went away")
	}
	ds = sdMust(s.Observe(sdTenant, l2))(t)
	if !slices.ContainsFunc(ds, func(d host.Difference) bool { return d.Field == "slice "+sdSlice }) {
		t.Errorf("Observe after Remove: %v, want the slice missing", ds)
	}
	if ok, err := s.Remove(ctx, sdTenant); err != nil || ok {
		t.Errorf("Remove again: %v, %v; want false, nil", ok, err)
	}
	if _, err := s.Usage(sdTenant); !errors.Is(err, ErrSliceInactive) {
		t.Errorf("Usage after Remove: %v, want ErrSliceInactive", err)
	}

	// Made again after Remove.
	sdMust(s.Apply(sdTenant, l1))(t)
	sdWantProps(t, map[string]string{"ActiveState": "active", "MemoryMax": "268435456"})
	sdWantConverged(t, s, sdTenant, l1)
	if ok, err := s.Remove(ctx, sdTenant); err != nil || !ok {
		t.Fatalf("Remove: %v, %v", ok, err)
	}

	// A slice systemd made on its own for a unit with Slice= (phpfpm's
	// masters started before the limits were applied): Apply takes it
	// over, with the unit running on.
	const beta = "beta"
	betaSlice := SystemdSlice(beta)
	sdRun(t, "systemd-run", "--quiet", "--unit=wcp-beta", "--slice="+betaSlice, "/usr/bin/sleep", "1000")
	betaPID := sdMainPID(t, "wcp-beta.service")
	ds = sdMust(s.Apply(beta, l1))(t)
	if slices.ContainsFunc(ds, func(d host.Difference) bool { return strings.HasPrefix(d.Field, "slice ") }) {
		t.Errorf("Apply on the running implicit slice: %v, want no slice difference", ds)
	}
	if got := sdUnitProps(t, betaSlice, "MemoryMax", "TasksMax", "Transient"); got["MemoryMax"] != "268435456" || got["TasksMax"] != "64" || got["Transient"] != "yes" {
		t.Errorf("the implicit slice after Apply: %v", got)
	}
	sdWantConverged(t, s, beta, l1)
	if !sdAlive(betaPID) {
		t.Error("Apply stopped the unit running in the slice")
	}
	if ok, err := s.Remove(ctx, beta); err != nil || !ok {
		t.Fatalf("Remove(beta): %v, %v", ok, err)
	}
	if sdAlive(betaPID) {
		t.Error("the unit in beta's slice runs on after Remove")
	}
}

// sdStartIn starts processes with StartIn and returns their pids. The
// shell's first command prints its cgroups: the process was in its scope
// before it ran anything.
func sdStartIn(t *testing.T, s *Systemd, lay sdLayout) []int {
	t.Helper()
	if !lay.allUnified {
		err := s.StartIn(sdTenant, func(int) error { t.Error("start called"); return nil })
		if !errors.Is(err, ErrStartInUnsupported) {
			t.Errorf("StartIn on a hybrid host: %v, want ErrStartInUnsupported", err)
		}
		t.Logf("StartIn on a hybrid host: %v", err)
		return nil
	}

	// A start that fails (no such program): its error, and nothing left.
	err := s.StartIn(sdTenant, func(fd int) error {
		_, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: "/nonexistent/program", UseCgroupFD: true, CgroupFD: fd}, nil)
		return err
	})
	if err == nil {
		t.Error("StartIn of a program that does not exist: no error")
	}
	t.Logf("StartIn of a program that does not exist: %v", err)

	var pids []int
	for range 5 {
		var buf syncbuf.Buffer
		var proc *cmdrun.Process
		start := time.Now()
		err = s.StartIn(sdTenant, func(fd int) error {
			var err error
			proc, err = cmdrun.Start(context.Background(), cmdrun.Cmd{Path: "/bin/sh", Args: []string{"-c", "cat /proc/$$/cgroup; echo; exec sleep 1000"},
				UseCgroupFD: true, CgroupFD: fd}, &buf)
			return err
		})
		if err != nil {
			t.Fatalf("StartIn: %v", err)
		}
		t.Logf("StartIn: %s", time.Since(start).Round(time.Microsecond))
		pid := proc.Pid()
		pids = append(pids, pid)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(buf.String(), "\n\n") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cg := sdCgroupOf(pid)
		scope, ok := strings.CutPrefix(cg, sdSliceCgroup+"/")
		if !ok || !strings.HasPrefix(scope, "wcp360-start-"+sdTenant+"-") || !strings.HasSuffix(scope, ".scope") {
			t.Errorf("the started process is in %q, want a scope in %s", cg, sdSliceCgroup)
		}
		if first := buf.String(); !strings.Contains(first, "0::"+cg+"\n") {
			t.Errorf("the started shell first saw itself in %q, want 0::%s", first, cg)
		}
		if got := sdUnitProps(t, scope, "ActiveState", "Slice"); got["ActiveState"] != "active" || got["Slice"] != sdSlice {
			t.Errorf("%s: %v", scope, got)
		}
	}
	// One scope per process, no placeholder left.
	waitFor := time.Now().Add(5 * time.Second)
	for {
		units := strings.Fields(sdRun(t, "systemctl", "list-units", "--plain", "--no-legend", "--state=active", "wcp360-start-*"))
		var scopes []string
		for _, u := range units {
			if strings.HasSuffix(u, ".scope") {
				scopes = append(scopes, u)
			}
		}
		procs := sdRun(t, "ps", "-eo", "args")
		if len(scopes) == len(pids) && !strings.Contains(procs, "sleep infinity") {
			break
		}
		if time.Now().After(waitFor) {
			t.Errorf("after StartIn of %d processes: scopes %q, processes:\n%s", len(pids), scopes, procs)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pids
}

// sdLayout is the container's cgroup layout, read without the driver.
type sdLayout struct {
	allUnified  bool            // cgroup2 only
	unified     string          // cgroup2 mount systemd uses
	controllers map[string]bool // its root's cgroup.controllers, unified only
	v1Writable  map[string]bool // v1 hierarchies systemd can write
}

func (l sdLayout) String() string {
	return fmt.Sprintf("cgroup2 at %q with %v, writable v1 hierarchies %v", l.unified, slices.Sorted(func(yield func(string) bool) {
		for k := range l.controllers {
			if !yield(k) {
				return
			}
		}
	}), l.v1Writable)
}

func sdReadLayout(t *testing.T) sdLayout {
	t.Helper()
	l := sdLayout{controllers: map[string]bool{}, v1Writable: map[string]bool{}}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		l.allUnified, l.unified = true, "/sys/fs/cgroup"
		for _, c := range strings.Fields(sdReadFile(t, "/sys/fs/cgroup/cgroup.controllers")) {
			l.controllers[c] = true
		}
		return l
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
		l.unified = "/sys/fs/cgroup/unified"
	}
	for _, c := range []string{"memory", "cpu", "pids", "blkio"} {
		l.v1Writable[c] = unix.Access("/sys/fs/cgroup/"+c+"/cgroup.procs", unix.W_OK) == nil
	}
	return l
}

// sdCheckClaims: every limit Enforcement says is enforced has its
// controller where systemd can use it, and every other one says why not.
func sdCheckClaims(t *testing.T, en Enforcement, lay sdLayout) {
	t.Helper()
	if en.Driver != "systemd (slice per tenant)" {
		t.Errorf("Enforcement.Driver = %q", en.Driver)
	}
	v1Of := map[string]string{LimitMemoryMax: "memory", LimitCPU: "cpu", LimitPids: "pids"}
	for _, limit := range AllLimits {
		enforced := slices.Contains(en.Enforced, limit)
		var backed bool
		if lay.allUnified {
			backed = lay.controllers[sdLimitControllers[limit]]
		} else if c, ok := v1Of[limit]; ok {
			backed = lay.v1Writable[c]
		}
		switch {
		case enforced && !backed:
			t.Errorf("Enforcement claims %s, but its controller is not usable by systemd here (%s)", limit, lay)
		case !enforced && en.NotEnforced[limit] == "":
			t.Errorf("Enforcement neither enforces %s nor says why not", limit)
		case !enforced && backed:
			t.Errorf("Enforcement does not claim %s, though its controller is there (%s)", limit, lay)
		}
	}
	if _, err := os.Stat(filepath.Join(lay.unified, "cpu.pressure")); (err == nil) != en.PSI {
		t.Errorf("Enforcement.PSI = %t, cpu.pressure in %q: %v", en.PSI, lay.unified, err)
	}
}

// sdCheckFiles reads the slice's cgroup files of the enforced limits.
func sdCheckFiles(t *testing.T, en Enforcement, lay sdLayout, l Limits) {
	t.Helper()
	if len(en.Enforced) == 0 {
		t.Logf("no limit is enforced here (%s): no cgroup file to read back", lay)
		return
	}
	pg := int64(os.Getpagesize())
	want := map[string]string{}
	if lay.allUnified {
		for _, st := range l.settings(pg) {
			if c, _, _ := strings.Cut(st.file, "."); lay.controllers[c] && st.file != "io.max" {
				want[filepath.Join(lay.unified, sdSliceCgroup, st.file)] = st.want
			}
		}
		if lay.controllers["io"] {
			var io strings.Builder
			for _, d := range sortedDevices(l.IO) {
				if l.IO[d] != NoIOLimit() {
					io.WriteString(d.String() + " " + l.IO[d].String() + "\n")
				}
			}
			want[filepath.Join(lay.unified, sdSliceCgroup, "io.max")] = strings.TrimSpace(io.String())
		}
	} else {
		if slices.Contains(en.Enforced, LimitMemoryMax) {
			w, _ := sdV1Memory(l.MemoryMax, pg)
			want["/sys/fs/cgroup/memory"+sdSliceCgroup+"/memory.limit_in_bytes"] = w
		}
		if slices.Contains(en.Enforced, LimitCPU) {
			q := "-1"
			if l.CPUPercent > 0 {
				q = strconv.Itoa(l.CPUPercent * 1000)
			}
			want["/sys/fs/cgroup/cpu"+sdSliceCgroup+"/cpu.cfs_quota_us"] = q
		}
		if slices.Contains(en.Enforced, LimitPids) {
			w := "max"
			if l.Pids > 0 {
				w = strconv.FormatInt(l.Pids, 10)
			}
			want["/sys/fs/cgroup/pids"+sdSliceCgroup+"/pids.max"] = w
		}
	}
	for path, w := range want {
		if got := strings.TrimSpace(sdReadFile(t, path)); got != w {
			t.Errorf("%s = %q, want %q", path, got, w)
		}
	}
}

// sdKernelDrift writes a limit into the slice's cgroup file by hand, where
// there is one: Observe sees it, Apply writes it back.
func sdKernelDrift(t *testing.T, s *Systemd, en Enforcement, lay sdLayout, l Limits) {
	t.Helper()
	var path, field, value string
	switch {
	case !slices.Contains(en.Enforced, LimitPids):
		t.Logf("pids is not enforced here: no kernel file to write by hand")
		return
	case lay.allUnified:
		path, field, value = filepath.Join(lay.unified, sdSliceCgroup, "pids.max"), "pids.max", "7"
	default:
		path, field, value = "/sys/fs/cgroup/pids"+sdSliceCgroup+"/pids.max", "pids.max", "7"
	}
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
	ds := sdMust(s.Observe(sdTenant, l))(t)
	sdWantDiffs(t, "Observe after a hand write to "+path, ds, []host.Difference{{Field: field, Want: "max", Have: value}})
	sdWantFields(t, "Apply after a hand write", sdMust(s.Apply(sdTenant, l))(t), field)
	if got := strings.TrimSpace(sdReadFile(t, path)); got != "max" {
		t.Errorf("%s after Apply: %q, want max", path, got)
	}
	sdWantConverged(t, s, sdTenant, l)
}

// sdCheckUsage: what can be read is, what cannot is named.
func sdCheckUsage(t *testing.T, en Enforcement, u Usage) {
	t.Helper()
	if slices.Contains(en.Enforced, LimitPids) && u.Pids < 1 {
		t.Errorf("Usage.Pids = %d with a service running", u.Pids)
	}
	if slices.Contains(en.Enforced, LimitMemoryMax) && u.MemoryCurrent <= 0 {
		t.Errorf("Usage.MemoryCurrent = %d with a service running", u.MemoryCurrent)
	}
	if !slices.Contains(en.Enforced, LimitPids) && !slices.Contains(u.Missing, "pids.current") {
		t.Errorf("Usage %+v: without a pids controller, want pids.current missing", u)
	}
	if !slices.Contains(en.Enforced, LimitMemoryMax) && !slices.Contains(u.Missing, "memory.current") {
		t.Errorf("Usage %+v: without a memory controller, want memory.current missing", u)
	}
}

func sdAnyDisk(t *testing.T) Device {
	t.Helper()
	entries, _ := os.ReadDir(SysDevBlock)
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(SysDevBlock, e.Name(), "partition")); err != nil {
			if d, err := parseDevice(e.Name()); err == nil {
				return d
			}
		}
	}
	return Device{254, 0}
}

func sdMust[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func sdWantFields(t *testing.T, what string, ds []host.Difference, fields ...string) {
	t.Helper()
	var got []string
	for _, d := range ds {
		if !strings.HasSuffix(d.Field, "Accounting") { // systemd's defaults vary
			got = append(got, d.Field)
		}
	}
	slices.Sort(got)
	fields = slices.Sorted(slices.Values(fields))
	if !slices.Equal(got, fields) {
		t.Errorf("%s changed %q, want %q (%v)", what, got, fields, ds)
	}
}

func sdWantDiffs(t *testing.T, what string, got, want []host.Difference) {
	t.Helper()
	byField := func(a, b host.Difference) int { return strings.Compare(a.Field, b.Field) }
	got, want = slices.SortedFunc(slices.Values(got), byField), slices.SortedFunc(slices.Values(want), byField)
	if !slices.Equal(got, want) {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

func sdWantConverged(t *testing.T, s *Systemd, tenant string, l Limits) {
	t.Helper()
	if ds := sdMust(s.Observe(tenant, l))(t); len(ds) > 0 {
		t.Errorf("Observe: %v, want nothing", ds)
	}
}

// sdWantProps checks the slice's properties as systemctl shows them
// (not through the code under test).
func sdWantProps(t *testing.T, want map[string]string) {
	t.Helper()
	got := sdUnitProps(t, sdSlice, slices.Collect(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	})...)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("systemctl show %s: %s=%q, want %q", sdSlice, k, got[k], w)
		}
	}
}

func sdUnitProps(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := sdRun(t, "systemctl", "show", "--property="+strings.Join(props, ","), unit)
	m := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			m[k] = v
		}
	}
	return m
}

// sdRunUnit runs a command as a transient service and returns its output
// and exit status once it exited (systemd-run --wait needs a bus daemon,
// which the container has not).
func sdRunUnit(t *testing.T, unit string, opts []string, cmd ...string) (string, int) {
	out := "/run/" + unit + ".out"
	args := append([]string{"--quiet", "--unit=" + unit, "-p", "RemainAfterExit=yes", "-p", "StandardOutput=file:" + out, "-p", "StandardError=inherit"}, opts...)
	if _, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/usr/bin/systemd-run", Args: append(append(args, "--"), cmd...)}); err != nil {
		t.Error(err)
		return "", -1
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/usr/bin/systemctl", Args: []string{"show", "--property=ActiveState,SubState,ExecMainStatus", unit}})
		if err != nil {
			t.Error(err)
			return "", -1
		}
		p := map[string]string{}
		for l := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok {
				p[k] = v
			}
		}
		if p["SubState"] == "exited" || p["ActiveState"] == "failed" {
			status, _ := strconv.Atoi(p["ExecMainStatus"])
			o, _ := os.ReadFile(out)
			_, _ = cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/usr/bin/systemctl", Args: []string{"stop", unit}})
			_, _ = cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/usr/bin/systemctl", Args: []string{"reset-failed", unit}})
			return string(o), status
		}
		if time.Now().After(deadline) {
			t.Errorf("%s did not end within a minute: %v", unit, p)
			return "", -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sdMainPID(t *testing.T, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(sdUnitProps(t, unit, "MainPID")["MainPID"])
	if err != nil || pid == 0 {
		t.Fatalf("%s has no main process", unit)
	}
	return pid
}

// sdCgroupOf is the process's cgroup2 path.
func sdCgroupOf(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p
		}
	}
	return ""
}

// sdAlive: the process exists and is no zombie.
func sdAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func sdRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := cmdrun.LookPath(name, "/usr/bin", "/bin")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: path, Args: args, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

func sdReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
