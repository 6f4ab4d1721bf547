package cgroup

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/host"
)

// The Systemd driver's pure parts, without systemd: TestSystemd runs the
// rest against a real one.

func TestSystemdSliceNames(t *testing.T) {
	for _, c := range []struct{ tenant, slice, cgroup string }{
		{"acme", "wcp360-tenant-acme.slice", "/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-acme.slice"},
		{"acme-co", `wcp360-tenant-acme\x2dco.slice`, `/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-acme\x2dco.slice`},
		{"a-b-c", `wcp360-tenant-a\x2db\x2dc.slice`, `/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-a\x2db\x2dc.slice`},
	} {
		if got := SystemdSlice(c.tenant); got != c.slice {
			t.Errorf("SystemdSlice(%q) = %q, want %q", c.tenant, got, c.slice)
		}
		if got := SystemdSliceCgroup(c.tenant); got != c.cgroup {
			t.Errorf("SystemdSliceCgroup(%q) = %q, want %q", c.tenant, got, c.cgroup)
		}
	}
}

// sdHave is what GetUnitTypeProperties returns for a slice set as l says:
// godbus decodes a(st) as [][]any.
func sdHave(l Limits) map[string]any {
	have := map[string]any{
		"MemoryHigh": sdUint(l.MemoryHigh), "MemoryMax": sdUint(l.MemoryMax),
		"CPUQuotaPerSecUSec": sdCPUQuota(l.CPUPercent), "TasksMax": sdUint(l.Pids),
		"MemoryAccounting": true, "CPUAccounting": true, "TasksAccounting": true, "IOAccounting": true,
	}
	for i, name := range sdIOProperties {
		entries := [][]any{}
		for _, e := range sdIOWant(l, i) {
			entries = append(entries, []any{e.Path, e.Limit})
		}
		have[name] = entries
	}
	return have
}

func TestSystemdCompareProperties(t *testing.T) {
	disk := Device{254, 0}
	l := Limits{MemoryHigh: 512 << 20, MemoryMax: 1 << 30, CPUPercent: 150, Pids: 100,
		IO: map[Device]IOMax{disk: {ReadBPS: 10 << 20, WriteBPS: Unlimited, ReadIOPS: Unlimited, WriteIOPS: 300}}}
	for _, c := range []struct {
		name  string
		have  func(map[string]any)
		diffs []host.Difference
		fixes []string // property names, in order
	}{
		{name: "same", have: func(map[string]any) {}},
		{
			name: "set by hand",
			have: func(h map[string]any) {
				h["MemoryMax"] = uint64(2 << 30)
				h["TasksMax"] = uint64(math.MaxUint64)
				h["CPUQuotaPerSecUSec"] = uint64(333300)
			},
			diffs: []host.Difference{
				{Field: "MemoryMax", Want: "1073741824", Have: "2147483648"},
				{Field: "CPUQuota", Want: "150%", Have: "33.33%"},
				{Field: "TasksMax", Want: "100", Have: "infinity"},
			},
			fixes: []string{"MemoryMax", "CPUQuotaPerSecUSec", "TasksMax"},
		},
		{
			name: "io: another device, a changed limit, a missing one",
			have: func(h map[string]any) {
				h["IOReadBandwidthMax"] = [][]any{{"/dev/block/254:0", uint64(1 << 20)}, {"/dev/vda", uint64(5)}}
				h["IOWriteIOPSMax"] = [][]any{}
			},
			diffs: []host.Difference{
				{Field: "IOReadBandwidthMax /dev/block/254:0", Want: "10485760", Have: "1048576"},
				{Field: "IOReadBandwidthMax /dev/vda", Want: "infinity", Have: "5"},
				{Field: "IOWriteIOPSMax /dev/block/254:0", Want: "300", Have: "infinity"},
			},
			// Each cleared, then set.
			fixes: []string{"IOReadBandwidthMax", "IOReadBandwidthMax", "IOWriteIOPSMax", "IOWriteIOPSMax"},
		},
		{
			name: "the default period: infinity and 100ms are the same",
			have: func(h map[string]any) { h["CPUQuotaPeriodUSec"] = uint64(100000) },
		},
		{
			name: "the default period: a period set by hand",
			have: func(h map[string]any) { h["CPUQuotaPeriodUSec"] = uint64(10000) },
			diffs: []host.Difference{
				{Field: "CPUQuotaPeriodSec", Want: "infinity (100ms)", Have: "10ms"},
			},
			fixes: []string{"CPUQuotaPeriodUSec"},
		},
		{
			name: "unknown (a property systemd did not return) and accounting off",
			have: func(h map[string]any) {
				delete(h, "MemoryHigh")
				h["IOAccounting"] = false
			},
			diffs: []host.Difference{
				{Field: "MemoryHigh", Want: "536870912", Have: "unknown"},
				{Field: "IOAccounting", Want: "yes", Have: "no"},
			},
			fixes: []string{"MemoryHigh", "IOAccounting"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			have := sdHave(l)
			c.have(have)
			diffs, fixes := compareSliceProperties(have, l)
			if d := cmp.Diff(c.diffs, diffs); d != "" {
				t.Errorf("differences (-want +got):\n%s", d)
			}
			var names []string
			for _, f := range fixes {
				names = append(names, f.Name)
			}
			if d := cmp.Diff(c.fixes, names); d != "" {
				t.Errorf("fixes (-want +got):\n%s", d)
			}
		})
	}
}

func TestSystemdComparePeriod(t *testing.T) {
	l := Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}
	for _, c := range []struct {
		name string
		have any // CPUQuotaPeriodUSec; nil: not returned
		diff []host.Difference
	}{
		{"as wanted", uint64(10000), nil},
		{"systemd's default", uint64(math.MaxUint64), []host.Difference{{Field: "CPUQuotaPeriodSec", Want: "10ms", Have: "infinity (100ms)"}}},
		{"set by hand", uint64(100000), []host.Difference{{Field: "CPUQuotaPeriodSec", Want: "10ms", Have: "100ms"}}},
		{"systemd before 242", nil, []host.Difference{{Field: "CPUQuotaPeriodSec", Want: "10ms", Have: "unknown"}}},
	} {
		have := sdHave(l)
		if c.have != nil {
			have["CPUQuotaPeriodUSec"] = c.have
		}
		diffs, fixes := compareSliceProperties(have, l)
		if d := cmp.Diff(c.diff, diffs); d != "" {
			t.Errorf("%s: differences (-want +got):\n%s", c.name, d)
		}
		if c.diff != nil && (len(fixes) != 1 || fixes[0].Name != "CPUQuotaPeriodUSec" || fixes[0].Value.Value() != uint64(10000)) {
			t.Errorf("%s: fixes %v, want CPUQuotaPeriodUSec 10000", c.name, fixes)
		}
	}
	// The default period is fixed by setting systemd's default back.
	_, fixes := compareSliceProperties(map[string]any{"CPUQuotaPeriodUSec": uint64(10000)}, Limits{})
	if p := propertiesNamed(fixes, "CPUQuotaPeriodUSec"); len(p) != 1 || p[0].Value.Value() != uint64(math.MaxUint64) {
		t.Errorf("fix of a hand-set period: %v, want infinity", p)
	}
}

func TestSystemdSliceProperties(t *testing.T) {
	disk := Device{8, 0}
	l := Limits{CPUPercent: 1, IO: map[Device]IOMax{disk: {ReadBPS: Unlimited, WriteBPS: 2 << 20, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}}
	props := sliceProperties(l)
	get := func(name string) []any {
		var out []any
		for _, p := range propertiesNamed(props, name) {
			out = append(out, p.Value.Value())
		}
		return out
	}
	for _, c := range []struct {
		name string
		want []any
	}{
		{"MemoryHigh", []any{uint64(math.MaxUint64)}},
		{"MemoryMax", []any{uint64(math.MaxUint64)}},
		// 1% of a CPU: cpu.max "1000 100000", as CPUMaxFor(1).
		{"CPUQuotaPerSecUSec", []any{uint64(10000)}},
		{"TasksMax", []any{uint64(math.MaxUint64)}},
		{"IOReadBandwidthMax", []any{[]sdIOLimit{}}},
		{"IOWriteBandwidthMax", []any{[]sdIOLimit{}, []sdIOLimit{{"/dev/block/8:0", 2 << 20}}}},
		{"MemoryAccounting", []any{true}},
	} {
		if d := cmp.Diff(c.want, get(c.name)); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}
	// What godbus sends: a(st) for the IO limits.
	for _, p := range propertiesNamed(props, "IOWriteBandwidthMax") {
		if sig := p.Value.Signature().String(); sig != "a(st)" {
			t.Errorf("IOWriteBandwidthMax's signature %s, want a(st)", sig)
		}
	}
	if got := CPUMaxFor(1); got.Quota*1000000/got.Period != int64(sdCPUQuota(1)) {
		t.Errorf("CPUQuotaPerSecUSec %d is not cpu.max %s", sdCPUQuota(1), got)
	}
	// The default period is systemd's: not sent (systemd before 242 does
	// not know the property).
	if p := propertiesNamed(props, "CPUQuotaPeriodUSec"); len(p) > 0 {
		t.Errorf("CPUQuotaPeriodUSec sent for the default period: %v", p)
	}
	// 10 ms: systemd writes cpu.max "<CPUQuotaPerSecUSec * period / 1s>
	// <period>", the cpu.max of Limits.CPUMax.
	l = Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}
	props = sliceProperties(l)
	if d := cmp.Diff([]any{uint64(10000)}, get("CPUQuotaPeriodUSec")); d != "" {
		t.Errorf("CPUQuotaPeriodUSec (-want +got):\n%s", d)
	}
	quota, _ := propertiesNamed(props, "CPUQuotaPerSecUSec")[0].Value.Value().(uint64)
	systemd := CPUMax{Quota: int64(quota) * 10000 / 1000000, Period: 10000} //nolint:gosec // 500000
	if systemd != l.CPUMax() {
		t.Errorf("systemd's cpu.max %s, want %s", systemd, l.CPUMax())
	}
}

func TestSystemdEnforcement(t *testing.T) {
	all := map[string]bool{"cpu": true, "io": true, "memory": true, "pids": true}
	v1 := map[string]string{"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu", "pids": "/sys/fs/cgroup/pids", "blkio": "/sys/fs/cgroup/blkio"}
	writable := map[string]bool{"memory": true, "cpu": true, "pids": true, "blkio": true}
	for _, c := range []struct {
		name        string
		h           sdHost
		enforced    []string
		notEnforced []string
	}{
		{"unified, all controllers", sdHost{mode: Unified, unified: "/sys/fs/cgroup", controllers: all, psi: true}, AllLimits, nil},
		{"unified, memory and pids", sdHost{mode: Unified, unified: "/sys/fs/cgroup", controllers: map[string]bool{"memory": true, "pids": true}},
			[]string{LimitMemoryHigh, LimitMemoryMax, LimitPids}, []string{LimitCPU, LimitIO}},
		{"unified, none (a container on a hybrid host)", sdHost{mode: Unified, unified: "/sys/fs/cgroup", controllers: map[string]bool{}}, nil, AllLimits},
		// systemd maps MemoryMax, CPUQuota and TasksMax to v1, never
		// MemoryHigh, and of the io limits only the bandwidth ones.
		{"hybrid, v1 writable", sdHost{mode: Hybrid, unified: "/sys/fs/cgroup/unified", v1: v1, v1Writable: writable},
			[]string{LimitMemoryMax, LimitCPU, LimitPids}, []string{LimitMemoryHigh, LimitIO}},
		{"hybrid, v1 read-only (a container)", sdHost{mode: Hybrid, unified: "/sys/fs/cgroup/unified", v1: v1, v1Writable: map[string]bool{}}, nil, AllLimits},
		{"legacy, no pids hierarchy", sdHost{mode: Legacy, v1: map[string]string{"memory": "/m", "cpu": "/c"}, v1Writable: map[string]bool{"memory": true, "cpu": true}},
			[]string{LimitMemoryMax, LimitCPU}, []string{LimitMemoryHigh, LimitPids, LimitIO}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := c.h.enforcement()
			if e.Driver != "systemd (slice per tenant)" || e.PSI != c.h.psi {
				t.Errorf("Driver %q, PSI %t", e.Driver, e.PSI)
			}
			if d := cmp.Diff(c.enforced, e.Enforced); d != "" {
				t.Errorf("Enforced (-want +got):\n%s", d)
			}
			var not []string
			for _, l := range AllLimits {
				if why, ok := e.NotEnforced[l]; ok {
					not = append(not, l)
					if why == "" {
						t.Errorf("%s not enforced, without a reason", l)
					}
				}
			}
			if d := cmp.Diff(c.notEnforced, not); d != "" {
				t.Errorf("NotEnforced (-want +got):\n%s\n%v", d, e.NotEnforced)
			}
			t.Logf("%+v", e)
		})
	}
}

// sdFakeFiles writes files (name → content) into dir.
func sdFakeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range files {
		writeT(t, filepath.Join(dir, f), v)
	}
}

func TestSystemdObserveFilesUnified(t *testing.T) {
	root := t.TempDir()
	const cg = "/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-shop.slice"
	disk := Device{254, 0}
	l := Limits{MemoryMax: 256 << 20, CPUPercent: 50, Pids: 10, IO: map[Device]IOMax{disk: {ReadBPS: 1 << 20, WriteBPS: Unlimited, ReadIOPS: Unlimited, WriteIOPS: Unlimited}}}
	sdFakeFiles(t, filepath.Join(root, cg), map[string]string{
		"memory.high": "max\n", "memory.max": "1073741824\n", // by hand
		"cpu.max": "max 100000\n", "pids.max": "10\n", "io.max": "",
	})
	// cpu and io are not offered: their files are not compared; pids.max
	// is as wanted.
	h := sdHost{mode: Unified, unified: root, controllers: map[string]bool{"memory": true, "pids": true}}
	diffs, props, err := h.observeFiles(cg, l, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]host.Difference{{Field: "memory.max", Want: "268435456", Have: "1073741824"}}, diffs); d != "" {
		t.Errorf("differences (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"MemoryMax"}, props); d != "" {
		t.Errorf("properties to set again (-want +got):\n%s", d)
	}

	// With every controller: io.max's missing line is one, and set again
	// by the four IO properties.
	h.controllers = map[string]bool{"memory": true, "pids": true, "cpu": true, "io": true}
	diffs, props, err = h.observeFiles(cg, l, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, d := range diffs {
		fields = append(fields, d.Field)
	}
	if d := cmp.Diff([]string{"memory.max", "cpu.max", "io.max 254:0"}, fields); d != "" {
		t.Errorf("fields (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"MemoryMax", "CPUQuotaPerSecUSec", "IOReadBandwidthMax", "IOWriteBandwidthMax", "IOReadIOPSMax", "IOWriteIOPSMax"}, props); d != "" {
		t.Errorf("properties to set again (-want +got):\n%s", d)
	}
}

func TestSystemdObserveFilesHybrid(t *testing.T) {
	root := t.TempDir()
	const cg = "/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-shop.slice"
	v1 := map[string]string{}
	for _, c := range []string{"memory", "cpu", "pids", "blkio"} {
		v1[c] = filepath.Join(root, c)
	}
	h := sdHost{mode: Hybrid, unified: filepath.Join(root, "unified"), v1: v1,
		v1Writable: map[string]bool{"memory": true, "cpu": true, "pids": true, "blkio": true}}
	sdFakeFiles(t, filepath.Join(v1["memory"], cg), map[string]string{"memory.limit_in_bytes": "9223372036854771712\n"})
	sdFakeFiles(t, filepath.Join(v1["cpu"], cg), map[string]string{"cpu.cfs_quota_us": "150000\n", "cpu.cfs_period_us": "100000\n"})
	// No pids cgroup: systemd did not make it.
	for _, c := range []struct {
		name   string
		l      Limits
		fields []string
	}{
		{"as wanted but pids", Limits{CPUPercent: 150}, []string{"pids.max"}},
		// MemoryHigh is not enforced on v1: never a difference.
		{"memory limited, no cpu limit", Limits{MemoryHigh: 1 << 20, MemoryMax: 64 << 20}, []string{"memory.limit_in_bytes", "cpu.cfs_quota_us", "pids.max"}},
		// 150% of 10 ms: both files differ.
		{"a 10 ms period", Limits{CPUPercent: 150, CPUPeriod: 10 * time.Millisecond}, []string{"cpu.cfs_quota_us", "cpu.cfs_period_us", "pids.max"}},
	} {
		diffs, _, err := h.observeFiles(cg, c.l, 4096)
		if err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, d := range diffs {
			fields = append(fields, d.Field)
		}
		if d := cmp.Diff(c.fields, fields); d != "" {
			t.Errorf("%s: fields (-want +got):\n%s\n%v", c.name, d, diffs)
		}
	}
}

func TestSystemdV1Memory(t *testing.T) {
	for _, c := range []struct {
		n    int64
		have string
		want string
		same bool
	}{
		{0, "9223372036854771712", "9223372036854771712", true},
		{0, "9223372036854775807", "9223372036854771712", true},
		{0, "1073741824", "9223372036854771712", false},
		{1<<30 + 100, "1073741824", "1073741824", true},
		{1 << 30, "2147483648", "1073741824", false},
	} {
		want, same := sdV1Memory(c.n, 4096)
		if want != c.want || same(c.have) != c.same {
			t.Errorf("sdV1Memory(%d): %q, same(%q) = %t; want %q, %t", c.n, want, c.have, same(c.have), c.want, c.same)
		}
	}
}

func TestSystemdUsageFiles(t *testing.T) {
	root := t.TempDir()
	const cg = "/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-shop.slice"
	// A unified host with controllers.
	sdFakeFiles(t, filepath.Join(root, "unified", cg), map[string]string{
		"memory.current": "1048576\n", "memory.peak": "2097152\n", "pids.current": "3\n",
		"cpu.stat":      "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 3000\n",
		"memory.events": "low 0\nhigh 4\nmax 1\noom 1\noom_kill 1\n",
	})
	u, err := sdHost{mode: Unified, unified: filepath.Join(root, "unified")}.usage(cg)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{MemoryCurrent: 1 << 20, MemoryPeak: 2 << 20, Pids: 3, CPU: 1500 * time.Millisecond, OOMKills: 1, MemoryHighEvents: 4,
		Periods: 10, Throttled: 2, ThrottledTime: 3 * time.Millisecond}
	if d := cmp.Diff(want, u); d != "" {
		t.Errorf("unified (-want +got):\n%s", d)
	}

	// A hybrid host: cgroup2 counts CPU time only; the v1 hierarchies the
	// rest (throttled_time in nanoseconds).
	hroot := t.TempDir()
	sdFakeFiles(t, filepath.Join(hroot, "unified", cg), map[string]string{"cpu.stat": "usage_usec 700\nuser_usec 500\nsystem_usec 200\n"})
	sdFakeFiles(t, filepath.Join(hroot, "memory", cg), map[string]string{"memory.usage_in_bytes": "4096\n", "memory.max_usage_in_bytes": "8192\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"})
	sdFakeFiles(t, filepath.Join(hroot, "cpu", cg), map[string]string{"cpu.stat": "nr_periods 5\nnr_throttled 1\nthrottled_time 2000000\n"})
	h := sdHost{mode: Hybrid, unified: filepath.Join(hroot, "unified"),
		v1: map[string]string{"memory": filepath.Join(hroot, "memory"), "cpu": filepath.Join(hroot, "cpu"), "pids": filepath.Join(hroot, "pids")}}
	u, err = h.usage(cg)
	if err != nil {
		t.Fatal(err)
	}
	want = Usage{MemoryCurrent: 4096, MemoryPeak: 8192, CPU: 700 * time.Microsecond, OOMKills: 2, Periods: 5, Throttled: 1,
		ThrottledTime: 2 * time.Millisecond, Missing: []string{"pids.current"}}
	if d := cmp.Diff(want, u); d != "" {
		t.Errorf("hybrid (-want +got):\n%s", d)
	}
}

func TestSystemdIsDBusError(t *testing.T) {
	err := error(&dbus.Error{Name: "org.freedesktop.systemd1.UnitExists"})
	if !isDBusError(err, "org.freedesktop.systemd1.UnitExists") || isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		t.Error("isDBusError on *dbus.Error")
	}
	for _, err := range []error{fmt.Errorf("%w: start: %w", ErrSystemd, err), fmt.Errorf("x: %w", dbus.Error{Name: "org.freedesktop.systemd1.UnitExists"})} {
		if !isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
			t.Errorf("isDBusError(%v) = false", err)
		}
	}
}
