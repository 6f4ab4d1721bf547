package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoPSI is returned by Pressure where the host keeps no per-tenant
// pressure (no cgroup2, or a kernel without PSI).
var ErrNoPSI = errors.New("cgroup: no pressure stall information")

var _ Driver = (*Manager)(nil)

// Enforcement is every limit: cgroup2 with its controllers enforces all.
func (m *Manager) Enforcement() Enforcement {
	return Enforcement{Driver: "cgroup2 at " + m.root, Enforced: append([]string(nil), AllLimits...), PSI: true}
}

// Usage reads memory.current, memory.peak (kernels ≥ 5.19), cpu.stat,
// pids.current and memory.events.
func (m *Manager) Usage(tenant string) (Usage, error) {
	dir, err := m.Dir(tenant)
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	if _, err := os.Stat(dir); err != nil {
		return Usage{}, fmt.Errorf("cgroup: %w", err)
	}
	for _, v := range []struct {
		file string
		dst  *int64
	}{{"memory.current", &u.MemoryCurrent}, {"memory.peak", &u.MemoryPeak}, {"pids.current", &u.Pids}} {
		n, err := readInt(filepath.Join(dir, v.file))
		if errors.Is(err, fs.ErrNotExist) {
			u.Missing = append(u.Missing, v.file)
			continue
		} else if err != nil {
			return Usage{}, err
		}
		*v.dst = n
	}
	if st, err := m.Stat(tenant, "cpu.stat"); err == nil {
		u.CPU = time.Duration(st["usage_usec"]) * time.Microsecond //nolint:gosec // microseconds since boot fit
		u.Periods, u.Throttled = st["nr_periods"], st["nr_throttled"]
		u.ThrottledTime = time.Duration(st["throttled_usec"]) * time.Microsecond //nolint:gosec // as above
	} else {
		u.Missing = append(u.Missing, "cpu.stat")
	}
	if ev, err := m.Stat(tenant, "memory.events"); err == nil {
		u.OOMKills, u.MemoryHighEvents = ev["oom_kill"], ev["high"]
	} else {
		u.Missing = append(u.Missing, "memory.events")
	}
	return u, nil
}

// StartIn opens the tenant's cgroup and hands it to start for
// CLONE_INTO_CGROUP.
func (m *Manager) StartIn(tenant string, start func(cgroupFD int) error) error {
	dir, err := m.Dir(tenant)
	if err != nil {
		return err
	}
	return startInDir(dir, start)
}

// startInDir opens the cgroup2 directory dir for start.
func startInDir(dir string, start func(cgroupFD int) error) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open cgroup", Path: dir, Err: err}
	}
	defer unix.Close(fd) //nolint:errcheck // a read-only directory descriptor
	return start(fd)
}

// readInt reads a file holding one integer ("max" reads as -1).
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %s: %q", ErrParse, path, s)
	}
	return n, nil
}
