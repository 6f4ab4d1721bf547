package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/host"
)

// The host-free tests of V1: parsers, and the decisions on files made in
// a temporary directory. The kernel's are in v1_kernel_test.go.

func TestParseV1Throttle(t *testing.T) {
	tests := []struct {
		in      string
		want    map[Device]uint64
		wantErr bool
	}{
		{in: "", want: map[Device]uint64{}},
		{in: "254:0 1048576\n", want: map[Device]uint64{{254, 0}: 1048576}},
		{in: "253:0 5000\n254:0 0\n", want: map[Device]uint64{{253, 0}: 5000, {254, 0}: 0}},
		{in: "8:16 18446744073709551615", want: map[Device]uint64{{8, 16}: 18446744073709551615}},
		{in: "254:0 1\n254:0 2\n", wantErr: true},
		{in: "254:0\n", wantErr: true},
		{in: "254:0 1 2\n", wantErr: true},
		{in: "254:0 max\n", wantErr: true},
		{in: "254:0 -1\n", wantErr: true},
		{in: "254 1\n", wantErr: true},
		{in: "254:0 18446744073709551616\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseV1Throttle(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseV1Throttle(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Errorf("parseV1Throttle(%q) error %v is not ErrParse", tt.in, err)
			}
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("parseV1Throttle(%q) (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	hybrid := "9:name=systemd:/\n8:pids:/\n4:memory:/system.slice/wcpd.service\n2:cpu,cpuacct:/wcp360/acme\n0::/a:b\n"
	got, err := parseProcCgroup(hybrid)
	if err != nil {
		t.Fatal(err)
	}
	want := []procCgroup{
		{9, []string{"name=systemd"}, "/"},
		{8, []string{"pids"}, "/"},
		{4, []string{"memory"}, "/system.slice/wcpd.service"},
		{2, []string{"cpu", "cpuacct"}, "/wcp360/acme"},
		{0, nil, "/a:b"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseProcCgroup (-want +got):\n%s", d)
	}
	wantPaths := map[string]string{"name=systemd": "/", "pids": "/", "memory": "/system.slice/wcpd.service", "cpu": "/wcp360/acme", "cpuacct": "/wcp360/acme", "": "/a:b"}
	if d := cmp.Diff(wantPaths, v1Paths(got)); d != "" {
		t.Errorf("v1Paths (-want +got):\n%s", d)
	}
	for _, bad := range []string{"4:memory\n", "x:memory:/\n", "4:memory:relative\n", "0:memory:/\n", "4::/\n", "4:cpu,,cpuacct:/\n", "-1:cpu:/\n"} {
		if _, err := parseProcCgroup(bad); !errors.Is(err, ErrParse) {
			t.Errorf("parseProcCgroup(%q) = %v, want ErrParse", bad, err)
		}
	}
}

func TestNewV1(t *testing.T) {
	hybrid := Capability{Mode: Hybrid, Unified: "/sys/fs/cgroup/unified", V1: map[string]string{
		"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
		"cpuset": "/sys/fs/cgroup/cpuset", "blkio": "/sys/fs/cgroup/blkio", "pids": "/sys/fs/cgroup/pids",
	}}
	v, err := NewV1(hybrid, V1Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range v.hier {
		got = append(got, h.String())
	}
	want := []string{"memory at /sys/fs/cgroup/memory", "cpu,cpuacct at /sys/fs/cgroup/cpu,cpuacct", "blkio at /sys/fs/cgroup/blkio", "pids at /sys/fs/cgroup/pids"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("hierarchies (-want +got):\n%s", d)
	}
	dirs, err := v.dirs("acme")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range dirs {
		paths = append(paths, d.path)
	}
	wantPaths := []string{"/sys/fs/cgroup/memory/wcp360/acme", "/sys/fs/cgroup/cpu,cpuacct/wcp360/acme", "/sys/fs/cgroup/blkio/wcp360/acme", "/sys/fs/cgroup/pids/wcp360/acme", "/sys/fs/cgroup/unified/wcp360/acme"}
	if d := cmp.Diff(wantPaths, paths); d != "" {
		t.Errorf("dirs (-want +got):\n%s", d)
	}
	if _, err := v.dirs("../etc"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("dirs(../etc) = %v, want ErrInvalidName", err)
	}

	for _, c := range []Capability{
		{Mode: Unified, Unified: "/sys/fs/cgroup", Controllers: Controllers, V1: map[string]string{}},
		{Mode: Hybrid, Unified: "/sys/fs/cgroup/unified", V1: map[string]string{"cpuacct": "/sys/fs/cgroup/cpuacct", "freezer": "/sys/fs/cgroup/freezer"}},
	} {
		if _, err := NewV1(c, V1Options{}); !errors.Is(err, ErrNoV1) {
			t.Errorf("NewV1(%+v) = %v, want ErrNoV1", c, err)
		}
	}
	if _, err := NewV1(hybrid, V1Options{Subtree: "a/b"}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewV1 with subtree a/b: %v, want ErrInvalidName", err)
	}
	if _, err := NewV1(Capability{V1: map[string]string{"memory": "relative"}}, V1Options{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("NewV1 with a relative mount: %v, want ErrInvalidName", err)
	}
}

// TestV1EnforcementPartial: a host with memory only in cgroup v1 and no
// cgroup2 says what is not enforced and why, and has no PSI.
func TestV1EnforcementPartial(t *testing.T) {
	v, err := NewV1(Capability{Mode: Legacy, V1: map[string]string{"memory": "/sys/fs/cgroup/memory"}}, V1Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := v.Enforcement()
	if e.Driver != "cgroup v1 (memory at /sys/fs/cgroup/memory)" || e.PSI {
		t.Errorf("Driver %q, PSI %v", e.Driver, e.PSI)
	}
	if d := cmp.Diff([]string{LimitMemoryMax}, e.Enforced); d != "" {
		t.Errorf("Enforced (-want +got):\n%s", d)
	}
	for _, l := range AllLimits {
		_, not := e.NotEnforced[l]
		if enforced := l == LimitMemoryMax; enforced == not {
			t.Errorf("%s: in Enforced %v and in NotEnforced %v", l, enforced, not)
		}
	}
	for l, why := range map[string]string{LimitCPU: "cpu controller", LimitPids: "pids controller", LimitIO: "blkio controller", LimitMemoryHigh: "no memory.high"} {
		if !strings.Contains(e.NotEnforced[l], why) {
			t.Errorf("NotEnforced[%s] = %q, want it to say %q", l, e.NotEnforced[l], why)
		}
	}
	if _, err := v.Pressure("acme"); !errors.Is(err, ErrNoPSI) {
		t.Errorf("Pressure without cgroup2: %v, want ErrNoPSI", err)
	}
}

// TestV1ObserveFiles: Observe and Apply on a cgroup tree of plain files,
// for the decisions no kernel is needed for: the order of the memory
// writes (limit <= memsw at each), the rounding to pages, "max", the
// blkio lines of devices not in the limits, a missing cgroup.
func TestV1ObserveFiles(t *testing.T) {
	root := t.TempDir()
	c := Capability{Mode: Legacy, V1: map[string]string{}}
	for _, n := range []string{"memory", "cpu", "blkio", "pids"} {
		c.V1[n] = filepath.Join(root, n)
	}
	v, err := NewV1(c, V1Options{Subtree: "wcp360"})
	if err != nil {
		t.Fatal(err)
	}
	max := "9223372036854771712"
	if v.pageSize != 4096 {
		t.Skipf("page size %d", v.pageSize)
	}
	files := map[string]string{
		"memory/wcp360/acme/memory.limit_in_bytes":            max,
		"memory/wcp360/acme/memory.memsw.limit_in_bytes":      max,
		"memory/wcp360/acme/memory.soft_limit_in_bytes":       max,
		"cpu/wcp360/acme/cpu.cfs_period_us":                   "100000",
		"cpu/wcp360/acme/cpu.cfs_quota_us":                    "-1",
		"pids/wcp360/acme/pids.max":                           "max",
		"blkio/wcp360/acme/blkio.throttle.read_bps_device":    "8:0 1000\n",
		"blkio/wcp360/acme/blkio.throttle.write_bps_device":   "",
		"blkio/wcp360/acme/blkio.throttle.read_iops_device":   "",
		"blkio/wcp360/acme/blkio.throttle.write_iops_device":  "",
		"blkio/wcp360/other/blkio.throttle.read_bps_device":   "",
		"blkio/wcp360/other/blkio.throttle.write_bps_device":  "",
		"blkio/wcp360/other/blkio.throttle.read_iops_device":  "",
		"blkio/wcp360/other/blkio.throttle.write_iops_device": "",
	}
	for f, s := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	io := NoIOLimit()
	io.WriteBPS = 2 << 20
	l := Limits{MemoryMax: 1<<20 + 1, CPUPercent: 250, Pids: 10, IO: map[Device]IOMax{{254, 0}: io}}
	want := []host.Difference{
		// Lowered: the limit first, then memsw.
		{Field: "memory.limit_in_bytes", Want: "1048576", Have: "max"},
		{Field: "memory.memsw.limit_in_bytes", Want: "1048576", Have: "max"},
		{Field: "cpu.cfs_quota_us", Want: "250000", Have: "-1"},
		{Field: "blkio.throttle.read_bps_device 8:0", Want: "none", Have: "1000"},
		{Field: "blkio.throttle.write_bps_device 254:0", Want: "2097152", Have: "none"},
		{Field: "pids.max", Want: "10", Have: "max"},
	}
	got, err := v.Observe("acme", l)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Observe (-want +got):\n%s", d)
	}
	fixes, err := v.observe(mustDirs(t, v, "acme"), l)
	if err != nil {
		t.Fatal(err)
	}
	var writes []string
	for _, f := range fixes {
		rel, _ := filepath.Rel(root, f.path)
		writes = append(writes, rel+" < "+f.write)
	}
	wantWrites := []string{
		"memory/wcp360/acme/memory.limit_in_bytes < 1048576",
		"memory/wcp360/acme/memory.memsw.limit_in_bytes < 1048576",
		"cpu/wcp360/acme/cpu.cfs_quota_us < 250000",
		"blkio/wcp360/acme/blkio.throttle.read_bps_device < 8:0 0",
		"blkio/wcp360/acme/blkio.throttle.write_bps_device < 254:0 2097152",
		"pids/wcp360/acme/pids.max < 10",
	}
	if d := cmp.Diff(wantWrites, writes); d != "" {
		t.Errorf("the writes (-want +got):\n%s", d)
	}

	// Raised from 1 MiB to none: memsw first.
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
		if err := os.WriteFile(filepath.Join(root, "memory/wcp360/acme", f), []byte("1048576\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixes, err = v.observe(mustDirs(t, v, "acme"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	writes = writes[:0]
	for _, f := range fixes[:2] {
		writes = append(writes, filepath.Base(f.path)+" < "+f.write)
	}
	if d := cmp.Diff([]string{"memory.memsw.limit_in_bytes < -1", "memory.limit_in_bytes < -1"}, writes); d != "" {
		t.Errorf("the writes raising the limit (-want +got):\n%s", d)
	}

	// A tenant without cgroups: one difference per hierarchy.
	got, err = v.Observe("other", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var absent []string
	for _, d := range got {
		if d.Field == "cgroup" && d.Have == "absent" {
			rel, _ := filepath.Rel(root, d.Want)
			absent = append(absent, rel)
		}
	}
	if d := cmp.Diff([]string{"memory/wcp360/other", "cpu/wcp360/other", "pids/wcp360/other"}, absent); d != "" {
		t.Errorf("absent cgroups (-want +got):\n%s", d)
	}
}

func mustDirs(t *testing.T, v *V1, tenant string) []v1Dir {
	t.Helper()
	d, err := v.dirs(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// FuzzParseV1Throttle: parseV1Throttle never panics, and what it accepts
// reads back the same from the lines the kernel would print.
func FuzzParseV1Throttle(f *testing.F) {
	f.Add("254:0 1048576\n253:0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseV1Throttle(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, d := range sortedDevices(toIOMax(m)) {
			b.WriteString(d.String() + " " + strconv.FormatUint(m[d], 10) + "\n")
		}
		again, err := parseV1Throttle(b.String())
		if err != nil {
			t.Fatalf("parseV1Throttle(%q) = %v; its lines %q: %v", s, m, b.String(), err)
		}
		if d := cmp.Diff(m, again); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
	})
}

func toIOMax(m map[Device]uint64) map[Device]IOMax {
	out := map[Device]IOMax{}
	for d := range m {
		out[d] = IOMax{}
	}
	return out
}

// FuzzParseProcCgroup: parseProcCgroup never panics, and what it accepts
// reads back the same from its String.
func FuzzParseProcCgroup(f *testing.F) {
	f.Add("9:name=systemd:/\n4:memory:/wcp360/acme\n2:cpu,cpuacct:/\n0::/init.scope\n")
	f.Fuzz(func(t *testing.T, s string) {
		cgs, err := parseProcCgroup(s)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, c := range cgs {
			if !strings.HasPrefix(c.Path, "/") {
				t.Fatalf("parseProcCgroup(%q): path %q", s, c.Path)
			}
			b.WriteString(c.String() + "\n")
		}
		again, err := parseProcCgroup(b.String())
		if err != nil {
			t.Fatalf("parseProcCgroup(%q) = %v; its String %q: %v", s, cgs, b.String(), err)
		}
		if d := cmp.Diff(cgs, again); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
	})
}
