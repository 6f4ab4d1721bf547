package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// watch writes the trigger to a pressure file and returns a channel that
// gets a value each time it fires (firings coalesce while the receiver is
// busy; the kernel fires at most once per window). The channel is closed
// when ctx is done or the file goes away (its cgroup was removed).
//
// Every watch of the process shares one epoll instance and one goroutine
// (triggers): a thousand tenants with three triggers each cost one
// sleeping thread, not three thousand pollers.
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
	w := &watcher{f: f, c: make(chan struct{}, 1)}
	if err := triggers.add(w); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cgroup: PSI trigger on %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		triggers.remove(w)
	}()
	return w.c, nil
}

// watcher is one registered trigger.
type watcher struct {
	f *os.File
	c chan struct{}
}

// poller is the epoll instance every watch shares.
type poller struct {
	once sync.Once
	err  error
	epfd int
	mu   sync.Mutex
	byFD map[int32]*watcher
}

var triggers poller //nolint:gochecknoglobals // one epoll instance per process

func (p *poller) start() error {
	p.once.Do(func() {
		p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if p.err != nil {
			return
		}
		p.byFD = map[int32]*watcher{}
		go p.loop()
	})
	return p.err
}

func (p *poller) add(w *watcher) error {
	if err := p.start(); err != nil {
		return err
	}
	fd := int32(w.f.Fd()) //nolint:gosec // a descriptor fits in int32
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byFD[fd] = w
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &unix.EpollEvent{Events: unix.EPOLLPRI, Fd: fd}); err != nil {
		delete(p.byFD, fd)
		return err
	}
	return nil
}

// remove ends w: once, whether its context ended or its file went away.
func (p *poller) remove(w *watcher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fd := int32(w.f.Fd()) //nolint:gosec // as in add
	if p.byFD[fd] != w {
		return // already removed (a closed file's Fd is -1)
	}
	delete(p.byFD, fd)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil) // closing the file removes it anyway
	_ = w.f.Close()                                             // nothing written is lost
	close(w.c)
}

func (p *poller) loop() {
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Unreachable short of a kernel bug: the watches end.
			p.mu.Lock()
			ws := make([]*watcher, 0, len(p.byFD))
			for _, w := range p.byFD {
				ws = append(ws, w)
			}
			p.mu.Unlock()
			for _, w := range ws {
				p.remove(w)
			}
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			w := p.byFD[ev.Fd]
			p.mu.Unlock()
			switch {
			case w == nil:
			case ev.Events&unix.EPOLLERR != 0:
				// The cgroup was removed.
				p.remove(w)
			case ev.Events&unix.EPOLLPRI != 0:
				select {
				case w.c <- struct{}{}:
				default:
				}
			}
		}
	}
}
