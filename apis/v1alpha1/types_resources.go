package v1alpha1

import "time"

// ResourcesStatus is how a Tenant's limits stand on the host: what
// enforces them (and what cannot be enforced here, and why), what the
// tenant uses, its pressure and its disk. It is read at each reconcile
// (and each periodic resync); ObservedAt says when.
type ResourcesStatus struct {
	// Driver is what enforces the limits: "cgroup2 at /sys/fs/cgroup",
	// "cgroup v1 (...)", "systemd (...)", or "none".
	Driver string `json:"driver"`
	// Enforced are the spec's limits the kernel enforces on this host,
	// by name: memoryHigh, memoryMax, cpu, pids, io.
	Enforced []string `json:"enforced,omitempty"`
	// NotEnforced says of each limit the host cannot enforce why not.
	NotEnforced map[string]string `json:"notEnforced,omitempty"`
	// Usage is what the tenant's processes use now.
	Usage *ResourceUsage `json:"usage,omitempty"`
	// Pressure is the tenant's PSI: the share of time its tasks stalled.
	Pressure *PressureStatus `json:"pressure,omitempty"`
	// Disk is the tenant's home on its file system (project quota).
	Disk *DiskStatus `json:"disk,omitempty"`
	// ObservedAt is when these were read.
	ObservedAt time.Time `json:"observedAt"`
}

// ResourceUsage is what a tenant's cgroup counts.
type ResourceUsage struct {
	MemoryBytes     int64 `json:"memoryBytes"`
	MemoryPeakBytes int64 `json:"memoryPeakBytes,omitempty"`
	// CPUSeconds is the CPU time used since the tenant's cgroup was made.
	CPUSeconds float64 `json:"cpuSeconds"`
	Pids       int64   `json:"pids"`
	// OOMKills counts processes killed at memoryMax; MemoryHighEvents the
	// times memoryHigh throttled the tenant.
	OOMKills         uint64 `json:"oomKills"`
	MemoryHighEvents uint64 `json:"memoryHighEvents,omitempty"`
	// ThrottledPeriods of Periods were throttled by the cpu limit.
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
}

// PressureStatus is PSI per resource.
type PressureStatus struct {
	CPU    PSIStatus `json:"cpu"`
	Memory PSIStatus `json:"memory"`
	IO     PSIStatus `json:"io"`
}

// PSIStatus is one pressure file: the percentage of wall time some (or
// all, Full) of the tasks stalled, averaged over 10, 60 and 300 seconds,
// and the total stall time.
type PSIStatus struct {
	Some PSILine  `json:"some"`
	Full *PSILine `json:"full,omitempty"`
}

// PSILine is one line of a pressure file.
type PSILine struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	// TotalMicroseconds is the stall time since the cgroup was made.
	TotalMicroseconds uint64 `json:"totalMicroseconds"`
}

// DiskStatus is a tenant's home under its project quota.
type DiskStatus struct {
	// Quota: the file system enforces a project quota on the home; when
	// false, Reason says why not (and usage is not counted).
	Quota  bool   `json:"quota"`
	Reason string `json:"reason,omitempty"`
	// FileSystem is the type and mount point holding the home.
	FileSystem string `json:"fileSystem,omitempty"`
	// Project is the project id (the tenant's uid).
	Project     uint32 `json:"project,omitempty"`
	UsedBytes   uint64 `json:"usedBytes"`
	UsedInodes  uint64 `json:"usedInodes"`
	LimitBytes  uint64 `json:"limitBytes,omitempty"`
	LimitInodes uint64 `json:"limitInodes,omitempty"`
}
