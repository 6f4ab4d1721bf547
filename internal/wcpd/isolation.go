package wcpd

import (
	"context"
	"fmt"
	"time"

	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/host/isolation"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/host/sdbus"
	"github.com/wcp360/wcp360/internal/store"
)

// cgroupDriver picks the driver isolation.cgroups names, or with auto
// the one this host allows: systemd slices where systemd is PID 1 and
// cgroup2 holds the controllers, cgroup2 written directly where it holds
// them without systemd, the v1 controllers on a hybrid or legacy host,
// else none. It logs what it picked and what that does not enforce.
func (d *daemonState) cgroupDriver(ctx context.Context) (cgroup.Driver, error) {
	ic := d.cfg.Isolation
	if ic.Cgroups == config.CgroupsNone {
		return cgroup.None{Reason: "isolation.cgroups is none in wcpd's configuration"}, nil
	}
	c, err := cgroup.Detect("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	drv, err := pickCgroupDriver(ctx, ic, c)
	if err != nil {
		return nil, err
	}
	en := drv.Enforcement()
	if len(en.NotEnforced) > 0 {
		d.log.Warn("some tenant limits are not enforced on this host", "driver", en.Driver, "enforced", en.Enforced, "notEnforced", en.NotEnforced)
	} else {
		d.log.Info("tenant limits enforced", "driver", en.Driver, "psi", en.PSI)
	}
	return drv, nil
}

func pickCgroupDriver(ctx context.Context, ic config.Isolation, c cgroup.Capability) (cgroup.Driver, error) {
	v2 := c.Enforced() == nil
	want := ic.Cgroups
	if want == config.CgroupsAuto {
		switch {
		case v2 && sdbus.Booted():
			want = config.CgroupsSystemd
		case v2:
			want = config.CgroupsV2
		case len(c.V1) > 0:
			want = config.CgroupsV1
		default:
			return cgroup.None{Reason: fmt.Sprintf("no cgroup controllers are mounted (%s)", c)}, nil
		}
	}
	switch want {
	case config.CgroupsV2:
		if !v2 {
			return nil, fmt.Errorf("isolation.cgroups is cgroup2, but %s", c)
		}
		return cgroup.New(cgroup.Options{Root: c.Unified, Subtree: ic.Subtree})
	case config.CgroupsV1:
		return cgroup.NewV1(c, cgroup.V1Options{Subtree: ic.Subtree})
	case config.CgroupsSystemd:
		return cgroup.NewSystemd(ctx, cgroup.SystemdOptions{})
	}
	return nil, fmt.Errorf("isolation.cgroups %q: unknown", want)
}

// isolationSteps are the Tenant's parts after its account: its cgroup
// limits and its disk quota.
func (d *daemonState) isolationSteps(st *store.Store) (*isolation.Cgroups, *isolation.Quota, error) {
	drv, err := d.cgroupDriver(context.Background())
	if err != nil {
		return nil, nil, fmt.Errorf("isolation: %w", err)
	}
	d.cgroups = drv
	ic := d.cfg.Isolation
	d.pressure = &isolation.Pressure{
		Driver: drv, Trigger: cgroup.Trigger{Stall: ic.PressureStall, Window: ic.PressureWindow},
		Record: st.RecordEvent, Clock: time.Now, Logger: d.log,
	}
	// The host's own stalls: the watch ends when wcpd does.
	if err := d.pressure.WatchHost(context.Background(), "/proc"); err != nil {
		d.log.Warn("cannot watch the host's pressure", "err", err)
	}
	wwwRoot := d.cfg.Paths.WWWRoot
	limits := &isolation.Cgroups{
		Driver: drv, Pressure: d.pressure, Clock: time.Now, CPUPeriod: ic.CPUPeriod,
		IODevice: func() (cgroup.Device, error) { return cgroup.DeviceOf(cgroup.SysDevBlock, wwwRoot) },
	}
	quota := &isolation.Quota{WWWRoot: wwwRoot, Clock: time.Now}
	return limits, quota, nil
}

// phpRunner is how PHP-FPM masters run with drv: as units in the tenant's
// systemd slice with the systemd driver (the slice is the cgroup), else
// started by wcpd into the tenant's cgroups (StartIn).
func phpRunner(drv cgroup.Driver) string {
	if _, ok := drv.(*cgroup.Systemd); ok {
		return phpfpm.RunnerSystemd
	}
	return phpfpm.RunnerWcpd
}
