package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	mntinfo "github.com/wcp360/wcp360/internal/host/mountinfo"
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
	mounts, err := mntinfo.Parse(string(b))
	if err != nil {
		return Capability{}, fmt.Errorf("%w %s: %w", ErrParse, mountinfo, err)
	}
	c := Capability{V1: map[string]string{}}
	for _, mt := range mounts {
		switch mt.FSType {
		case "cgroup2":
			if c.Unified == "" {
				c.Unified = mt.Point
			}
		case "cgroup":
			for _, o := range mt.SuperOptions {
				if slices.Contains(v1Controllers, o) {
					if _, ok := c.V1[o]; !ok {
						c.V1[o] = mt.Point
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
