package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wcp360/wcp360/internal/host"
)

// v1Fix is a difference and the write that corrects it.
type v1Fix struct {
	diff  host.Difference
	path  string
	write string
}

// observe compares the tenant's existing cgroups with l, in the order the
// fixes must be written.
func (v *V1) observe(dirs []v1Dir, l Limits) ([]v1Fix, error) {
	var fixes []v1Fix
	for _, d := range dirs {
		if d.h == nil {
			continue
		}
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			continue // a difference of its own; Apply makes it first
		}
		for _, c := range []struct {
			name string
			fn   func(string, Limits) ([]v1Fix, error)
		}{{"memory", v.observeMemory}, {"cpu", v.observeCPU}, {"pids", v.observePids}, {"blkio", v.observeBlkio}} {
			if !d.h.has(c.name) {
				continue
			}
			f, err := c.fn(d.path, l)
			if err != nil {
				return nil, err
			}
			fixes = append(fixes, f...)
		}
	}
	return fixes, nil
}

// memString is a memory limit as Observe shows it: bytes, or "max".
func (v *V1) memString(n int64) string {
	if n <= 0 || n >= v.unlimitedMem {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// memWant is what the kernel keeps of a memory limit of n bytes (0: none),
// as Observe shows it and as it is written.
func (v *V1) memWant(n int64) (show, write string) {
	if n == 0 {
		return "max", "-1"
	}
	s := strconv.FormatInt(n/v.pageSize*v.pageSize, 10)
	return s, s
}

// memNum orders memory limits as the kernel does ("max" above all).
func memNum(s string) uint64 {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n
	}
	return math.MaxUint64
}

func (v *V1) observeMemory(dir string, l Limits) ([]v1Fix, error) {
	read := func(file string) (string, error) {
		n, err := readInt(filepath.Join(dir, file))
		if err != nil {
			return "", err
		}
		return v.memString(n), nil
	}
	fix := func(file, have string, want int64) (v1Fix, bool) {
		show, write := v.memWant(want)
		return v1Fix{diff: host.Difference{Field: file, Want: show, Have: have}, path: filepath.Join(dir, file), write: write}, show != have
	}
	limit, err := read("memory.limit_in_bytes")
	if err != nil {
		return nil, err
	}
	var fixes []v1Fix
	f, differs := fix("memory.limit_in_bytes", limit, l.MemoryMax)
	if differs {
		fixes = append(fixes, f)
	}
	memsw, err := read("memory.memsw.limit_in_bytes")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No swap accounting: swap is not limited.
	case err != nil:
		return nil, err
	default:
		f, differs := fix("memory.memsw.limit_in_bytes", memsw, l.MemoryMax)
		if differs {
			// The kernel keeps limit <= memsw at every write (EINVAL
			// otherwise): raise memsw before the limit, lower it after.
			if memNum(f.diff.Want) > memNum(memsw) {
				fixes = append([]v1Fix{f}, fixes...)
			} else {
				fixes = append(fixes, f)
			}
		}
	}
	soft, err := read("memory.soft_limit_in_bytes")
	if err != nil {
		return nil, err
	}
	if f, differs := fix("memory.soft_limit_in_bytes", soft, l.MemoryHigh); differs {
		fixes = append(fixes, f)
	}
	return fixes, nil
}

func (v *V1) observeCPU(dir string, l Limits) ([]v1Fix, error) {
	c := l.CPUMax()
	var fixes []v1Fix
	// The period first: the quota is checked against it.
	for _, s := range []struct{ file, want string }{
		{"cpu.cfs_period_us", strconv.FormatInt(c.Period, 10)},
		{"cpu.cfs_quota_us", strconv.FormatInt(c.Quota, 10)},
	} {
		n, err := readInt(filepath.Join(dir, s.file))
		if err != nil {
			return nil, err
		}
		if have := strconv.FormatInt(n, 10); have != s.want {
			fixes = append(fixes, v1Fix{diff: host.Difference{Field: s.file, Want: s.want, Have: have}, path: filepath.Join(dir, s.file), write: s.want})
		}
	}
	return fixes, nil
}

func (v *V1) observePids(dir string, l Limits) ([]v1Fix, error) {
	want := "max"
	if l.Pids > 0 {
		want = strconv.FormatInt(l.Pids, 10)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pids.max"))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if have := strings.TrimSpace(string(b)); have != want {
		return []v1Fix{{diff: host.Difference{Field: "pids.max", Want: want, Have: have}, path: filepath.Join(dir, "pids.max"), write: want}}, nil
	}
	return nil, nil
}

// v1Throttle are the blkio throttle files and the field of IOMax each
// holds.
var v1Throttle = []struct { //nolint:gochecknoglobals // read only
	file string
	of   func(IOMax) uint64
}{
	{"blkio.throttle.read_bps_device", func(m IOMax) uint64 { return m.ReadBPS }},
	{"blkio.throttle.write_bps_device", func(m IOMax) uint64 { return m.WriteBPS }},
	{"blkio.throttle.read_iops_device", func(m IOMax) uint64 { return m.ReadIOPS }},
	{"blkio.throttle.write_iops_device", func(m IOMax) uint64 { return m.WriteIOPS }},
}

// observeBlkio compares each throttle file with l.IO: a device's line
// must hold its limit, or be absent for Unlimited; a line of a device not
// in l.IO is a difference.
func (v *V1) observeBlkio(dir string, l Limits) ([]v1Fix, error) {
	var fixes []v1Fix
	for _, t := range v1Throttle {
		path := filepath.Join(dir, t.file)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		have, err := parseV1Throttle(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		want := map[Device]uint64{}
		for d, m := range l.IO {
			if n := t.of(m); n != Unlimited {
				want[d] = n
			}
		}
		show := func(m map[Device]uint64, d Device) string {
			if n, ok := m[d]; ok {
				return strconv.FormatUint(n, 10)
			}
			return "none"
		}
		devs := map[Device]IOMax{}
		for d := range want {
			devs[d] = IOMax{}
		}
		for d := range have {
			devs[d] = IOMax{}
		}
		for _, d := range sortedDevices(devs) {
			w, h := show(want, d), show(have, d)
			if w == h {
				continue
			}
			write := d.String() + " " + w
			if w == "none" {
				write = d.String() + " 0" // 0 removes the line
			}
			fixes = append(fixes, v1Fix{diff: host.Difference{Field: t.file + " " + d.String(), Want: w, Have: h}, path: path, write: write})
		}
	}
	return fixes, nil
}

// v1InheritCpuset gives dir its parent's cpuset.cpus and cpuset.mems when
// they are empty (a new cpuset cgroup's are, unless
// cgroup.clone_children is set), so that tasks can join it.
func v1InheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		if strings.TrimSpace(string(b)) != "" {
			continue
		}
		p, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return fmt.Errorf("cgroup: %w", err)
		}
		if err := writeFile(filepath.Join(dir, f), strings.TrimSpace(string(p))); err != nil {
			return err
		}
	}
	return nil
}
