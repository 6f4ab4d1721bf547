package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// ErrStartInUnsupported is returned by StartIn where it cannot have a
// process born in the tenant's slice (systemd in hybrid or legacy mode).
var ErrStartInUnsupported = errors.New("cgroup: StartIn cannot place a process born in the tenant's slice here")

// StartIn starts a process in tenant's slice, born there. A slice holds
// no process itself; a scope (the unit systemd makes around processes it
// did not start) does, but needs a process's pid to be made, so the
// process would have to run before its cgroup exists. A placeholder runs
// instead, never a tenant's program:
//
//  1. sleep infinity is started (in wcpd's cgroup), and a transient scope
//     wcp360-start-<t>-<n>.scope, Slice=wcp360-tenant-<t>.slice,
//     Delegate=yes, is made around it: systemd moves it into the scope's
//     cgroup;
//  2. start clones its process straight into that cgroup
//     (CLONE_INTO_CGROUP): it and all it starts run in the scope, within
//     the slice's limits, from their first instruction;
//  3. the placeholder is killed; the scope lives as long as the process
//     (and its children), and is collected when they have ended. Remove
//     stops it with the slice.
//
// This needs cgroup2 to hold the processes (unified mode): on a hybrid or
// legacy host a process clone3 places in a cgroup2 cgroup stays in its
// parent's (wcpd's) v1 cgroups, those that hold the memory, cpu and pids
// limits there, so StartIn returns ErrStartInUnsupported; tenants'
// programs are then started as units with Slice= (as phpfpm's systemd
// runner does), which systemd places itself.
//
// (A process born frozen in a cgroup of wcpd's own, then moved into a
// scope, does not do: Go's exec waits in vfork until the child execs, so
// a garbage collection that stops the world while the child is frozen
// deadlocks wcpd.)
func (s *Systemd) StartIn(tenant string, start func(cgroupFD int) error) error {
	if s.host.mode != Unified {
		return fmt.Errorf("%w: systemd runs in %s mode, where a process born in a cgroup2 cgroup stays in wcpd's cgroup v1 cgroups: start it as a unit with Slice=%s",
			ErrStartInUnsupported, s.host.mode, SystemdSlice(tenant))
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return err
	}
	if !st.active {
		return fmt.Errorf("%w: %s is %s", ErrSliceInactive, st.name, st.activeState)
	}
	sleep, err := cmdrun.LookPath("sleep", "/usr/bin", "/bin")
	if err != nil {
		return fmt.Errorf("cgroup: StartIn's placeholder: %w", err)
	}
	holder, err := cmdrun.Start(context.WithoutCancel(ctx), cmdrun.Cmd{Path: sleep, Args: []string{"infinity"}}, nil)
	if err != nil {
		return fmt.Errorf("cgroup: StartIn's placeholder: %w", err)
	}
	defer func() {
		_ = holder.Signal(syscall.SIGKILL) // gone already if the scope could not be made
		_ = holder.Wait()                  // killed: an error, the one expected
	}()
	name := "wcp360-start-" + tenant + "-" + strconv.Itoa(holder.Pid()) + ".scope"
	props := []sddbus.Property{
		sddbus.PropDescription("WCP360: processes of tenant " + tenant + " started by wcpd"),
		sddbus.PropSlice(st.name),
		sddbus.PropPids(uint32(holder.Pid())), //nolint:gosec // a pid fits
		{Name: "Delegate", Value: dbus.MakeVariant(true)},
		// Unloaded once its processes have ended, whatever their status.
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
	if err := s.job(ctx, "start "+name, func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StartTransientUnitContext(ctx, name, "fail", props, ch)
	}); err != nil {
		return err
	}
	c, err := s.dbusConn(ctx)
	if err != nil {
		return err
	}
	p, err := c.GetUnitTypePropertyContext(ctx, name, "Scope", "ControlGroup")
	if err != nil {
		return fmt.Errorf("%w: ControlGroup of %s: %w", ErrSystemd, name, err)
	}
	cg, _ := p.Value.Value().(string)
	if cg == "" {
		return fmt.Errorf("%w: %s has no cgroup", ErrSystemd, name)
	}
	return startInDir(filepath.Join(s.host.unified, cg), start)
}
