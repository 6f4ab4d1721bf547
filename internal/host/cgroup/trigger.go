package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Resource is what a pressure file is about.
type Resource string

// The resources with pressure files.
const (
	CPU    Resource = "cpu"
	Memory Resource = "memory"
	IO     Resource = "io"
)

// Trigger is a PSI trigger: it fires when tasks stalled (some of them, or
// all with Full) for Stall or more within a Window.
type Trigger struct {
	Full   bool
	Stall  time.Duration
	Window time.Duration
}

// The kernel's bounds on a trigger's window (kernel/sched/psi.c).
const (
	MinTriggerWindow = 500 * time.Millisecond
	MaxTriggerWindow = 10 * time.Second
)

// String is the trigger as written to a pressure file: "some 150000 1000000".
func (tr Trigger) String() string {
	kind := "some"
	if tr.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s %d %d", kind, tr.Stall.Microseconds(), tr.Window.Microseconds())
}

// Validate checks tr against what the kernel accepts.
func (tr Trigger) Validate() error {
	if tr.Window < MinTriggerWindow || tr.Window > MaxTriggerWindow || tr.Window%time.Microsecond != 0 {
		return fmt.Errorf("cgroup: PSI trigger window %s: want whole microseconds from %s to %s", tr.Window, MinTriggerWindow, MaxTriggerWindow)
	}
	if tr.Stall < time.Microsecond || tr.Stall > tr.Window || tr.Stall%time.Microsecond != 0 {
		return fmt.Errorf("cgroup: PSI trigger stall %s: want whole microseconds, more than 0 and at most the window %s", tr.Stall, tr.Window)
	}
	return nil
}

func (r Resource) valid() error {
	switch r {
	case CPU, Memory, IO:
		return nil
	}
	return fmt.Errorf("%w: resource %q", ErrInvalidName, r)
}

// WatchPressure registers tr on the tenant's pressure file of r; see
// watch.
func (m *Manager) WatchPressure(ctx context.Context, tenant string, r Resource, tr Trigger) (<-chan struct{}, error) {
	dir, err := m.Dir(tenant)
	if err != nil {
		return nil, err
	}
	if err := r.valid(); err != nil {
		return nil, err
	}
	return watch(ctx, filepath.Join(dir, string(r)+".pressure"), tr)
}

// WatchHostPressure registers tr on the host's /proc/pressure/<r> (proc is
// "/proc" but for tests); see watch.
func WatchHostPressure(ctx context.Context, proc string, r Resource, tr Trigger) (<-chan struct{}, error) {
	if err := r.valid(); err != nil {
		return nil, err
	}
	return watch(ctx, filepath.Join(proc, "pressure", string(r)), tr)
}

// pollInterval bounds how long a watch takes to see its context done.
const pollInterval = 250 * time.Millisecond

// watch writes the trigger to a pressure file and returns a channel that
// gets a value each time it fires (firings coalesce while the receiver is
// busy; the kernel fires at most once per window). The channel is closed
// when ctx is done or the file goes away (its cgroup was removed).
func watch(ctx context.Context, path string, tr Trigger) (<-chan struct{}, error) {
	if err := tr.Validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroup: PSI trigger: %w", err)
	}
	// The trigger lives as long as the descriptor.
	if _, err := f.WriteString(tr.String() + "\x00"); err != nil {
		_ = f.Close() // the error that matters is the write's
		return nil, fmt.Errorf("cgroup: PSI trigger %q on %s: %w", tr, path, err)
	}
	c := make(chan struct{}, 1)
	go func() {
		defer close(c)
		defer f.Close()                                                 //nolint:errcheck // nothing written is lost
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}} //nolint:gosec // a descriptor fits in int32
		for ctx.Err() == nil {
			n, err := unix.Poll(fds, int(pollInterval.Milliseconds()))
			switch {
			case errors.Is(err, unix.EINTR), n == 0:
				continue
			case err != nil, fds[0].Revents&unix.POLLERR != 0:
				return
			case fds[0].Revents&unix.POLLPRI != 0:
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return c, nil
}
