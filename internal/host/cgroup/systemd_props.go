package cgroup

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/wcp360/wcp360/internal/host"
)

// sdInfinity is systemd's "infinity" (CGROUP_LIMIT_MAX, USEC_INFINITY):
// no limit.
const sdInfinity = math.MaxUint64

// sdIOLimit is one entry of IOReadBandwidthMax and its kin, D-Bus a(st).
type sdIOLimit struct {
	Path  string
	Limit uint64
}

// The IO limit properties, in the order of IOMax's fields.
var sdIOProperties = [4]string{"IOReadBandwidthMax", "IOWriteBandwidthMax", "IOReadIOPSMax", "IOWriteIOPSMax"} //nolint:gochecknoglobals // read only

// sdAccounting are the accounting properties every tenant's slice has on,
// so that systemd enables the controllers (and usage is counted) even for
// a limit that is not set.
var sdAccounting = []string{"MemoryAccounting", "CPUAccounting", "TasksAccounting", "IOAccounting"} //nolint:gochecknoglobals // read only

// sdDevicePath is how a device is named to systemd: /dev/block/MAJ:MIN,
// which systemd parses without looking the node up (it need not exist in
// systemd's /dev).
func sdDevicePath(d Device) string { return "/dev/block/" + d.String() }

// sdUint is a limit as systemd takes it: 0 (no limit) is infinity.
func sdUint(n int64) uint64 {
	if n <= 0 {
		return sdInfinity
	}
	return uint64(n)
}

// sdCPUQuota is CPUQuotaPerSecUSec for a share of one CPU in percent:
// systemd writes cpu.max "<quota*period/1s> <period>" with the period of
// CPUQuotaPeriodUSec (sdCPUPeriod), the same cpu.max as Limits.CPUMax.
func sdCPUQuota(percent int) uint64 {
	if percent <= 0 {
		return sdInfinity
	}
	return uint64(percent) * 10000
}

// sdCPUPeriod is CPUQuotaPeriodUSec (systemd 242 and later) for l: its
// period in microseconds, or infinity (systemd's default, 100 ms) for
// the default period. With a period of its own, systemd writes no limit
// as cpu.max "max 100000", as Limits.CPUMax does; and it lengthens a
// period whose quota would be under 1 ms, which Limits.Validate refuses.
func sdCPUPeriod(l Limits) uint64 {
	if l.cpuPeriod() == DefaultCPUPeriod {
		return sdInfinity
	}
	return uint64(l.cpuPeriod()) //nolint:gosec // 1000 to 1000000 (Validate)
}

// sliceProperties are the properties l sets on a tenant's slice, as
// StartTransientUnit and SetUnitProperties take them. Each IO property is
// sent twice: empty first, which clears that limit of every device (an
// entry for a device someone added by hand), then the devices l limits.
func sliceProperties(l Limits) []sddbus.Property {
	props := []sddbus.Property{
		{Name: "MemoryHigh", Value: dbus.MakeVariant(sdUint(l.MemoryHigh))},
		{Name: "MemoryMax", Value: dbus.MakeVariant(sdUint(l.MemoryMax))},
		{Name: "CPUQuotaPerSecUSec", Value: dbus.MakeVariant(sdCPUQuota(l.CPUPercent))},
		{Name: "TasksMax", Value: dbus.MakeVariant(sdUint(l.Pids))},
	}
	// The default period is not sent: it is systemd's own, and systemd
	// before 242 knows no CPUQuotaPeriodUSec.
	if p := sdCPUPeriod(l); p != sdInfinity {
		props = append(props, sddbus.Property{Name: "CPUQuotaPeriodUSec", Value: dbus.MakeVariant(p)})
	}
	for i, name := range sdIOProperties {
		props = append(props, sddbus.Property{Name: name, Value: dbus.MakeVariant([]sdIOLimit{})})
		if want := sdIOWant(l, i); len(want) > 0 {
			props = append(props, sddbus.Property{Name: name, Value: dbus.MakeVariant(want)})
		}
	}
	for _, name := range sdAccounting {
		props = append(props, sddbus.Property{Name: name, Value: dbus.MakeVariant(true)})
	}
	return props
}

// sdIOWant are the entries l wants in the i-th IO property, by path.
func sdIOWant(l Limits, i int) []sdIOLimit {
	var out []sdIOLimit
	for _, d := range sortedDevices(l.IO) {
		m := l.IO[d]
		if v := [4]uint64{m.ReadBPS, m.WriteBPS, m.ReadIOPS, m.WriteIOPS}[i]; v != Unlimited {
			out = append(out, sdIOLimit{sdDevicePath(d), v})
		}
	}
	return out
}

// propertiesNamed are the properties of props named name.
func propertiesNamed(props []sddbus.Property, name string) []sddbus.Property {
	var out []sddbus.Property
	for _, p := range props {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

func hasProperty(props []sddbus.Property, name string) bool {
	return slices.ContainsFunc(props, func(p sddbus.Property) bool { return p.Name == name })
}

// compareSliceProperties compares the slice's properties as systemd holds
// them (GetUnitTypeProperties "Slice") with what l wants. The differences
// are named and worded as systemctl set-property takes them ("MemoryMax":
// want 536870912, have infinity; "CPUQuota": want 150%); the properties
// returned set again what differs. CPUQuotaPeriodSec is a difference
// unless it is the period l wants; for the default period, infinity and
// 100ms are the same, and a systemd that does not report it (before 242)
// has it.
func compareSliceProperties(have map[string]any, l Limits) ([]host.Difference, []sddbus.Property) {
	var diffs []host.Difference
	var fixes []sddbus.Property
	want := sliceProperties(l)
	for _, num := range []struct {
		name, field string
		format      func(uint64) string
	}{
		{"MemoryHigh", "MemoryHigh", sdFormatUint},
		{"MemoryMax", "MemoryMax", sdFormatUint},
		{"CPUQuotaPerSecUSec", "CPUQuota", sdFormatCPUQuota},
		{"TasksMax", "TasksMax", sdFormatUint},
	} {
		w := propertiesNamed(want, num.name)
		wv, _ := w[0].Value.Value().(uint64)
		hv, ok := have[num.name].(uint64)
		if !ok || hv != wv {
			h := "unknown"
			if ok {
				h = num.format(hv)
			}
			diffs = append(diffs, host.Difference{Field: num.field, Want: num.format(wv), Have: h})
			fixes = append(fixes, w...)
		}
	}
	if d, fix, ok := compareCPUPeriod(have, l); !ok {
		diffs = append(diffs, d)
		fixes = append(fixes, fix)
	}
	for i, name := range sdIOProperties {
		d := compareIOProperty(name, have[name], sdIOWant(l, i))
		if len(d) > 0 {
			diffs = append(diffs, d...)
			fixes = append(fixes, propertiesNamed(want, name)...)
		}
	}
	for _, name := range sdAccounting {
		if b, ok := have[name].(bool); !ok || !b {
			diffs = append(diffs, host.Difference{Field: name, Want: "yes", Have: sdFormatBool(b, ok)})
			fixes = append(fixes, propertiesNamed(want, name)...)
		}
	}
	return diffs, fixes
}

// compareCPUPeriod compares CPUQuotaPeriodUSec with the period l wants;
// when they differ, the difference and the property that sets it again
// (infinity for the default period).
func compareCPUPeriod(have map[string]any, l Limits) (host.Difference, sddbus.Property, bool) {
	want := sdCPUPeriod(l)
	v, present := have["CPUQuotaPeriodUSec"]
	hv, ok := v.(uint64)
	switch {
	case want == sdInfinity && (!present || (ok && (hv == sdInfinity || hv == DefaultCPUPeriod))):
		return host.Difference{}, sddbus.Property{}, true
	case ok && hv == want:
		return host.Difference{}, sddbus.Property{}, true
	}
	h := "unknown"
	if ok {
		h = sdFormatPeriod(hv)
	}
	return host.Difference{Field: "CPUQuotaPeriodSec", Want: sdFormatPeriod(want), Have: h},
		sddbus.Property{Name: "CPUQuotaPeriodUSec", Value: dbus.MakeVariant(want)}, false
}

// sdFormatPeriod prints CPUQuotaPeriodUSec as a duration ("10ms"),
// infinity as the default it stands for.
func sdFormatPeriod(v uint64) string {
	if v == sdInfinity {
		return "infinity (100ms)"
	}
	return (time.Duration(v) * time.Microsecond).String() //nolint:gosec // at most 1 s, or from systemd
}

// compareIOProperty compares an IO property (a(st), which systemd lists
// without the devices whose limit of that kind is infinity) with the
// entries wanted; a difference per device path.
func compareIOProperty(name string, have any, want []sdIOLimit) []host.Difference {
	h := map[string]uint64{}
	if entries, ok := have.([][]any); ok {
		for _, e := range entries {
			if len(e) != 2 {
				continue
			}
			p, ok1 := e[0].(string)
			v, ok2 := e[1].(uint64)
			if ok1 && ok2 && v != sdInfinity {
				h[p] = v
			}
		}
	}
	w := map[string]uint64{}
	for _, e := range want {
		w[e.Path] = e.Limit
	}
	var paths []string
	for p := range h {
		paths = append(paths, p)
	}
	for p := range w {
		if _, ok := h[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.SortFunc(paths, cmp.Compare)
	var diffs []host.Difference
	for _, p := range paths {
		hv, hok := h[p]
		wv, wok := w[p]
		if hok && wok && hv == wv {
			continue
		}
		if !hok {
			hv = sdInfinity
		}
		if !wok {
			wv = sdInfinity
		}
		diffs = append(diffs, host.Difference{Field: name + " " + p, Want: sdFormatUint(wv), Have: sdFormatUint(hv)})
	}
	return diffs
}

func sdFormatUint(v uint64) string {
	if v == sdInfinity {
		return "infinity"
	}
	return strconv.FormatUint(v, 10)
}

// sdFormatCPUQuota prints CPUQuotaPerSecUSec as systemctl's CPUQuota=.
func sdFormatCPUQuota(v uint64) string {
	switch {
	case v == sdInfinity:
		return "infinity"
	case v%10000 == 0:
		return strconv.FormatUint(v/10000, 10) + "%"
	default:
		return fmt.Sprintf("%.2f%%", float64(v)/10000)
	}
}

func sdFormatBool(b, ok bool) string {
	switch {
	case !ok:
		return "unknown"
	case b:
		return "yes"
	default:
		return "no"
	}
}
