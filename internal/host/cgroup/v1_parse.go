package cgroup

import (
	"fmt"
	"strconv"
	"strings"
)

// parseV1Throttle parses a cgroup v1 blkio.throttle.*_device file: a line
// per device with a limit, "254:0 1048576". A device appears once. The
// kernel prints 0 for an iops limit written as a multiple of 2^32 (it keeps
// iops in 32 bits), so 0 is accepted: it is a limit, and a drastic one.
func parseV1Throttle(s string) (map[Device]uint64, error) {
	if len(s) > maxFileLen {
		return nil, fmt.Errorf("%w blkio throttle: %d bytes", ErrParse, len(s))
	}
	out := map[Device]uint64{}
	for l := range strings.Lines(s) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%w blkio throttle line %q: want \"MAJ:MIN value\"", ErrParse, strings.TrimSpace(l))
		}
		d, err := parseDevice(f[0])
		if err != nil {
			return nil, err
		}
		v, err := parseMaxUint(f[1])
		if err != nil || f[1] == "max" {
			return nil, fmt.Errorf("%w blkio throttle line %q: want \"MAJ:MIN value\"", ErrParse, strings.TrimSpace(l))
		}
		if _, dup := out[d]; dup {
			return nil, fmt.Errorf("%w blkio throttle: device %s twice", ErrParse, d)
		}
		out[d] = v
	}
	return out, nil
}

// procCgroup is one line of /proc/<pid>/cgroup: a v1 hierarchy (its ID
// and controllers, "name=systemd" for a named one) or, with ID 0 and no
// controllers, cgroup2; Path is relative to the hierarchy's root.
type procCgroup struct {
	ID          int
	Controllers []string
	Path        string
}

// parseProcCgroup parses /proc/<pid>/cgroup (cgroups(7)):
// "4:memory:/wcp360/acme", "2:cpu,cpuacct:/", "0::/init.scope".
func parseProcCgroup(s string) ([]procCgroup, error) {
	if len(s) > maxFileLen {
		return nil, fmt.Errorf("%w /proc/pid/cgroup: %d bytes", ErrParse, len(s))
	}
	var out []procCgroup
	for l := range strings.Lines(s) {
		l = strings.TrimSuffix(l, "\n")
		if l == "" {
			continue
		}
		// The path may hold colons; the first two fields may not.
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%w /proc/pid/cgroup line %q: want \"ID:controllers:path\"", ErrParse, l)
		}
		id, err := parseDecimal(f[0])
		if err != nil || id > 1<<16 || !strings.HasPrefix(f[2], "/") {
			return nil, fmt.Errorf("%w /proc/pid/cgroup line %q: want \"ID:controllers:path\"", ErrParse, l)
		}
		c := procCgroup{ID: int(id), Path: f[2]}
		if f[1] != "" {
			c.Controllers = strings.Split(f[1], ",")
		}
		for _, name := range c.Controllers {
			if name == "" || strings.ContainsAny(name, " \t") {
				return nil, fmt.Errorf("%w /proc/pid/cgroup line %q: controller %q", ErrParse, l, name)
			}
		}
		if (id == 0) != (len(c.Controllers) == 0) {
			return nil, fmt.Errorf("%w /proc/pid/cgroup line %q: hierarchy 0 is cgroup2, without controllers", ErrParse, l)
		}
		out = append(out, c)
	}
	return out, nil
}

// v1Paths maps each v1 controller (and named hierarchy) of a
// /proc/<pid>/cgroup to the task's cgroup path in it; "" maps to the
// cgroup2 path.
func v1Paths(cgs []procCgroup) map[string]string {
	m := map[string]string{}
	for _, c := range cgs {
		if c.ID == 0 {
			m[""] = c.Path
		}
		for _, name := range c.Controllers {
			m[name] = c.Path
		}
	}
	return m
}

// String is the line as the kernel prints it.
func (c procCgroup) String() string {
	return strconv.Itoa(c.ID) + ":" + strings.Join(c.Controllers, ",") + ":" + c.Path
}
