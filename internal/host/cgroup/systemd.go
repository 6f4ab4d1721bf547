package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/sdbus"
)

// Errors of the Systemd driver, for errors.Is.
var (
	// ErrSliceInactive: the tenant's slice is not active: Apply did not run,
	// Remove did, or the host rebooted since (transient slices do not
	// survive a reboot).
	ErrSliceInactive = errors.New("cgroup: the tenant's systemd slice is not active")
	// ErrSystemd wraps what systemd answered (sdbus.ErrSystemd).
	ErrSystemd = sdbus.ErrSystemd
)

// SystemdOptions configure a Systemd driver.
type SystemdOptions struct {
	// Root is where systemd mounts the cgroup file systems, DefaultRoot
	// when empty: cgroup2 there (unified), or a tmpfs holding the v1
	// hierarchies and cgroup2 at Root/unified (hybrid), or v1 only (legacy).
	Root string
	// Mountinfo names the v1 hierarchies' mount points,
	// /proc/self/mountinfo when empty.
	Mountinfo string
	// Timeout bounds what each call of Apply, Observe, Usage, Pressure,
	// WatchPressure and StartIn asks of systemd; 30 s when zero. Remove
	// runs until its context ends: stopping the units in a slice may take
	// their TimeoutStopSec.
	Timeout time.Duration
}

// Systemd is the Driver of a host where systemd is PID 1 and owns the
// cgroup tree: each tenant has a transient slice, wcp360-tenant-<t>.slice
// (SystemdSlice), whose resource-control properties carry the limits, set
// over systemd's private D-Bus socket (/run/systemd/private, no
// dbus-daemon). systemd derives a slice's parent from the dashes in its
// name, so the tenant's cgroup is
//
//	/wcp360.slice/wcp360-tenant.slice/wcp360-tenant-<t>.slice
//
// and every unit started with Slice=wcp360-tenant-<t>.slice (phpfpm's
// systemd runner's masters, StartIn's scopes) runs below it, within its
// limits.
//
// Observe compares what systemd holds (the slice's properties) and what
// the kernel holds (the interface files of the slice's cgroup, for the
// controllers systemd can use here): a memory.max written by hand is drift
// even while systemd's MemoryMax is unchanged. Apply sets the properties
// that differ (setting one again makes systemd write its cgroup files
// again). A transient slice survives daemon-reload (it is kept in
// /run/systemd/transient), not a reboot: then Observe reports it missing
// and Apply makes it again.
type Systemd struct {
	host     sdHost
	en       Enforcement
	timeout  time.Duration
	pageSize int64

	sd sdbus.Conn
}

var _ Driver = (*Systemd)(nil)

// NewSystemd connects to systemd over /run/systemd/private and finds how
// it holds the cgroup tree (unified, hybrid or legacy) and which
// controllers it can use there.
func NewSystemd(ctx context.Context, opts SystemdOptions) (*Systemd, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.Mountinfo == "" {
		opts.Mountinfo = "/proc/self/mountinfo"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	h, err := detectSystemdHost(opts.Root, opts.Mountinfo)
	if err != nil {
		return nil, err
	}
	s := &Systemd{host: h, en: h.enforcement(), timeout: opts.Timeout, pageSize: int64(os.Getpagesize())}
	if _, err := s.dbusConn(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the connection to systemd; the slices stay.
func (s *Systemd) Close() error {
	s.sd.Close()
	return nil
}

// Version is systemd's version, as it says ("252.39-1~deb12u2").
func (s *Systemd) Version() string { return s.sd.Version() }

// Enforcement says which limits the kernel enforces through systemd here:
// those whose controller systemd can use (see sdHost.enforcement).
func (s *Systemd) Enforcement() Enforcement {
	e := s.en
	e.Enforced, e.NotEnforced = slices.Clone(e.Enforced), maps.Clone(e.NotEnforced)
	return e
}

// SystemdSlice is the name of tenant's slice: wcp360-tenant-<t>.slice,
// with each '-' of the tenant's name escaped as systemd-escape does
// (\x2d), since a dash in a slice's name means nesting. phpfpm's systemd
// runner names the same slice.
func SystemdSlice(tenant string) string {
	return "wcp360-tenant-" + strings.ReplaceAll(tenant, "-", `\x2d`) + ".slice"
}

// SystemdSliceCgroup is the cgroup systemd gives tenant's slice, relative
// to its root.
func SystemdSliceCgroup(tenant string) string {
	return "/wcp360.slice/wcp360-tenant.slice/" + SystemdSlice(tenant)
}

// dbusConn returns the connection to systemd (sdbus.Conn).
func (s *Systemd) dbusConn(ctx context.Context) (*sddbus.Conn, error) { return s.sd.Get(ctx) }

// callCtx bounds a call of Apply, Observe, ... that has no context.
func (s *Systemd) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// job runs a job-returning call and waits for the job's result.
func (s *Systemd) job(ctx context.Context, what string, call func(c *sddbus.Conn, ch chan<- string) (int, error)) error {
	return s.sd.Job(ctx, what, call)
}

// sliceState is what systemd says of a tenant's slice.
type sliceState struct {
	name string
	// active: ActiveState active (or reloading); transitioning: activating
	// or deactivating.
	active, transitioning bool
	activeState           string
	// pristine: systemd has nothing of the slice but its name (no unit
	// file, drop-in or transient file), so StartTransientUnit may make it
	// transient, even while it runs (made implicitly by a unit with
	// Slice=).
	pristine bool
	// cgroup is its ControlGroup, relative to systemd's root ("" while it
	// is not active).
	cgroup string
	// props are its Slice interface properties (MemoryMax, ...).
	props map[string]any
}

// slice reads the state and properties of tenant's slice. Asking loads
// it, as any look-up does: a slice needs no unit file.
func (s *Systemd) slice(ctx context.Context, tenant string) (sliceState, error) {
	if !nameRE.MatchString(tenant) {
		return sliceState{}, fmt.Errorf("%w: tenant %q", ErrInvalidName, tenant)
	}
	name := SystemdSlice(tenant)
	c, err := s.dbusConn(ctx)
	if err != nil {
		return sliceState{}, err
	}
	u, err := c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return sliceState{}, fmt.Errorf("%w: properties of %s: %w", ErrSystemd, name, err)
	}
	props, err := c.GetUnitTypePropertiesContext(ctx, name, "Slice")
	if err != nil {
		return sliceState{}, fmt.Errorf("%w: slice properties of %s: %w", ErrSystemd, name, err)
	}
	st := sliceState{name: name, props: props}
	st.activeState, _ = u["ActiveState"].(string)
	st.active = st.activeState == "active" || st.activeState == "reloading"
	st.transitioning = st.activeState == "activating" || st.activeState == "deactivating"
	load, _ := u["LoadState"].(string)
	transient, _ := u["Transient"].(bool)
	fragment, _ := u["FragmentPath"].(string)
	source, _ := u["SourcePath"].(string)
	dropIns, _ := u["DropInPaths"].([]string)
	st.pristine = (load == "loaded" || load == "not-found") && !transient && fragment == "" && source == "" && len(dropIns) == 0
	if st.active {
		st.cgroup, _ = props["ControlGroup"].(string)
	}
	return st, nil
}

// Apply makes tenant's slice (a transient unit) with the properties l
// wants, or sets those that differ on the slice there is; it returns what
// it changed, nothing when the slice already was as l says.
func (s *Systemd) Apply(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return nil, err
	}
	diffs, fixes, err := s.observe(st, l)
	if err != nil || len(diffs) == 0 {
		return nil, err
	}
	c, err := s.dbusConn(ctx)
	if err != nil {
		return nil, err
	}
	if !st.transitioning && st.pristine {
		props := append([]sddbus.Property{sddbus.PropDescription("WCP360 tenant " + tenant)}, sliceProperties(l)...)
		err := s.job(ctx, "start "+st.name, func(c *sddbus.Conn, ch chan<- string) (int, error) {
			return c.StartTransientUnitContext(ctx, st.name, "replace", props, ch)
		})
		if err == nil {
			return diffs, s.sync(ctx)
		}
		if !isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
			return nil, err
		}
		// Loaded in between (a unit with Slice= started): set its properties.
		fixes = sliceProperties(l)
	}
	if len(fixes) > 0 {
		if err := c.SetUnitPropertiesContext(ctx, st.name, true, fixes...); err != nil {
			return nil, fmt.Errorf("%w: set properties of %s: %w", ErrSystemd, st.name, err)
		}
	}
	if !st.active {
		if err := s.job(ctx, "start "+st.name, func(c *sddbus.Conn, ch chan<- string) (int, error) {
			return c.StartUnitContext(ctx, st.name, "replace", ch)
		}); err != nil {
			return nil, err
		}
	}
	return diffs, s.sync(ctx)
}

// sync returns once systemd has written the cgroup files of the
// properties just set: it writes them from its cgroup realize queue, which
// its main loop runs before it handles the next message of any client, so
// one more round trip is enough.
func (s *Systemd) sync(ctx context.Context) error {
	c, err := s.dbusConn(ctx)
	if err != nil {
		return err
	}
	if _, err := c.SystemStateContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrSystemd, err)
	}
	return nil
}

// Observe returns how tenant's slice differs from l, changing nothing: a
// slice that is not active ("slice": want active), a property of the
// slice (MemoryMax, TasksMax, IOReadBandwidthMax /dev/block/8:0, ...) and,
// for the controllers systemd can use here, an interface file of its
// cgroup (memory.max, cpu.max, ...).
func (s *Systemd) Observe(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return nil, err
	}
	diffs, _, err := s.observe(st, l)
	return diffs, err
}

// observe compares st with l; the properties returned set what differs
// again.
func (s *Systemd) observe(st sliceState, l Limits) ([]host.Difference, []sddbus.Property, error) {
	var diffs []host.Difference
	if !st.active {
		diffs = append(diffs, host.Difference{Field: "slice " + st.name, Want: "active", Have: st.activeState})
	}
	pd, fixes := compareSliceProperties(st.props, l)
	diffs = append(diffs, pd...)
	if !st.active || st.cgroup == "" {
		return diffs, fixes, nil
	}
	fd, props, err := s.host.observeFiles(st.cgroup, l, s.pageSize)
	if err != nil {
		return nil, nil, err
	}
	diffs = append(diffs, fd...)
	// A file that differs while its property does not: setting the
	// property again makes systemd write the file again.
	for _, name := range props {
		if !hasProperty(fixes, name) {
			fixes = append(fixes, propertiesNamed(sliceProperties(l), name)...)
		}
	}
	return diffs, fixes, nil
}

// Remove stops tenant's slice, which stops every unit in it (their
// processes get their units' KillSignal, then SIGKILL), and waits for the
// stop job; a transient slice is then unloaded. What systemd left in the
// slice's cgroup (processes put there by hand) is killed. It reports
// whether the slice was active.
func (s *Systemd) Remove(ctx context.Context, tenant string) (bool, error) {
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return false, err
	}
	if !st.active && !st.transitioning {
		return false, nil
	}
	if err := s.job(ctx, "stop "+st.name, func(c *sddbus.Conn, ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, st.name, "replace", ch)
	}); err != nil {
		return true, err
	}
	if s.host.unified != "" && st.cgroup != "" {
		dir := filepath.Join(s.host.unified, st.cgroup)
		if _, err := os.Stat(dir); err == nil {
			if err := removeTree(ctx, dir); err != nil {
				return true, err
			}
		}
	}
	return true, nil
}

// unifiedDir is the cgroup2 directory of tenant's active slice.
func (s *Systemd) unifiedDir(tenant string) (string, error) {
	if s.host.unified == "" {
		return "", fmt.Errorf("%w: no cgroup2 (systemd runs in legacy mode)", ErrNoPSI)
	}
	ctx, cancel := s.callCtx()
	defer cancel()
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return "", err
	}
	if st.cgroup == "" {
		return "", fmt.Errorf("%w: %s is %s", ErrSliceInactive, st.name, st.activeState)
	}
	return filepath.Join(s.host.unified, st.cgroup), nil
}

// Usage reads what the tenant's slice uses now: from its cgroup2
// directory (memory.current, memory.peak, pids.current, cpu.stat,
// memory.events) and, on a hybrid or legacy host, from its cgroups in the
// v1 hierarchies for what cgroup2 does not count there.
func (s *Systemd) Usage(tenant string) (Usage, error) {
	ctx, cancel := s.callCtx()
	defer cancel()
	st, err := s.slice(ctx, tenant)
	if err != nil {
		return Usage{}, err
	}
	if st.cgroup == "" {
		return Usage{}, fmt.Errorf("%w: %s is %s", ErrSliceInactive, st.name, st.activeState)
	}
	return s.host.usage(st.cgroup)
}

// Pressure reads the PSI of tenant's slice (cgroup2's cpu.pressure,
// memory.pressure and io.pressure, which need no controller).
func (s *Systemd) Pressure(tenant string) (Pressure, error) {
	dir, err := s.unifiedDir(tenant)
	if err != nil {
		return Pressure{}, err
	}
	p, err := readPressure(dir, "cpu.pressure", "memory.pressure", "io.pressure")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
		return Pressure{}, fmt.Errorf("%w: %w", ErrNoPSI, err)
	}
	return p, err
}

// WatchPressure registers tr on the pressure file of r of tenant's slice;
// see watch. The channel is closed when the slice is stopped.
func (s *Systemd) WatchPressure(ctx context.Context, tenant string, r Resource, tr Trigger) (<-chan struct{}, error) {
	if err := r.valid(); err != nil {
		return nil, err
	}
	dir, err := s.unifiedDir(tenant)
	if err != nil {
		return nil, err
	}
	return watch(ctx, filepath.Join(dir, string(r)+".pressure"), tr)
}

// isDBusError reports whether err is the D-Bus error named name.
func isDBusError(err error, name string) bool {
	var p *dbus.Error
	if errors.As(err, &p) {
		return p.Name == name
	}
	var v dbus.Error
	return errors.As(err, &v) && v.Name == name
}
