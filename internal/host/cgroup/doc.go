// Package cgroup will place each tenant in a cgroup of its own and enforce
// its limits (memory.high, memory.max, cpu.max, io.max, pids.max) there. For
// now it holds the kernel tests that pin down what the kernel does with
// those limits; they run in a VM (internal/testutil/vm), on cgroup v2.
package cgroup
