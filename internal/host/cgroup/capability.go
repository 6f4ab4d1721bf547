package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Mode is how a host's cgroup controllers are mounted.
type Mode string

// The modes of a host.
const (
	// Unified: cgroup2 holds the controllers (pure v2).
	Unified Mode = "unified"
	// Hybrid: cgroup2 is mounted (often at /sys/fs/cgroup/unified) but the
	// controllers are bound to cgroup v1 hierarchies.
	Hybrid Mode = "hybrid"
	// Legacy: cgroup v1 only.
	Legacy Mode = "legacy"
	// NoCgroups: neither is mounted.
	NoCgroups Mode = "none"
)

// ErrV1Controllers is returned when the controllers the limits need are
// bound to cgroup v1: cgroup2 (Manager) cannot enforce the limits, the V1
// driver can, in part.
var ErrV1Controllers = errors.New("cgroup: controllers bound to cgroup v1")

// Capability is what a host offers for the tenant limits.
type Capability struct {
	Mode Mode
	// Unified is the cgroup2 mount point ("" when none).
	Unified string
	// Controllers are those cgroup2's root offers (cgroup.controllers).
	Controllers []string
	// V1 maps each controller bound to a v1 hierarchy to its mount point.
	V1 map[string]string
	// Missing are the Controllers the limits need that cgroup2 lacks.
	Missing []string
	// PSI: the cgroup2 root has pressure files (cgroup.pressure or
	// cpu.pressure), so per-tenant PSI can be read even without
	// controllers.
	PSI bool
}

// Enforced is nil when the limits can be enforced through cgroup2; else it
// says why not, wrapping ErrV1Controllers or ErrControllerUnavailable.
func (c Capability) Enforced() error {
	if len(c.Missing) == 0 && c.Unified != "" {
		return nil
	}
	var v1 []string
	for _, m := range c.Missing {
		name := m
		if m == "io" {
			name = "blkio" // io's name in v1
		}
		if p, ok := c.V1[name]; ok {
			v1 = append(v1, name+" at "+p)
		}
	}
	if len(v1) > 0 {
		return fmt.Errorf("%w (%s mode): %s; cgroup2 at %q offers %q; cgroup2 cannot enforce the limits here (the V1 driver can, in part)",
			ErrV1Controllers, c.Mode, strings.Join(v1, ", "), c.Unified, c.Controllers)
	}
	return fmt.Errorf("%w: %s missing (%s mode, cgroup2 at %q)", ErrControllerUnavailable, strings.Join(c.Missing, ", "), c.Mode, c.Unified)
}

func (c Capability) String() string {
	if err := c.Enforced(); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("cgroup v2 at %s with %s (%s mode; PSI %t)", c.Unified, strings.Join(c.Controllers, " "), c.Mode, c.PSI)
}

// Detect reads mountinfo (/proc/self/mountinfo) and the cgroup2 root it
// names; it only reads.
func Detect(mountinfo string) (Capability, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return Capability{}, fmt.Errorf("cgroup: %w", err)
	}
	mounts, err := parseMountinfo(string(b))
	if err != nil {
		return Capability{}, fmt.Errorf("%s: %w", mountinfo, err)
	}
	c := Capability{V1: map[string]string{}}
	for _, mt := range mounts {
		switch mt.fstype {
		case "cgroup2":
			if c.Unified == "" {
				c.Unified = mt.point
			}
		case "cgroup":
			for _, o := range strings.Split(mt.superOpts, ",") {
				if slices.Contains(v1Controllers, o) {
					if _, ok := c.V1[o]; !ok {
						c.V1[o] = mt.point
					}
				}
			}
		}
	}
	if c.Unified != "" {
		w, err := readWords(filepath.Join(c.Unified, "cgroup.controllers"))
		if err != nil {
			return Capability{}, err
		}
		c.Controllers = keys(w)
		for _, f := range []string{"cgroup.pressure", "cpu.pressure"} {
			if _, err := os.Stat(filepath.Join(c.Unified, f)); err == nil {
				c.PSI = true
			}
		}
	}
	for _, want := range Controllers {
		if !slices.Contains(c.Controllers, want) {
			c.Missing = append(c.Missing, want)
		}
	}
	switch {
	case c.Unified != "" && len(c.V1) == 0:
		c.Mode = Unified
	case c.Unified != "":
		c.Mode = Hybrid
	case len(c.V1) > 0:
		c.Mode = Legacy
	default:
		c.Mode = NoCgroups
	}
	return c, nil
}

// v1Controllers are the controller names a v1 mount's options may carry.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"} //nolint:gochecknoglobals // read only

type mount struct {
	root, point, fstype, superOpts string
}

// parseMountinfo parses /proc/self/mountinfo (proc(5)):
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
func parseMountinfo(s string) ([]mount, error) {
	var out []mount
	for l := range strings.Lines(s) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			return nil, fmt.Errorf("%w mountinfo line %q", ErrParse, strings.TrimSpace(l))
		}
		root, err1 := unescapeMount(f[3])
		point, err2 := unescapeMount(f[4])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w mountinfo line %q", ErrParse, strings.TrimSpace(l))
		}
		out = append(out, mount{root: root, point: point, fstype: f[sep+1], superOpts: f[sep+3]})
	}
	return out, nil
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", strconv.ErrSyntax
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}
