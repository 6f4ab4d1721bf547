package cgroup

import (
	"context"
	"time"

	"github.com/wcp360/wcp360/internal/host"
)

// Driver enforces tenants' limits the way one kind of host allows: the
// cgroup2 file system (Manager), cgroup v1 controllers on a hybrid or
// legacy host (V1), or systemd slices where systemd owns the tree
// (Systemd). Every method is idempotent; a tenant's name is checked as a
// cgroup name.
type Driver interface {
	// Enforcement says what this driver enforces on this host, and what
	// not and why: status shows it, so nobody takes a limit for enforced
	// when it is not.
	Enforcement() Enforcement
	// Apply makes the tenant's cgroup(s) and writes the limits that differ
	// from l; it returns what it changed.
	Apply(tenant string, l Limits) ([]host.Difference, error)
	// Observe returns how the tenant's cgroup(s) differ from l (a limit
	// written by hand is a difference), changing nothing.
	Observe(tenant string, l Limits) ([]host.Difference, error)
	// Remove kills what runs in the tenant's cgroup(s) and removes them; it
	// reports whether there was anything.
	Remove(ctx context.Context, tenant string) (bool, error)
	// Usage reads what the tenant uses now.
	Usage(tenant string) (Usage, error)
	// Pressure reads the tenant's PSI (ErrNoPSI where there is none).
	Pressure(tenant string) (Pressure, error)
	// WatchPressure registers a PSI trigger on the tenant's pressure file
	// of r (see watch).
	WatchPressure(ctx context.Context, tenant string, r Resource, tr Trigger) (<-chan struct{}, error)
	// StartIn calls start, which starts exactly one process and returns,
	// so that the process is born inside the tenant's cgroup(s): never
	// moved there after it ran (its children would escape). cgroupFD is a
	// cgroup2 directory for clone3's CLONE_INTO_CGROUP
	// (SysProcAttr.UseCgroupFD), or -1 for none. The tenant's cgroup must
	// exist (Apply ran).
	StartIn(tenant string, start func(cgroupFD int) error) error
}

// Enforcement is what a Driver enforces on its host.
type Enforcement struct {
	// Driver names the driver and where it writes: "cgroup2 at
	// /sys/fs/cgroup", "cgroup v1 (memory, cpu, blkio, pids)", "systemd".
	Driver string `json:"driver"`
	// Enforced are the limits the kernel enforces, by their spec names:
	// memoryHigh, memoryMax, cpu, pids, io.
	Enforced []string `json:"enforced,omitempty"`
	// NotEnforced says of each other limit why not.
	NotEnforced map[string]string `json:"notEnforced,omitempty"`
	// PSI: per-tenant pressure can be read.
	PSI bool `json:"psi"`
}

// The limits by their spec names, for Enforcement.
const (
	LimitMemoryHigh = "memoryHigh"
	LimitMemoryMax  = "memoryMax"
	LimitCPU        = "cpu"
	LimitPids       = "pids"
	LimitIO         = "io"
)

// AllLimits are the names of every limit a Driver may enforce.
var AllLimits = []string{LimitMemoryHigh, LimitMemoryMax, LimitCPU, LimitPids, LimitIO} //nolint:gochecknoglobals // read only

// Usage is what a tenant uses now; a value a driver cannot read is zero
// and its name is in Missing.
type Usage struct {
	// MemoryCurrent and MemoryPeak are bytes (memory.current/peak, or
	// memory.usage_in_bytes/max_usage_in_bytes on v1).
	MemoryCurrent int64 `json:"memoryCurrent"`
	MemoryPeak    int64 `json:"memoryPeak,omitempty"`
	// CPU is the CPU time used since the cgroup was made.
	CPU time.Duration `json:"cpu"`
	// Pids is the number of tasks.
	Pids int64 `json:"pids"`
	// OOMKills counts processes killed at memoryMax; MemoryHighEvents the
	// times memoryHigh throttled.
	OOMKills         uint64 `json:"oomKills"`
	MemoryHighEvents uint64 `json:"memoryHighEvents,omitempty"`
	// Throttled is how many CPU periods were throttled by the cpu limit,
	// of Periods, for ThrottledTime in all.
	Periods       uint64        `json:"periods,omitempty"`
	Throttled     uint64        `json:"throttled,omitempty"`
	ThrottledTime time.Duration `json:"throttledTime,omitempty"`
	// Missing names what could not be read on this host.
	Missing []string `json:"missing,omitempty"`
}
