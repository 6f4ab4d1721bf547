// Package cgroup places each tenant in cgroups of its own and enforces its
// limits there: memory.high, memory.max, cpu.max, pids.max and io.max, or
// what the host offers of them. A Driver (driver.go) is one way of doing
// it; which one a host gets is wcpd's choice (isolation.cgroups):
//
//   - Manager writes the cgroup2 file system directly (cgroupfs): the
//     tenants' cgroups are Root/wcp360/<tenant>, with the cpu, io, memory
//     and pids controllers enabled on the way. Every limit is enforced.
//   - Systemd (systemd.go), where systemd is PID 1 and owns the tree: a
//     transient slice per tenant, wcp360-tenant-<t>.slice, whose
//     properties (MemoryHigh, MemoryMax, CPUQuota, TasksMax, IO*) it sets
//     over D-Bus; a hand edit of either the property or the kernel file is
//     drift. PHP-FPM masters run there as units with Slice=.
//   - V1 (v1.go), on a hybrid or legacy host whose controllers are bound to
//     cgroup v1: memory.limit_in_bytes, cpu.cfs_quota_us, pids.max and the
//     blkio throttle, and the tenant's cgroup2 directory (no controllers)
//     for PSI. memoryHigh and io are not (fully) enforced there, and its
//     Enforcement says why.
//   - None, where nothing can or may be enforced; it says so.
//
// Apply converges a tenant's cgroup on Limits and returns what it changed;
// Observe returns what differs (a memory.max written by hand is drift);
// Remove kills what is left inside and removes the cgroup; StartIn starts a
// process born inside the tenant's cgroups (clone3 with CLONE_INTO_CGROUP;
// on v1 the forking thread moves first), never moved there after it ran.
// Usage, Pressure and WatchPressure (PSI triggers, all on one epoll) read
// what the tenant uses and how much it stalls; HostPressure the host's.
//
// FromSpec converts a Tenant's spec limits; io.max needs a whole disk,
// which DeviceOf resolves from a path (st_dev, a partition mapped to its
// disk through sysfs). Detect says what a host offers.
//
// The cgroup2 and PSI tests run in a VM (internal/testutil/vm) on a real
// cgroup2; the v1 tests on this kind of hybrid host, in the sandbox (which
// gives every sandbox a private cgroup tree); the systemd tests in
// systemd-nspawn.
package cgroup
