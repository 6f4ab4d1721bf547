package isolation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/store"
)

// ReasonPressureStall is the reason of the event a stalling tenant gets.
const ReasonPressureStall = "PressureStall"

// DefaultTrigger fires when some of a tenant's tasks stalled for 10% of a
// second: well past the noise of a busy site, well before it is unusable.
var DefaultTrigger = cgroup.Trigger{Stall: 100 * time.Millisecond, Window: time.Second} //nolint:gochecknoglobals // read only

// Pressure watches tenants' pressure files with PSI triggers (one shared
// epoll in package cgroup: a watched tenant costs a parked goroutine) and
// records a Warning event on the tenant when it stalls, at most once per
// resource per MinInterval.
type Pressure struct {
	Driver cgroup.Driver
	// Trigger is what counts as a stall; DefaultTrigger when zero.
	Trigger cgroup.Trigger
	// MinInterval spaces the events of one tenant and resource; a minute
	// when zero.
	MinInterval time.Duration
	// Record records an event (store.RecordEvent).
	Record func(ctx context.Context, e store.Event) error
	Clock  func() time.Time
	Logger *slog.Logger

	mu           sync.Mutex
	unprivileged bool // the kernel took only 2 s windows
	watching     map[string]context.CancelFunc
	stalls       map[cgroup.Resource]uint64
	hostStalls   map[cgroup.Resource]uint64
}

var resources = []cgroup.Resource{cgroup.CPU, cgroup.Memory, cgroup.IO} //nolint:gochecknoglobals // read only

// Watch starts watching row's tenant unless it is watched already; a
// tenant whose cgroup cannot be watched (no PSI) is left alone.
func (p *Pressure) Watch(_ context.Context, row store.Resource) {
	if !p.Driver.Enforcement().PSI {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.watching[row.Name]; ok {
		return
	}
	tr := p.Trigger
	if tr == (cgroup.Trigger{}) {
		tr = DefaultTrigger
	}
	// The watch outlives the reconcile that started it.
	ctx, cancel := context.WithCancel(context.Background())
	if p.unprivileged {
		tr = unprivileged(tr)
	}
	chans := make([]<-chan struct{}, len(resources))
	for i, r := range resources {
		c, err := p.Driver.WatchPressure(ctx, row.Name, r, tr)
		if err != nil && errors.Is(err, unix.EINVAL) && !p.unprivileged && tr != unprivileged(tr) {
			// Without CAP_SYS_RESOURCE (a container) the kernel takes
			// only windows of whole 2 s: keep the share of time.
			p.unprivileged = true
			tr = unprivileged(tr)
			p.logger().Info("PSI triggers need windows of whole 2 s here (no CAP_SYS_RESOURCE)", "trigger", tr.String())
			c, err = p.Driver.WatchPressure(ctx, row.Name, r, tr)
		}
		if err != nil {
			cancel()
			p.logger().Warn("cannot watch the tenant's pressure", "tenant", row.Name, "resource", r, "err", err)
			return
		}
		chans[i] = c
	}
	if p.watching == nil {
		p.watching = map[string]context.CancelFunc{}
	}
	p.watching[row.Name] = cancel
	go p.loop(ctx, row, tr, chans)
}

// unprivileged is tr with its window rounded up to whole 2 s, the only
// windows the kernel takes from a process without CAP_SYS_RESOURCE
// (kernel/sched/psi.c), and the stall scaled to keep its share.
func unprivileged(tr cgroup.Trigger) cgroup.Trigger {
	const unit = 2 * time.Second
	w := (tr.Window + unit - 1) / unit * unit
	if w > cgroup.MaxTriggerWindow {
		w = cgroup.MaxTriggerWindow
	}
	stall := time.Duration(float64(tr.Stall) * float64(w) / float64(tr.Window)).Truncate(time.Microsecond)
	return cgroup.Trigger{Full: tr.Full, Stall: min(stall, w), Window: w}
}

// Forget stops watching tenant.
func (p *Pressure) Forget(tenant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cancel, ok := p.watching[tenant]; ok {
		cancel()
		delete(p.watching, tenant)
	}
}

// Close stops every watch.
func (p *Pressure) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for t, cancel := range p.watching {
		cancel()
		delete(p.watching, t)
	}
}

// WatchHost watches the host's /proc/pressure files (proc is "/proc" but
// for tests) with the same trigger until ctx ends: a host that stalls is
// not any one tenant's, so it gets a Warning in the log (at most once per
// resource per MinInterval) and a count in HostStalls, not an event.
func (p *Pressure) WatchHost(ctx context.Context, proc string) error {
	tr := p.Trigger
	if tr == (cgroup.Trigger{}) {
		tr = DefaultTrigger
	}
	chans := make([]<-chan struct{}, len(resources))
	for i, r := range resources {
		c, err := cgroup.WatchHostPressure(ctx, proc, r, tr)
		if err != nil && errors.Is(err, unix.EINVAL) && tr != unprivileged(tr) {
			tr = unprivileged(tr)
			c, err = cgroup.WatchHostPressure(ctx, proc, r, tr)
		}
		if err != nil {
			return err
		}
		chans[i] = c
	}
	go p.each(ctx, chans, func(r cgroup.Resource) {
		p.count(&p.hostStalls, r)
		args := []any{"resource", r, "trigger", tr.String()}
		if hp, err := cgroup.HostPressure(proc); err == nil {
			psi := pick(hp, r)
			args = append(args, "someAvg10", psi.Some.Avg10)
			if psi.Full != nil {
				args = append(args, "fullAvg10", psi.Full.Avg10)
			}
		}
		p.logger().Warn("the host stalls", args...)
	})
	return nil
}

// HostStalls counts the host's stalls logged so far (for /metrics).
func (p *Pressure) HostStalls() map[cgroup.Resource]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.hostStalls)
}

func (p *Pressure) minInterval() time.Duration {
	if p.MinInterval == 0 {
		return time.Minute
	}
	return p.MinInterval
}

// Stalls counts the events of each resource so far (for /metrics).
func (p *Pressure) Stalls() map[cgroup.Resource]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[cgroup.Resource]uint64, len(p.stalls))
	for r, n := range p.stalls {
		out[r] = n
	}
	return out
}

func (p *Pressure) loop(ctx context.Context, row store.Resource, tr cgroup.Trigger, chans []<-chan struct{}) {
	closed := p.each(ctx, chans, func(r cgroup.Resource) {
		p.count(&p.stalls, r)
		p.record(ctx, row, r, tr)
	})
	if closed {
		// The cgroup went away: the next apply watches it again.
		p.mu.Lock()
		if cancel, found := p.watching[row.Name]; found {
			cancel()
			delete(p.watching, row.Name)
		}
		p.mu.Unlock()
	}
}

// each calls fire for the firings of chans (one channel per resource, in
// the order of resources), at most once per resource per MinInterval. It
// returns when ctx ends, or true when a channel closed.
func (p *Pressure) each(ctx context.Context, chans []<-chan struct{}, fire func(cgroup.Resource)) (closed bool) {
	last := map[cgroup.Resource]time.Time{}
	for {
		var r cgroup.Resource
		var ok bool
		select {
		case <-ctx.Done():
			return false
		case _, ok = <-chans[0]:
			r = resources[0]
		case _, ok = <-chans[1]:
			r = resources[1]
		case _, ok = <-chans[2]:
			r = resources[2]
		}
		if !ok {
			return true
		}
		now := p.Clock()
		if t, seen := last[r]; seen && now.Sub(t) < p.minInterval() {
			continue
		}
		last[r] = now
		fire(r)
	}
}

// count adds one to (*m)[r] under the lock.
func (p *Pressure) count(m *map[cgroup.Resource]uint64, r cgroup.Resource) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *m == nil {
		*m = map[cgroup.Resource]uint64{}
	}
	(*m)[r]++
}

// pick is the PSI of r.
func pick(p cgroup.Pressure, r cgroup.Resource) cgroup.PSI {
	switch r {
	case cgroup.Memory:
		return p.Memory
	case cgroup.IO:
		return p.IO
	case cgroup.CPU:
	}
	return p.CPU
}

func (p *Pressure) record(ctx context.Context, row store.Resource, r cgroup.Resource, tr cgroup.Trigger) {
	kind := "some"
	if tr.Full {
		kind = "all"
	}
	msg := fmt.Sprintf("%s pressure: %s of the tenant's tasks stalled for %s or more within %s", r, kind, tr.Stall, tr.Window)
	if ps, err := p.Driver.Pressure(row.Name); err == nil {
		psi := pick(ps, r)
		msg += fmt.Sprintf(" (some avg10 %.2f%%", psi.Some.Avg10)
		if psi.Full != nil {
			msg += fmt.Sprintf(", full avg10 %.2f%%", psi.Full.Avg10)
		}
		msg += ")"
	}
	if p.Record == nil {
		return
	}
	err := p.Record(ctx, store.Event{Kind: v1alpha1.KindTenant, Name: row.Name, Tenant: row.Name, UID: row.UID,
		Type: "Warning", Reason: ReasonPressureStall, Message: msg})
	if err != nil {
		p.logger().Warn("cannot record a pressure event", "tenant", row.Name, "err", err)
	}
}

func (p *Pressure) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}
