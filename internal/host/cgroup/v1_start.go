package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrThreadMove is wrapped by the errors of V1.StartIn when it cannot move
// its thread into the tenant's cgroups, or back out of them.
var ErrThreadMove = errors.New("cgroup: cannot move the starting thread")

// StartIn calls start so that the process it starts is born in the
// tenant's cgroups, in every hierarchy, never moved there after it ran.
//
// cgroup v1 moves single threads (a TID written to a cgroup's tasks file),
// and a child is born in the cgroups of the thread that forks it. So a
// goroutine locks itself to its thread (runtime.LockOSThread), reads where
// the thread is (/proc/thread-self/cgroup), writes the thread's TID to the
// tenant's tasks file in each hierarchy, and calls start there: Go's
// os/exec forks on the calling thread (syscall.forkAndExecInChild1, clone
// or clone3 through rawVforkSyscall), with cgroupFD the tenant's cgroup2
// directory for clone3's CLONE_INTO_CGROUP (or -1 on a legacy host), which
// only replaces the cgroup2 membership the child inherits. Then the thread
// goes back where it was, and is unlocked.
//
// The Go runtime never makes a thread by cloning a locked one, which would
// leave a runtime thread in the tenant's cgroups for good: newm
// (runtime/proc.go) hands the clone to the template thread when
// gp.m.lockedExt != 0 ("We're on a locked M ... We don't want to clone
// that into another thread. Instead, ask a known-good thread to create
// the thread for us."), and LockOSThread starts the template thread
// first (startTemplateThread). No other goroutine runs on a locked thread.
//
// The thread is never the main thread, the thread group leader: it owns
// the process's memory (mm->owner), so while it were in the tenant's
// memory cgroup every page wcpd faults in would be charged to the tenant,
// for as long as the page lives; and the memory cgroup's OOM killer, which
// picks among the leaders of the tasks in the cgroup, could pick wcpd.
// A thread that is not the leader is charged nothing of the process's
// memory, and is never picked: memory cgroup v1 takes it all the same
// (TestV1ThreadMove).
//
// While it is there the thread counts against the tenant: one task of
// pids.max (a tenant at its limit cannot start one more process), CPU
// time under its quota (a throttled tenant delays the start by up to a
// period, 100 ms), the kernel memory of the fork under memoryMax.
//
// When the thread cannot be moved back it stays locked, and its goroutine
// (one of StartIn's own) ends: a goroutine that ends locked ends its
// thread. The error is returned with start's when start failed, and
// logged when the process started (it was born in the right place).
func (v *V1) StartIn(tenant string, start func(cgroupFD int) error) error {
	dirs, err := v.dirs(tenant)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if _, err := os.Stat(d.path); err != nil {
			return fmt.Errorf("cgroup: tenant %s's cgroup (Apply makes it): %w", tenant, err)
		}
	}
	res := make(chan v1StartResult, 1)
	go v.startOffLeader(tenant, dirs, start, res)
	r := <-res
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

type v1StartResult struct {
	err      error
	panicked any
	// restored: the thread is back where it was.
	restored bool
}

// startOffLeader runs startOnThread on a locked thread that is not the
// main one: when this goroutine locked the main thread, which then runs
// no other goroutine, it runs it on another goroutine, which cannot get
// the main thread.
func (v *V1) startOffLeader(tenant string, dirs []v1Dir, start func(int) error, res chan<- v1StartResult) {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		inner := make(chan v1StartResult, 1)
		go v.startOffLeader(tenant, dirs, start, inner)
		res <- <-inner
		runtime.UnlockOSThread()
		return
	}
	sent := false
	defer func() {
		if !sent {
			// start called runtime.Goexit (t.Fatal, say): the thread
			// ends with this goroutine, wherever it is.
			res <- v1StartResult{err: fmt.Errorf("cgroup: start of tenant %s ended its goroutine (runtime.Goexit)", tenant)}
		}
	}()
	r := v.startOnThread(tenant, dirs, start)
	if r.restored {
		runtime.UnlockOSThread()
	}
	// Else this goroutine ends locked, and the runtime ends the thread.
	res <- r
	sent = true
}

// v1Move is a move of the thread into a tenant's cgroup and back.
type v1Move struct {
	h          *v1Hierarchy
	into, back string // the tasks files
	path       string // the thread's cgroup in h (/proc/thread-self/cgroup)
}

// startOnThread moves the locked thread into the tenant's v1 cgroups,
// calls start, and moves it back.
func (v *V1) startOnThread(tenant string, dirs []v1Dir, start func(int) error) v1StartResult {
	moves, err := v.threadMoves(dirs)
	if err != nil {
		return v1StartResult{err: err, restored: true}
	}
	tid := strconv.Itoa(unix.Gettid())
	restore := func(moves []v1Move) error {
		var errs []error
		for _, m := range moves {
			if err := writeFile(m.back, tid); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		// Check: the thread is where it was in every hierarchy.
		now, err := threadCgroups()
		if err != nil {
			return err
		}
		for _, m := range moves {
			if p := now[m.h.controllers[0]]; p != m.path {
				return fmt.Errorf("the thread is in %s of %s, want %s", p, m.h, m.path)
			}
		}
		return nil
	}
	stuck := func(err error) error {
		return fmt.Errorf("%w back out of tenant %s's cgroups: %w; the thread stays there, and ends", ErrThreadMove, tenant, err)
	}
	for i, m := range moves {
		if err := writeFile(m.into, tid); err != nil {
			err = fmt.Errorf("%w into %s: %w", ErrThreadMove, filepath.Dir(m.into), err)
			if rerr := restore(moves[:i]); rerr != nil {
				return v1StartResult{err: errors.Join(err, stuck(rerr))}
			}
			return v1StartResult{err: err, restored: true}
		}
	}
	fd := -1
	for _, d := range dirs {
		if d.h != nil {
			continue
		}
		if fd, err = unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			err = fmt.Errorf("cgroup: open %s: %w", d.path, err)
			if rerr := restore(moves); rerr != nil {
				return v1StartResult{err: errors.Join(err, stuck(rerr))}
			}
			return v1StartResult{err: err, restored: true}
		}
	}
	panicked, err := callStart(start, fd)
	if fd >= 0 {
		_ = unix.Close(fd) // a read-only directory descriptor
	}
	if rerr := restore(moves); rerr != nil {
		rerr = stuck(rerr)
		if err == nil && panicked == nil {
			v.log.Error("the process started in its tenant's cgroups, but the thread that started it could not leave them: it ends",
				"tenant", tenant, "err", rerr)
			return v1StartResult{}
		}
		return v1StartResult{err: errors.Join(err, rerr), panicked: panicked}
	}
	return v1StartResult{err: err, panicked: panicked, restored: true}
}

// threadMoves plans the moves of this thread into the tenant's v1 cgroups
// and back, checking that it can find its way back before it goes.
func (v *V1) threadMoves(dirs []v1Dir) ([]v1Move, error) {
	here, err := threadCgroups()
	if err != nil {
		return nil, err
	}
	var moves []v1Move
	for _, d := range dirs {
		if d.h == nil {
			continue
		}
		p, ok := here[d.h.controllers[0]]
		if !ok {
			return nil, fmt.Errorf("%w: /proc/thread-self/cgroup has no %s hierarchy", ErrThreadMove, d.h)
		}
		// The mount shows its hierarchy from the root (a mount of a
		// subtree, as in some containers, would not find the thread's
		// cgroup, and the thread does not go).
		back := filepath.Join(d.h.mount, p, "tasks")
		if _, err := os.Stat(back); err != nil {
			return nil, fmt.Errorf("%w: this thread's cgroup %s is not under %s: %w", ErrThreadMove, p, d.h.mount, err)
		}
		moves = append(moves, v1Move{h: d.h, into: filepath.Join(d.path, "tasks"), back: back, path: p})
	}
	return moves, nil
}

// threadCgroups maps each controller to this thread's cgroup in its
// hierarchy ("" to its cgroup2 cgroup).
func threadCgroups() (map[string]string, error) {
	const file = "/proc/thread-self/cgroup"
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	cgs, err := parseProcCgroup(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return v1Paths(cgs), nil
}

// callStart calls start, returning what it panicked with, if it did.
func callStart(start func(int) error, fd int) (panicked any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return nil, start(fd)
}
