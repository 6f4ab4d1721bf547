// Package cgroup places each tenant in a cgroup v2 of its own and enforces
// its limits there: memory.high, memory.max, cpu.max, pids.max and io.max.
//
// A Manager writes the cgroup2 file system directly (cgroupfs): the
// tenants' cgroups are Root/wcp360/<tenant>, with the cpu, io, memory and
// pids controllers enabled on the way. Apply converges a tenant's cgroup
// on Limits and returns what it changed; Observe returns what differs (a
// memory.max written by hand is drift); Remove kills what is left inside
// (cgroup.kill) and removes the cgroup; Dir is the directory PHP-FPM
// masters are born in (clone3 with CLONE_INTO_CGROUP, phpfpm's CgroupDir).
// Pressure reads the tenant's PSI, HostPressure the host's.
//
// FromSpec converts a Tenant's spec limits; io.max needs a whole disk,
// which DeviceOf resolves from a path (st_dev, a partition mapped to its
// disk through sysfs).
//
// Detect says what a host offers: on a hybrid host (controllers bound to
// cgroup v1, cgroup2 without controllers at /sys/fs/cgroup/unified) the
// limits are not enforced, and Capability.Enforced says so; there is no v1
// fallback yet. Hosts where systemd owns the tree (a slice per tenant over
// D-Bus) are not handled here yet either.
//
// The kernel tests run in a VM (internal/testutil/vm), on cgroup v2.
package cgroup
