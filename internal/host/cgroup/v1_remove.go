package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Remove kills what runs in the tenant's cgroups and removes them, in
// every hierarchy and in cgroup2, each deepest first (cgroups made below
// them by hand too). It reports whether there was any; a missing one is
// no error. cgroup v1 has no cgroup.kill: the processes listed in
// cgroup.procs are sent SIGKILL, again until the cgroup can be removed or
// ctx ends (ErrBusy). wcpd itself is never killed, even when a thread of
// its own is in the cgroup (StartIn's, for a moment): Remove then waits
// for it to leave.
func (v *V1) Remove(ctx context.Context, tenant string) (bool, error) {
	dirs, err := v.dirs(tenant)
	if err != nil {
		return false, err
	}
	var found bool
	var errs []error
	for _, d := range dirs {
		if _, err := os.Stat(d.path); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
			continue
		}
		found = true
		if err := removeTree(ctx, d.path); err != nil {
			errs = append(errs, err)
		}
	}
	return found, errors.Join(errs...)
}

// removeTree removes the cgroup dir and those below it (made by hand, or
// by a program of the tenant's with a delegated subtree), deepest first,
// killing what runs in them: for every driver, on cgroup2 and v1.
func removeTree(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("cgroup: remove %s: %w", dir, err)
		}
		if err := killCgroup(dir); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			procs, _ := v1Procs(dir)
			return fmt.Errorf("%w: %s (processes %v): %w", ErrBusy, dir, procs, context.Cause(ctx))
		case <-time.After(delay):
		}
	}
}

// killCgroup sends SIGKILL to every process in the cgroup dir but this one:
// through cgroup.kill where there is one (cgroup2 since Linux 5.14),
// else to each process of cgroup.procs through a pidfd, so that a process
// id reused by a process elsewhere is never signalled: a process is
// killed only when its pidfd was opened before a read of cgroup.procs
// that still lists it.
func killCgroup(dir string) error {
	if err := writeFile(filepath.Join(dir, "cgroup.kill"), "1"); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	procs, err := v1Procs(dir)
	if err != nil || len(procs) == 0 {
		return err
	}
	self := os.Getpid()
	fds := map[int]int{}
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd) // a pidfd: nothing to flush
		}
	}()
	for _, pid := range procs {
		if pid == self {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case errors.Is(err, unix.ESRCH):
			// Gone already.
		case errors.Is(err, unix.ENOSYS):
			// Before Linux 5.3: the pid may have been reused since the
			// read, a race pidfds close.
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("cgroup: kill %d in %s: %w", pid, dir, err)
			}
		default:
			return fmt.Errorf("cgroup: pidfd of %d in %s: %w", pid, dir, err)
		}
	}
	again, err := v1Procs(dir)
	if err != nil {
		return err
	}
	for pid, fd := range fds {
		if !slices.Contains(again, pid) {
			continue
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cgroup: kill %d in %s: %w", pid, dir, err)
		}
	}
	return nil
}

// v1Procs reads the process ids of cgroup.procs (nil when the cgroup is
// gone). In a PID namespace it lists the processes of that namespace only.
func v1Procs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("%w %s: %q", ErrParse, filepath.Join(dir, "cgroup.procs"), f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
