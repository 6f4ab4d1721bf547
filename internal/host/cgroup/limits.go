package cgroup

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// ErrInvalidLimits is wrapped by the errors of Limits.Validate and FromSpec.
var ErrInvalidLimits = errors.New("cgroup: invalid limits")

// Limits are a tenant's limits as the kernel takes them. Zero means no
// limit ("max") everywhere.
type Limits struct {
	// MemoryHigh and MemoryMax are bytes; the kernel keeps them in whole
	// pages (rounded down), and so does the comparison of Observe.
	MemoryHigh int64
	MemoryMax  int64
	// CPUPercent is a share of one CPU: 150 is one and a half CPUs, written
	// as cpu.max "150000 100000".
	CPUPercent int
	// CPUPeriod is the CFS period the CPUPercent is enforced over, in
	// whole microseconds from 1 ms to 1 s; zero is DefaultCPUPeriod
	// (100 ms). The quota is CPUPercent of it: 150% of 10 ms is cpu.max
	// "15000 10000". A tenant without a CPU limit keeps the default
	// period, as systemd does.
	CPUPeriod time.Duration
	// Pids is pids.max.
	Pids int64
	// IO is io.max per block device (a whole disk, see DeviceOf). A device
	// not listed gets no limit: a line someone added by hand is drift.
	IO map[Device]IOMax
}

// pidsMax is PID_MAX_LIMIT on 64-bit: the kernel refuses a larger pids.max.
const pidsMax = 4 << 20

// Validate checks l against what the kernel accepts.
func (l Limits) Validate() error {
	var errs []error
	if l.MemoryHigh < 0 || l.MemoryMax < 0 {
		errs = append(errs, fmt.Errorf("%w: memory limits must not be negative", ErrInvalidLimits))
	}
	if l.CPUPercent < 0 || l.CPUPercent > v1alpha1.MaxCPUPercent {
		errs = append(errs, fmt.Errorf("%w: cpu %d%%: want 1%% to %d%%", ErrInvalidLimits, l.CPUPercent, v1alpha1.MaxCPUPercent))
	}
	if err := l.validateCPUPeriod(); err != nil {
		errs = append(errs, err)
	}
	if l.Pids < 0 || l.Pids > pidsMax {
		errs = append(errs, fmt.Errorf("%w: pids %d: want 1 to %d", ErrInvalidLimits, l.Pids, pidsMax))
	}
	for d, m := range l.IO {
		if d.IsZero() {
			errs = append(errs, fmt.Errorf("%w: io.max for device 0:0", ErrInvalidLimits))
		}
		// blk-throttle refuses 0 (ERANGE) and 1 (EINVAL), and keeps iops
		// in 32 bits.
		for _, v := range []struct {
			name string
			v    uint64
			max  uint64
		}{{"rbps", m.ReadBPS, Unlimited}, {"wbps", m.WriteBPS, Unlimited}, {"riops", m.ReadIOPS, math.MaxUint32}, {"wiops", m.WriteIOPS, math.MaxUint32}} {
			if v.v != Unlimited && (v.v < 2 || v.v > v.max) {
				errs = append(errs, fmt.Errorf("%w: io.max %s %s=%d: want 2 to %d, or max", ErrInvalidLimits, d, v.name, v.v, v.max))
			}
		}
	}
	return errors.Join(errs...)
}

// FromSpec converts a tenant's spec limits. ioDevice is the whole disk
// that holds the tenant's home (DeviceOf); it may be zero when the spec has
// no IO limits. Disk (project quota) is not a cgroup limit and is ignored.
func FromSpec(spec v1alpha1.TenantLimits, ioDevice Device) (Limits, error) {
	var l Limits
	var err error
	if l.MemoryHigh, err = spec.MemoryHigh.Bytes(); err != nil {
		return Limits{}, fmt.Errorf("%w: memoryHigh: %w", ErrInvalidLimits, err)
	}
	if l.MemoryMax, err = spec.MemoryMax.Bytes(); err != nil {
		return Limits{}, fmt.Errorf("%w: memoryMax: %w", ErrInvalidLimits, err)
	}
	if spec.CPU != "" {
		if l.CPUPercent, err = v1alpha1.ParseCPUPercent(spec.CPU); err != nil {
			return Limits{}, fmt.Errorf("%w: %w", ErrInvalidLimits, err)
		}
	}
	l.Pids = spec.Pids
	io := NoIOLimit()
	for _, q := range []struct {
		name string
		q    v1alpha1.Quantity
		p    *uint64
	}{{"readBPS", spec.IO.ReadBPS, &io.ReadBPS}, {"writeBPS", spec.IO.WriteBPS, &io.WriteBPS}} {
		n, err := q.q.Bytes()
		if err != nil {
			return Limits{}, fmt.Errorf("%w: io.%s: %w", ErrInvalidLimits, q.name, err)
		}
		if n > 0 {
			*q.p = uint64(n)
		}
	}
	for _, n := range []struct {
		name string
		n    int64
		p    *uint64
	}{{"readIOPS", spec.IO.ReadIOPS, &io.ReadIOPS}, {"writeIOPS", spec.IO.WriteIOPS, &io.WriteIOPS}} {
		if n.n < 0 {
			return Limits{}, fmt.Errorf("%w: io.%s %d is negative", ErrInvalidLimits, n.name, n.n)
		}
		if n.n > 0 {
			*n.p = uint64(n.n)
		}
	}
	if io != NoIOLimit() {
		if ioDevice.IsZero() {
			return Limits{}, fmt.Errorf("%w: io limits without the device that holds the home", ErrInvalidLimits)
		}
		l.IO = map[Device]IOMax{ioDevice: io}
	}
	return l, l.Validate()
}

// validateCPUPeriod checks CPUPeriod against the kernel's bounds on
// cpu.max, and the quota it makes of CPUPercent against the kernel's
// minimum quota (1 ms).
func (l Limits) validateCPUPeriod() error {
	if l.CPUPeriod == 0 {
		return nil
	}
	if l.CPUPeriod%time.Microsecond != 0 || l.CPUPeriod < minCPUPeriod*time.Microsecond || l.CPUPeriod > maxCPUPeriod*time.Microsecond {
		return fmt.Errorf("%w: cpu period %s: want whole microseconds from 1ms to 1s", ErrInvalidLimits, l.CPUPeriod)
	}
	if l.CPUPercent > 0 && l.CPUPercent <= v1alpha1.MaxCPUPercent {
		if q := l.CPUMax().Quota; q < minCPUQuota {
			return fmt.Errorf("%w: cpu %d%% of a %s period is a quota of %dµs, below the kernel's minimum of 1ms: "+
				"the limit must be at least %d%% with this period (isolation.cpuPeriod)",
				ErrInvalidLimits, l.CPUPercent, l.CPUPeriod, q, MinCPUPercent(l.CPUPeriod))
		}
	}
	return nil
}

// MinCPUPercent is the smallest CPU limit, in percent of one CPU, whose
// quota the kernel takes (1 ms) with the CFS period p (zero: the
// default): 1% for periods of 100 ms and more, 10% for 10 ms.
func MinCPUPercent(p time.Duration) int {
	us := p.Microseconds()
	if us <= 0 {
		us = DefaultCPUPeriod
	}
	return int((100*minCPUQuota + us - 1) / us)
}

// cpuPeriod is CPUPeriod in microseconds, DefaultCPUPeriod for zero.
func (l Limits) cpuPeriod() int64 {
	if l.CPUPeriod == 0 {
		return DefaultCPUPeriod
	}
	return l.CPUPeriod.Microseconds()
}

// CPUMax is the cpu.max l wants: CPUPercent of CPUPeriod, or "max" with
// the default period when there is no CPU limit.
func (l Limits) CPUMax() CPUMax {
	if l.CPUPercent == 0 {
		return CPUMax{Quota: -1, Period: DefaultCPUPeriod}
	}
	p := l.cpuPeriod()
	return CPUMax{Quota: int64(l.CPUPercent) * p / 100, Period: p}
}

// CPUMaxFor is cpu.max for a share of one CPU in percent (0: no limit)
// with the default period.
func CPUMaxFor(percent int) CPUMax {
	return Limits{CPUPercent: percent}.CPUMax()
}

// setting is one interface file and the value the limits want in it, as
// the kernel prints it back.
type setting struct {
	field string // for host.Difference: "memory.max", "io.max 8:0"
	file  string
	want  string
	// line is what is written, when it differs from want (io.max lines
	// carry the device).
	line string
}

// settings are what l wants in a tenant's cgroup, in the order Apply
// writes them; the memory values rounded down to pages as the kernel
// keeps them. io.max lines of devices not in l are handled by Observe.
func (l Limits) settings(pageSize int64) []setting {
	mem := func(n int64) string {
		if n == 0 {
			return "max"
		}
		return strconv.FormatInt(n/pageSize*pageSize, 10)
	}
	pids := "max"
	if l.Pids > 0 {
		pids = strconv.FormatInt(l.Pids, 10)
	}
	s := []setting{
		{field: "memory.high", file: "memory.high", want: mem(l.MemoryHigh)},
		{field: "memory.max", file: "memory.max", want: mem(l.MemoryMax)},
		{field: "cpu.max", file: "cpu.max", want: l.CPUMax().String()},
		{field: "pids.max", file: "pids.max", want: pids},
	}
	for _, d := range sortedDevices(l.IO) {
		s = append(s, ioSetting(d, l.IO[d]))
	}
	return s
}

func sortedDevices(m map[Device]IOMax) []Device {
	return slices.SortedFunc(maps.Keys(m), func(a, b Device) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
}

func ioSetting(d Device, m IOMax) setting {
	want := m.String()
	if m == NoIOLimit() {
		want = "none"
	}
	return setting{field: "io.max " + d.String(), file: "io.max", want: want, line: d.String() + " " + m.String()}
}
