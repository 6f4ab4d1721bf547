package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Usage reads memory.usage_in_bytes and .max_usage_in_bytes, the oom_kill
// count of memory.oom_control (kernels ≥ 4.13), cpuacct.usage, cpu.stat
// and pids.current. What cannot be read (a controller not mounted, an
// older kernel) is named in Missing.
func (v *V1) Usage(tenant string) (Usage, error) {
	dirs, err := v.dirs(tenant)
	if err != nil {
		return Usage{}, err
	}
	for _, d := range dirs {
		if d.h == nil {
			continue
		}
		if _, err := os.Stat(d.path); err != nil {
			return Usage{}, fmt.Errorf("cgroup: %w", err)
		}
	}
	var u Usage
	// missing notes what cannot be read: an error other than a missing
	// controller or file is returned.
	missing := func(name string, err error) error {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			u.Missing = append(u.Missing, name)
			return nil
		}
		return err
	}
	pathOf := func(controller, file string) (string, error) {
		d := v.dir(tenant, controller)
		if d == "" {
			return "", fs.ErrNotExist
		}
		return filepath.Join(d, file), nil
	}
	for _, r := range []struct {
		controller, file string
		dst              *int64
	}{
		{"memory", "memory.usage_in_bytes", &u.MemoryCurrent},
		{"memory", "memory.max_usage_in_bytes", &u.MemoryPeak},
		{"pids", "pids.current", &u.Pids},
	} {
		path, err := pathOf(r.controller, r.file)
		if err == nil {
			*r.dst, err = readInt(path)
		}
		if err != nil {
			if err := missing(r.file, err); err != nil {
				return Usage{}, err
			}
		}
	}
	path, err := pathOf("cpuacct", "cpuacct.usage")
	var ns int64
	if err == nil {
		ns, err = readInt(path)
	}
	if err == nil {
		u.CPU = time.Duration(ns)
	} else if err := missing("cpuacct.usage", err); err != nil {
		return Usage{}, err
	}
	st, err := v.flatKeyed(tenant, "cpu", "cpu.stat")
	if err == nil {
		u.Periods, u.Throttled = st["nr_periods"], st["nr_throttled"]
		u.ThrottledTime = time.Duration(st["throttled_time"]) //nolint:gosec // nanoseconds since boot fit
	} else if err := missing("cpu.stat", err); err != nil {
		return Usage{}, err
	}
	oc, err := v.flatKeyed(tenant, "memory", "memory.oom_control")
	if n, ok := oc["oom_kill"]; err == nil && ok {
		u.OOMKills = n
	} else if err := missing("memory.oom_control oom_kill", err); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// flatKeyed reads a flat-keyed file of the tenant's cgroup in the
// hierarchy of controller.
func (v *V1) flatKeyed(tenant, controller, file string) (map[string]uint64, error) {
	d := v.dir(tenant, controller)
	if d == "" {
		return nil, fs.ErrNotExist
	}
	path := filepath.Join(d, file)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	m, err := parseFlatKeyed(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// unifiedDir is the tenant's cgroup2 directory, with ErrNoPSI when there
// is no cgroup2.
func (v *V1) unifiedDir(tenant string) (string, error) {
	if !nameRE.MatchString(tenant) {
		return "", fmt.Errorf("%w: tenant %q", ErrInvalidName, tenant)
	}
	if v.unified == "" {
		return "", fmt.Errorf("%w: cgroup2 is not mounted (legacy cgroup v1 host)", ErrNoPSI)
	}
	dir := filepath.Join(v.unified, v.subtree, tenant)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.pressure")); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s has no pressure files (a kernel without PSI, or booted with psi=0)", ErrNoPSI, dir)
	}
	return dir, nil
}

// Pressure reads the tenant's PSI from its cgroup2 directory: cgroup2
// keeps it per cgroup without any controller.
func (v *V1) Pressure(tenant string) (Pressure, error) {
	dir, err := v.unifiedDir(tenant)
	if err != nil {
		return Pressure{}, err
	}
	return readPressure(dir, "cpu.pressure", "memory.pressure", "io.pressure")
}

// WatchPressure registers tr on the tenant's pressure file of r in its
// cgroup2 directory; see watch.
func (v *V1) WatchPressure(ctx context.Context, tenant string, r Resource, tr Trigger) (<-chan struct{}, error) {
	if err := r.valid(); err != nil {
		return nil, err
	}
	dir, err := v.unifiedDir(tenant)
	if err != nil {
		return nil, err
	}
	return watch(ctx, filepath.Join(dir, string(r)+".pressure"), tr)
}
