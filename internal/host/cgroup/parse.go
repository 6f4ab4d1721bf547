package cgroup

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrParse is wrapped by every error of the parsers of cgroup and PSI files.
var ErrParse = errors.New("cgroup: cannot parse")

// maxFileLen bounds what the parsers read: no cgroup interface file of
// ours comes near it.
const maxFileLen = 64 << 10

// Unlimited is "max" in a cgroup file, for the values kept as uint64.
const Unlimited = math.MaxUint64

// CPUMax is cpu.max: Quota microseconds of CPU time per Period; a Quota of
// -1 is "max" (no limit).
type CPUMax struct {
	Quota  int64
	Period int64
}

// The kernel's bounds on cpu.max (kernel/sched/core.c): a period of 1 ms to
// 1 s, a quota of at least 1 ms.
const (
	minCPUPeriod = 1000
	maxCPUPeriod = 1000000
	minCPUQuota  = 1000
	// maxCPUQuota keeps quota*1000 (the kernel's nanoseconds) in range.
	maxCPUQuota = math.MaxInt64 / 1000
	// DefaultCPUPeriod is the period WCP360 writes: 100 ms.
	DefaultCPUPeriod = 100000
)

// String is cpu.max as the kernel prints it.
func (c CPUMax) String() string {
	if c.Quota < 0 {
		return fmt.Sprintf("max %d", c.Period)
	}
	return fmt.Sprintf("%d %d", c.Quota, c.Period)
}

func (c CPUMax) validate() error {
	if c.Period < minCPUPeriod || c.Period > maxCPUPeriod {
		return fmt.Errorf("cpu.max period %d: want %d to %d microseconds", c.Period, minCPUPeriod, maxCPUPeriod)
	}
	if c.Quota != -1 && (c.Quota < minCPUQuota || c.Quota > maxCPUQuota) {
		return fmt.Errorf("cpu.max quota %d: want max or %d to %d microseconds", c.Quota, minCPUQuota, int64(maxCPUQuota))
	}
	return nil
}

// ParseCPUMax parses cpu.max: "max 100000" or "150000 100000".
func ParseCPUMax(s string) (CPUMax, error) {
	if len(s) > maxFileLen {
		return CPUMax{}, fmt.Errorf("%w cpu.max: %d bytes", ErrParse, len(s))
	}
	f := strings.Fields(s)
	if len(f) != 2 || strings.Count(s, "\n") > 1 || (strings.Contains(s, "\n") && !strings.HasSuffix(s, "\n")) {
		return CPUMax{}, fmt.Errorf("%w cpu.max %q: want \"<quota|max> <period>\"", ErrParse, s)
	}
	c := CPUMax{Quota: -1}
	var err error
	if f[0] != "max" {
		if c.Quota, err = parseDecimal(f[0]); err != nil {
			return CPUMax{}, fmt.Errorf("%w cpu.max quota %q", ErrParse, f[0])
		}
	}
	if c.Period, err = parseDecimal(f[1]); err != nil {
		return CPUMax{}, fmt.Errorf("%w cpu.max period %q", ErrParse, f[1])
	}
	if err := c.validate(); err != nil {
		return CPUMax{}, fmt.Errorf("%w %w", ErrParse, err)
	}
	return c, nil
}

// parseDecimal parses digits only (no sign, no base prefix) into an int64.
func parseDecimal(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseMaxUint parses "max" as Unlimited, or digits.
func parseMaxUint(s string) (uint64, error) {
	if s == "max" {
		return Unlimited, nil
	}
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// formatMaxUint is the inverse of parseMaxUint.
func formatMaxUint(v uint64) string {
	if v == Unlimited {
		return "max"
	}
	return strconv.FormatUint(v, 10)
}

// Device is a block device number.
type Device struct{ Major, Minor uint32 }

func (d Device) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// IsZero reports whether d is 0:0, which names no block device.
func (d Device) IsZero() bool { return d == Device{} }

// parseDevice parses "MAJ:MIN".
func parseDevice(s string) (Device, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return Device{}, fmt.Errorf("%w device %q: want MAJ:MIN", ErrParse, s)
	}
	maj, err1 := parseMaxUint(a)
	minor, err2 := parseMaxUint(b)
	if a == "max" || b == "max" || err1 != nil || err2 != nil || maj > math.MaxUint32 || minor > math.MaxUint32 {
		return Device{}, fmt.Errorf("%w device %q: want MAJ:MIN", ErrParse, s)
	}
	return Device{uint32(maj), uint32(minor)}, nil
}

// IOMax is one device's line of io.max; Unlimited is "max".
type IOMax struct {
	ReadBPS, WriteBPS, ReadIOPS, WriteIOPS uint64
}

// NoIOLimit is an io.max entry without limits: writing it removes the line.
func NoIOLimit() IOMax { return IOMax{Unlimited, Unlimited, Unlimited, Unlimited} }

// String is the line's body as the kernel prints it.
func (m IOMax) String() string {
	return fmt.Sprintf("rbps=%s wbps=%s riops=%s wiops=%s",
		formatMaxUint(m.ReadBPS), formatMaxUint(m.WriteBPS), formatMaxUint(m.ReadIOPS), formatMaxUint(m.WriteIOPS))
}

// ParseIOMax parses io.max: a line per device with limits,
// "8:0 rbps=2097152 wbps=max riops=max wiops=120". Every key must be
// there, once; a device appears once.
func ParseIOMax(s string) (map[Device]IOMax, error) {
	if len(s) > maxFileLen {
		return nil, fmt.Errorf("%w io.max: %d bytes", ErrParse, len(s))
	}
	out := map[Device]IOMax{}
	for l := range strings.Lines(s) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		dev, err := parseDevice(f[0])
		if err != nil {
			return nil, err
		}
		if _, dup := out[dev]; dup {
			return nil, fmt.Errorf("%w io.max: device %s twice", ErrParse, dev)
		}
		var m IOMax
		seen := map[string]bool{}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			var p *uint64
			switch k {
			case "rbps":
				p = &m.ReadBPS
			case "wbps":
				p = &m.WriteBPS
			case "riops":
				p = &m.ReadIOPS
			case "wiops":
				p = &m.WriteIOPS
			}
			if !ok || p == nil || seen[k] {
				return nil, fmt.Errorf("%w io.max %s: %q", ErrParse, dev, kv)
			}
			seen[k] = true
			if *p, err = parseMaxUint(v); err != nil {
				return nil, fmt.Errorf("%w io.max %s: %q", ErrParse, dev, kv)
			}
		}
		if len(seen) != 4 {
			return nil, fmt.Errorf("%w io.max %s: want rbps, wbps, riops and wiops in %q", ErrParse, dev, l)
		}
		out[dev] = m
	}
	return out, nil
}

// PSILine is one line of a pressure file: the share of time (percent) some
// or all tasks stalled over the last 10, 60 and 300 seconds, and the total
// stall time.
type PSILine struct {
	Avg10, Avg60, Avg300 float64
	Total                time.Duration
}

// PSI is a pressure file: "some" always, "full" when the kernel has it
// (cpu.pressure has it since 5.13; at the host level it is all zero).
type PSI struct {
	Some PSILine
	Full *PSILine `json:",omitempty"`
}

// String is the file as the kernel prints it (with the averages to two
// decimals).
func (p PSI) String() string {
	s := "some " + p.Some.String() + "\n"
	if p.Full != nil {
		s += "full " + p.Full.String() + "\n"
	}
	return s
}

func (l PSILine) String() string {
	return fmt.Sprintf("avg10=%.2f avg60=%.2f avg300=%.2f total=%d", l.Avg10, l.Avg60, l.Avg300, l.Total.Microseconds())
}

// maxPSITotal keeps a total in microseconds representable as a Duration.
const maxPSITotal = math.MaxInt64 / int64(time.Microsecond)

// ParsePSI parses a pressure file (/proc/pressure/cpu, memory.pressure, ...):
//
//	some avg10=0.23 avg60=7.72 avg300=21.70 total=2682702666
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// Each line needs the four keys once; keys the kernel may add later are
// ignored. Averages are percentages, 0 to 100.
func ParsePSI(s string) (PSI, error) {
	if len(s) > maxFileLen {
		return PSI{}, fmt.Errorf("%w pressure: %d bytes", ErrParse, len(s))
	}
	var p PSI
	var haveSome bool
	for l := range strings.Lines(s) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		line, err := parsePSILine(f[1:])
		if err != nil {
			return PSI{}, fmt.Errorf("%w pressure line %q: %w", ErrParse, strings.TrimSpace(l), err)
		}
		switch {
		case f[0] == "some" && !haveSome:
			p.Some, haveSome = line, true
		case f[0] == "full" && p.Full == nil:
			p.Full = &line
		default:
			return PSI{}, fmt.Errorf("%w pressure line %q: want one some and at most one full line", ErrParse, strings.TrimSpace(l))
		}
	}
	if !haveSome {
		return PSI{}, fmt.Errorf("%w pressure %q: no some line", ErrParse, s)
	}
	return p, nil
}

func parsePSILine(kvs []string) (PSILine, error) {
	var l PSILine
	seen := map[string]bool{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return PSILine{}, fmt.Errorf("%q is not key=value", kv)
		}
		var avg *float64
		switch k {
		case "avg10":
			avg = &l.Avg10
		case "avg60":
			avg = &l.Avg60
		case "avg300":
			avg = &l.Avg300
		case "total":
			n, err := parseDecimal(v)
			if err != nil || n > maxPSITotal {
				return PSILine{}, fmt.Errorf("total %q: want microseconds", v)
			}
			l.Total = time.Duration(n) * time.Microsecond
		default:
			continue // a key of a later kernel
		}
		if seen[k] {
			return PSILine{}, fmt.Errorf("%s twice", k)
		}
		seen[k] = true
		if avg != nil {
			// The kernel prints %lu.%02lu: digits, a dot, digits.
			ip, fp, _ := strings.Cut(v, ".")
			if _, err := parseDecimal(ip); err != nil || (fp != "" && strings.TrimLeft(fp, "0123456789") != "") || len(v) > 10 {
				return PSILine{}, fmt.Errorf("%s %q: want a percentage", k, v)
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 100 {
				return PSILine{}, fmt.Errorf("%s %q: want a percentage from 0 to 100", k, v)
			}
			*avg = f
		}
	}
	if len(seen) != 4 {
		return PSILine{}, errors.New("want avg10, avg60, avg300 and total")
	}
	return l, nil
}

// parseFlatKeyed parses a flat-keyed file (memory.events, cpu.stat,
// pids.events): "key value" lines with unsigned values.
func parseFlatKeyed(s string) (map[string]uint64, error) {
	if len(s) > maxFileLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrParse, len(s))
	}
	m := map[string]uint64{}
	for l := range strings.Lines(s) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%w line %q: want \"key value\"", ErrParse, strings.TrimSpace(l))
		}
		v, err := parseMaxUint(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w line %q: want \"key value\"", ErrParse, strings.TrimSpace(l))
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("%w: %s twice", ErrParse, f[0])
		}
		m[f[0]] = v
	}
	return m, nil
}
