package isolation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// ConditionLimits is the Cgroups part's condition.
const ConditionLimits = "Limits"

// ReasonNotEnforced means the spec asks for limits this host cannot enforce.
const ReasonNotEnforced = "NotEnforced"

// Cgroups converges a tenant's cgroup limits through Driver.
type Cgroups struct {
	Driver cgroup.Driver
	// IODevice is the whole disk that holds the tenants' homes, for the io
	// limits (cgroup.DeviceOf on /srv/www); it is asked only when a spec
	// has io limits.
	IODevice func() (cgroup.Device, error)
	// Pressure, when set, watches each tenant's pressure (Watch at apply,
	// Forget at removal).
	Pressure *Pressure
	// CPUPeriod is the CFS period of every tenant's CPU limit
	// (isolation.cpuPeriod); zero is the kernel's default, 100 ms.
	CPUPeriod time.Duration
	Clock     func() time.Time

	mu    sync.Mutex
	known map[string]bool // tenants with a cgroup, for Tenants
}

// Tenants are the tenants whose cgroup this step made or saw, sorted (for
// /metrics).
func (c *Cgroups) Tenants() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.known))
}

func (c *Cgroups) remember(tenant string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known == nil {
		c.known = map[string]bool{}
	}
	if ok {
		c.known[tenant] = true
	} else {
		delete(c.known, tenant)
	}
}

// Name names the step in conditions and events.
func (c *Cgroups) Name() string { return "limits" }

// ConditionType is the condition the step owns.
func (c *Cgroups) ConditionType() string { return ConditionLimits }

// limits are what row's spec asks of the kernel. When the homes are on
// no block device (tmpfs, overlay) the io limits cannot be set: they are
// left out, and noIO says why.
func (c *Cgroups) limits(row store.Resource) (l cgroup.Limits, spec v1alpha1.TenantLimits, noIO string, err error) {
	var ts v1alpha1.TenantSpec
	if err := json.Unmarshal(row.Spec, &ts); err != nil {
		return l, ts.Limits, "", reconcile.Terminal(fmt.Errorf("stored spec: %w", err))
	}
	spec = ts.Limits
	var dev cgroup.Device
	if spec.IO != (v1alpha1.IOLimits{}) {
		if c.IODevice == nil {
			noIO = "no device holds the homes"
		} else if dev, err = c.IODevice(); errors.Is(err, cgroup.ErrNoBlockDevice) {
			noIO = strings.TrimPrefix(err.Error(), cgroup.ErrNoBlockDevice.Error()+": ")
		} else if err != nil {
			return l, spec, "", fmt.Errorf("spec.limits.io: %w", err)
		}
		if noIO != "" {
			spec.IO = v1alpha1.IOLimits{}
		}
	}
	if l, err = cgroup.FromSpec(spec, dev); err != nil {
		return l, ts.Limits, noIO, reconcile.Terminal(fmt.Errorf("spec.limits: %w", err))
	}
	// A cpu limit too small for the period is the spec's to fix (or the
	// configuration's): stalled, as any invalid limit.
	l.CPUPeriod = c.CPUPeriod
	if err = l.Validate(); err != nil {
		return l, ts.Limits, noIO, reconcile.Terminal(fmt.Errorf("spec.limits: %w", err))
	}
	return l, ts.Limits, noIO, nil
}

// Observe compares the tenant's cgroup(s) with its spec.
func (c *Cgroups) Observe(_ context.Context, row store.Resource) ([]host.Difference, error) {
	l, _, _, err := c.limits(row)
	if err != nil {
		return nil, err
	}
	return c.Driver.Observe(row.Name, l)
}

// Apply writes the limits. A limit is one write to the kernel each, and
// applying again converges the rest, so there is no snapshot to take.
func (c *Cgroups) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	l, _, _, err := c.limits(row)
	if err != nil {
		return "", err
	}
	if _, err := c.Driver.Apply(row.Name, l); err != nil {
		return "", err
	}
	c.remember(row.Name, true)
	if c.Pressure != nil {
		c.Pressure.Watch(ctx, row)
	}
	return "", nil
}

// Remove kills what is left of the tenant and removes its cgroup(s).
func (c *Cgroups) Remove(ctx context.Context, row store.Resource) error {
	if c.Pressure != nil {
		c.Pressure.Forget(row.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Driver.Remove(ctx, row.Name)
	if err == nil {
		c.remember(row.Name, false)
	}
	return err
}

// ReportStatus writes status.resources: what is enforced, usage and
// pressure; and marks the Limits condition False (NotEnforced) when the
// spec asks for a limit this host does not enforce.
func (c *Cgroups) ReportStatus(ctx context.Context, row store.Resource, st *v1alpha1.Status) error {
	_, spec, noIO, err := c.limits(row)
	if err != nil {
		return err
	}
	if c.Pressure != nil {
		// A wcpd that restarted watches tenants that needed no change.
		c.Pressure.Watch(ctx, row)
	}
	c.remember(row.Name, true)
	en := c.Driver.Enforcement()
	if noIO != "" {
		en.Enforced = slices.DeleteFunc(slices.Clone(en.Enforced), func(s string) bool { return s == cgroup.LimitIO })
		en.NotEnforced = maps.Clone(en.NotEnforced)
		if en.NotEnforced == nil {
			en.NotEnforced = map[string]string{}
		}
		en.NotEnforced[cgroup.LimitIO] = "the homes' file system has no block device to throttle (" + noIO + ")"
	}
	rs := &v1alpha1.ResourcesStatus{Driver: en.Driver, Enforced: en.Enforced, NotEnforced: en.NotEnforced, ObservedAt: c.Clock().UTC()}
	if st.Resources != nil {
		rs.Disk = st.Resources.Disk // the Quota part's
	}
	if u, err := c.Driver.Usage(row.Name); err == nil {
		rs.Usage = usageStatus(u)
	}
	if p, err := c.Driver.Pressure(row.Name); err == nil {
		rs.Pressure = pressureStatus(p)
	} else if !errors.Is(err, cgroup.ErrNoPSI) {
		return err
	}
	st.Resources = rs
	if missing := unenforced(spec, en); len(missing) > 0 {
		st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: ConditionLimits,
			Status: v1alpha1.ConditionFalse, Reason: ReasonNotEnforced, ObservedGeneration: row.Generation,
			Message: "this host does not enforce " + strings.Join(missing, "; ")}, c.Clock().UTC())
	}
	return nil
}

// unenforced lists the limits spec sets that en does not enforce, each
// with the reason.
func unenforced(spec v1alpha1.TenantLimits, en cgroup.Enforcement) []string {
	set := map[string]bool{
		cgroup.LimitMemoryHigh: spec.MemoryHigh != "",
		cgroup.LimitMemoryMax:  spec.MemoryMax != "",
		cgroup.LimitCPU:        spec.CPU != "",
		cgroup.LimitPids:       spec.Pids != 0,
		cgroup.LimitIO:         spec.IO != (v1alpha1.IOLimits{}),
	}
	var out []string
	for _, name := range cgroup.AllLimits {
		if set[name] && !slices.Contains(en.Enforced, name) {
			why := en.NotEnforced[name]
			if why == "" {
				why = "not enforced by " + en.Driver
			}
			out = append(out, name+" ("+why+")")
		}
	}
	return out
}

func usageStatus(u cgroup.Usage) *v1alpha1.ResourceUsage {
	return &v1alpha1.ResourceUsage{
		MemoryBytes: u.MemoryCurrent, MemoryPeakBytes: u.MemoryPeak, CPUSeconds: u.CPU.Seconds(), Pids: u.Pids,
		OOMKills: u.OOMKills, MemoryHighEvents: u.MemoryHighEvents, Periods: u.Periods, ThrottledPeriods: u.Throttled,
	}
}

func pressureStatus(p cgroup.Pressure) *v1alpha1.PressureStatus {
	return &v1alpha1.PressureStatus{CPU: psiStatus(p.CPU), Memory: psiStatus(p.Memory), IO: psiStatus(p.IO)}
}

func psiStatus(p cgroup.PSI) v1alpha1.PSIStatus {
	s := v1alpha1.PSIStatus{Some: psiLine(p.Some)}
	if p.Full != nil {
		f := psiLine(*p.Full)
		s.Full = &f
	}
	return s
}

func psiLine(l cgroup.PSILine) v1alpha1.PSILine {
	return v1alpha1.PSILine{Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300, TotalMicroseconds: uint64(l.Total.Microseconds())} //nolint:gosec // a stall total is positive
}
