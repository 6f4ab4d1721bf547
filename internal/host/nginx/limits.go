package nginx

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Open files. nginx's master opens every error log with a fixed path —
// one per site — at each (re)load, and keeps the previous configuration's
// open until the new one is in effect: a reload of n sites needs 2n
// descriptors and more, nginx -t n. nginx raises only its workers' limit
// (worker_rlimit_nofile), so before testing or reloading we raise:
//
//   - this process's RLIMIT_NOFILE, which nginx -t and a master we start
//     inherit (Go ≥ 1.21 hands children the limit set with prlimit);
//   - the running master's, with prlimit(2); its new workers inherit it.
//
// Only as far as needed (3n + 4096, rounded up to a power of two), so
// that other programs run by this process do not get a huge limit, and
// never above the hard limit unless we may raise that (CAP_SYS_RESOURCE,
// up to fs.nr_open). A host whose hard limit is too low for its sites
// fails the reload with EMFILE, reported by waitServing.

// fdsNeeded is the descriptor limit wanted for a configuration of n sites.
func fdsNeeded(n int) uint64 {
	need := uint64(3*n + 4096) //nolint:gosec // n counts files: never negative
	return 1 << bits.Len64(need-1)
}

// raiseNoFile raises pid's (0: this process's) RLIMIT_NOFILE to need, or as
// close to it as allowed. It never lowers a limit.
func raiseNoFile(pid int, need uint64) error {
	var cur unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &cur); err != nil {
		return fmt.Errorf("read the open files limit of pid %d: %w", pid, err)
	}
	if cur.Cur >= need {
		return nil
	}
	if cur.Max < need {
		limit := need
		if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < limit {
				limit = n
			}
		}
		err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("raise the open files limit of pid %d: %w", pid, err)
		}
	}
	if cur.Cur >= cur.Max {
		return nil
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: min(need, cur.Max), Max: cur.Max}, nil); err != nil {
		return fmt.Errorf("raise the open files limit of pid %d: %w", pid, err)
	}
	return nil
}

// raiseLimits raises this process's and the master's (when running) limits
// for the sites on disk.
func (m *Manager) raiseLimits(master int) error {
	ents, err := os.ReadDir(m.sitesDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	need := fdsNeeded(len(ents))
	err = raiseNoFile(0, need)
	if master != 0 {
		err = errors.Join(err, raiseNoFile(master, need))
	}
	return err
}
