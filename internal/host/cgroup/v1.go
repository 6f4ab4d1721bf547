package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wcp360/wcp360/internal/host"
)

// ErrNoV1 is returned by NewV1 when none of the controllers the limits use
// is bound to a cgroup v1 hierarchy.
var ErrNoV1 = errors.New("cgroup: no controller of the limits is bound to cgroup v1")

// v1Used are the v1 controllers of the limits, in the order V1 writes
// them. cpuacct only
// accounts (Usage's CPU): where it is mounted apart from cpu it gets a
// tenant cgroup of its own.
var v1Used = []string{"memory", "cpu", "cpuacct", "blkio", "pids"} //nolint:gochecknoglobals // read only

// V1Options configure a V1.
type V1Options struct {
	// Subtree is the name of WCP360's cgroup in each hierarchy;
	// DefaultSubtree when empty.
	Subtree string
	// Logger reports what StartIn cannot return: a thread it could not
	// move back after the process started. Defaults to discarding.
	Logger *slog.Logger
}

// V1 is the Driver of a hybrid or legacy host, where the controllers are
// bound to cgroup v1 hierarchies (/sys/fs/cgroup/<controller>). A tenant
// has a cgroup <mount>/<subtree>/<tenant> in each hierarchy of memory,
// cpu (with cpuacct), blkio and pids that is mounted, and, when cgroup2 is
// mounted too (hybrid), <unified>/<subtree>/<tenant> there: it has no
// controllers, but it keeps the tenant's PSI and is what StartIn hands to
// clone3 (CLONE_INTO_CGROUP).
//
// How the limits map onto cgroup v1, and what that leaves out:
//
//   - memoryMax is memory.limit_in_bytes, and memory.memsw.limit_in_bytes
//     (memory plus swap) gets the same value where the kernel accounts
//     swap (the file exists): a tenant at memoryMax is reclaimed and then
//     OOM-killed, it cannot spill past memoryMax into swap. Without the
//     file (swapaccount=0) swap is not limited: a tenant at memoryMax
//     swaps out instead, as far as the host's swap goes. The kernel keeps
//     both in whole pages, rounded down, and prints no limit as
//     PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages);
//     Observe shows that as "max". Lowering the limit below what the
//     tenant uses fails with EBUSY where cgroup2 would OOM-kill: v1 only
//     reclaims on a write.
//   - memoryHigh is NOT enforced: cgroup v1 has no memory.high, nothing
//     throttles a tenant there. It is written as memory.soft_limit_in_bytes,
//     which only makes the kernel reclaim the tenant's memory above it
//     first when the whole host runs short. Enforcement says so.
//   - cpu is cpu.cfs_quota_us per cpu.cfs_period_us (Limits.CPUPeriod,
//     100000 by default): the percent of the period, -1 for no limit.
//   - pids is pids.max.
//   - io is blkio.throttle.{read,write}_{bps,iops}_device, a "MAJ:MIN
//     value" line per device ("MAJ:MIN 0" removes one). It is only partly
//     enforced and Enforcement lists it as not enforced, saying why:
//     without cgroup writeback (cgroup2 only) the page cache is written
//     back by the kernel's flusher threads, in the root cgroup, so v1
//     throttles reads and direct (O_DIRECT) or synchronous (fsync,
//     O_SYNC) writes, never buffered writes.
//
// Every method is idempotent.
type V1 struct {
	subtree string
	hier    []*v1Hierarchy
	// unified is the cgroup2 mount point, "" when there is none.
	unified  string
	pageSize int64
	// unlimitedMem is how memory v1 prints no limit.
	unlimitedMem int64
	log          *slog.Logger
}

// v1Hierarchy is a cgroup v1 hierarchy V1 writes to: a mount point and the
// controllers of the limits bound to it.
type v1Hierarchy struct {
	mount       string
	controllers []string
	// cpuset is bound to it too: a new cgroup's cpuset.cpus and .mems
	// start empty there, and no task can join it until they are set.
	cpuset bool
}

func (h *v1Hierarchy) has(controller string) bool { return slices.Contains(h.controllers, controller) }

func (h *v1Hierarchy) String() string { return strings.Join(h.controllers, ",") + " at " + h.mount }

var _ Driver = (*V1)(nil)

// NewV1 returns the V1 driver of a host with the capability c (Detect);
// it touches nothing. It fails with ErrNoV1 when c binds none of memory,
// cpu, blkio and pids to cgroup v1.
func NewV1(c Capability, opts V1Options) (*V1, error) {
	if opts.Subtree == "" {
		opts.Subtree = DefaultSubtree
	}
	if !nameRE.MatchString(opts.Subtree) {
		return nil, fmt.Errorf("%w: subtree %q", ErrInvalidName, opts.Subtree)
	}
	v := &V1{subtree: opts.Subtree, pageSize: int64(os.Getpagesize()), log: opts.Logger}
	v.unlimitedMem = math.MaxInt64 / v.pageSize * v.pageSize
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	for _, name := range v1Used {
		mount, ok := c.V1[name]
		if !ok {
			continue
		}
		if !filepath.IsAbs(mount) {
			return nil, fmt.Errorf("%w: the %s hierarchy's mount %q is not an absolute path", ErrInvalidName, name, mount)
		}
		mount = filepath.Clean(mount)
		i := slices.IndexFunc(v.hier, func(h *v1Hierarchy) bool { return h.mount == mount })
		if i < 0 {
			v.hier = append(v.hier, &v1Hierarchy{mount: mount, cpuset: c.V1["cpuset"] == mount})
			i = len(v.hier) - 1
		}
		v.hier[i].controllers = append(v.hier[i].controllers, name)
	}
	if !slices.ContainsFunc(v.hier, func(h *v1Hierarchy) bool { return !slices.Equal(h.controllers, []string{"cpuacct"}) }) {
		return nil, fmt.Errorf("%w (%s mode; cgroup v1 has %s)", ErrNoV1, c.Mode, strings.Join(slices.Sorted(maps.Keys(c.V1)), ", "))
	}
	if c.Unified != "" {
		if !filepath.IsAbs(c.Unified) {
			return nil, fmt.Errorf("%w: cgroup2 mount %q is not an absolute path", ErrInvalidName, c.Unified)
		}
		v.unified = filepath.Clean(c.Unified)
	}
	return v, nil
}

// hierarchy is the hierarchy of controller, nil when it is not mounted.
func (v *V1) hierarchy(controller string) *v1Hierarchy {
	for _, h := range v.hier {
		if h.has(controller) {
			return h
		}
	}
	return nil
}

// v1Dir is a tenant's cgroup in one hierarchy (h nil: in cgroup2).
type v1Dir struct {
	h    *v1Hierarchy
	path string
}

// dirs are the tenant's cgroup directories, the v1 ones first, then the
// cgroup2 one (if any).
func (v *V1) dirs(tenant string) ([]v1Dir, error) {
	if !nameRE.MatchString(tenant) {
		return nil, fmt.Errorf("%w: tenant %q", ErrInvalidName, tenant)
	}
	out := make([]v1Dir, 0, len(v.hier)+1)
	for _, h := range v.hier {
		out = append(out, v1Dir{h: h, path: filepath.Join(h.mount, v.subtree, tenant)})
	}
	if v.unified != "" {
		out = append(out, v1Dir{path: filepath.Join(v.unified, v.subtree, tenant)})
	}
	return out, nil
}

// dir is the tenant's cgroup in the hierarchy of controller ("" when that
// is not mounted).
func (v *V1) dir(tenant, controller string) string {
	if h := v.hierarchy(controller); h != nil {
		return filepath.Join(h.mount, v.subtree, tenant)
	}
	return ""
}

// Enforcement lists memoryMax, cpu and pids as enforced where their
// controllers are mounted; memoryHigh and io never are, for the reasons
// given in V1's documentation; PSI is there when cgroup2 has pressure
// files.
func (v *V1) Enforcement() Enforcement {
	var where []string
	for _, h := range v.hier {
		where = append(where, h.String())
	}
	driver := "cgroup v1 (" + strings.Join(where, ", ")
	e := Enforcement{NotEnforced: map[string]string{}}
	if v.unified != "" {
		e.PSI = true
		for _, f := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
			if _, err := os.Stat(filepath.Join(v.unified, f)); err != nil {
				e.PSI = false
			}
		}
		if e.PSI {
			driver += "; PSI from cgroup2 at " + v.unified
		}
	}
	e.Driver = driver + ")"
	notMounted := func(c string) string {
		return "no cgroup v1 hierarchy has the " + c + " controller"
	}
	if h := v.hierarchy("memory"); h != nil {
		e.Enforced = append(e.Enforced, LimitMemoryMax)
		e.NotEnforced[LimitMemoryHigh] = "cgroup v1 has no memory.high: nothing throttles the tenant at memoryHigh; " +
			"it is written as memory.soft_limit_in_bytes, which only makes the kernel reclaim the tenant's memory above it first when the whole host runs short"
	} else {
		e.NotEnforced[LimitMemoryHigh] = notMounted("memory")
		e.NotEnforced[LimitMemoryMax] = notMounted("memory")
	}
	if v.hierarchy("cpu") != nil {
		e.Enforced = append(e.Enforced, LimitCPU)
	} else {
		e.NotEnforced[LimitCPU] = notMounted("cpu")
	}
	if v.hierarchy("pids") != nil {
		e.Enforced = append(e.Enforced, LimitPids)
	} else {
		e.NotEnforced[LimitPids] = notMounted("pids")
	}
	if v.hierarchy("blkio") != nil {
		e.NotEnforced[LimitIO] = "only partly: cgroup v1 blkio throttles reads and direct or synchronous writes, " +
			"not buffered writes, which the kernel's flusher threads write back outside the tenant's cgroup (the limits are written to blkio.throttle.*)"
	} else {
		e.NotEnforced[LimitIO] = notMounted("blkio")
	}
	return e
}

// Apply makes the tenant's cgroups and writes the limits that differ from
// l; it returns what it changed, nothing when all was as l says.
func (v *V1) Apply(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dirs, err := v.dirs(tenant)
	if err != nil {
		return nil, err
	}
	var changed []host.Difference
	for _, d := range dirs {
		if err := mkdir(filepath.Dir(d.path)); err != nil {
			return changed, err
		}
		if d.h != nil && d.h.cpuset {
			if err := v1InheritCpuset(filepath.Dir(d.path)); err != nil {
				return changed, err
			}
		}
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			if err := mkdir(d.path); err != nil {
				return changed, err
			}
			changed = append(changed, host.Difference{Field: "cgroup", Want: d.path, Have: "absent"})
		}
		if d.h != nil && d.h.cpuset {
			if err := v1InheritCpuset(d.path); err != nil {
				return changed, err
			}
		}
	}
	fixes, err := v.observe(dirs, l)
	if err != nil {
		return changed, err
	}
	for _, f := range fixes {
		if err := writeFile(f.path, f.write); err != nil {
			return changed, fmt.Errorf("%s: %w", f.diff.Field, err)
		}
		changed = append(changed, f.diff)
	}
	return changed, nil
}

// Observe returns how the tenant's cgroups differ from l: a limit written
// by hand is a difference, as is a missing cgroup (whose limits are then
// not compared).
func (v *V1) Observe(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dirs, err := v.dirs(tenant)
	if err != nil {
		return nil, err
	}
	var diffs []host.Difference
	for _, d := range dirs {
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			diffs = append(diffs, host.Difference{Field: "cgroup", Want: d.path, Have: "absent"})
		} else if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	fixes, err := v.observe(dirs, l)
	if err != nil {
		return nil, err
	}
	for _, f := range fixes {
		diffs = append(diffs, f.diff)
	}
	return diffs, nil
}
