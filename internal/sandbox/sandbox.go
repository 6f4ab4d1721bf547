// Package sandbox runs a process as root in new mount, network, PID, UTS,
// IPC and cgroup namespaces where the host's configuration and state are
// private, so that tests (and the demo) can create users, write /etc, start
// nginx or PostgreSQL, make cgroups and leave the host exactly as it was.
//
// Inside a sandbox:
//
//   - /etc, /var and /home are overlays over the host's directories: reads see
//     the host, writes (useradd, rename over /etc/passwd, ...) go to a tmpfs
//     and vanish with the sandbox;
//   - /run, /tmp, /dev/shm, /srv/www, /var/lib/wcp360 and /var/log are fresh
//     tmpfs (/var/log keeps the host's directory tree, without the files;
//     /run starts empty, as before boot-time tmpfiles ran);
//   - /proc is the new PID namespace's, and the first process is PID 1: when
//     it exits the kernel kills every process left inside;
//   - the only network interface is lo, up, and the hostname is wcp-sandbox;
//     /etc/hosts maps localhost and wcp-sandbox, plus Options.Hosts;
//   - Options.Binds are bind mounts from the host, the way to share files
//     (a unix socket, a directory) with the outside;
//   - the sandbox has cgroups of its own, see below.
//
// Everything else — /usr, /root, /opt, /srv outside /srv/www, the working
// directory — is the host's own filesystem, shared and writable: the sandbox
// is not a security boundary, it keeps well-behaved code from changing the
// host. The only lasting change it makes on the host is creating the
// /srv/www mount point when it is missing (and, on cgroup2, enabling
// controllers, see below).
//
// # Cgroups
//
// Start makes the sandbox a cgroup of its own, wcp-sandbox-<pid>-<start>-<random>
// (pid and start time of the starting process), in every mounted cgroup
// hierarchy:
//
//   - in each cgroup v1 hierarchy (/sys/fs/cgroup/memory, cpu, ...,
//     name=systemd), below the starting process's cgroup, so that the
//     limits on that one bind the sandbox too;
//   - in cgroup2 (/sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup
//     on a pure v2 one), below the root, or the top of the tree this
//     process sees when that has no processes, because a cgroup with
//     processes (the starting process's) cannot give its children
//     controllers; below the starting process's cgroup when neither can be
//     written. The cpu, io, memory and pids controllers the parent offers
//     but has off are enabled on it (on a systemd host they are already).
//     The sandbox's processes run in its child init: inside, the root has
//     no processes of its own, so it can give controllers to the cgroups
//     made there (WCP360's cgroup driver enables them on the root).
//
// The child joins these first thing, before it runs anything of the
// caller, enters a new cgroup namespace whose root they are and runs
// itself again in it (a namespace is a thread's: only a program started
// anew has it in every thread). Then it mounts the cgroup file systems at
// /sys/fs/cgroup the way the host has them — a tmpfs with a mount point
// (and symbolic link) per hierarchy, or cgroup2 alone — also in a RootFS's
// read-only /sys. Inside, /proc/self/cgroup says / for every v1 hierarchy
// and /init for cgroup2, and /sys/fs/cgroup shows the sandbox's cgroups as
// roots: a cgroup made there, /sys/fs/cgroup/memory/wcp360/acme say, is
// <sandbox's cgroup>/wcp360/acme on the host, where the kernel enforces
// its limits and keeps its pressure (PSI), and sandboxes running at the
// same time do not see each other's. systemd-nspawn (and the systemd it
// boots) works inside.
//
// Once the sandbox has exited (or was killed), and before Done is closed
// and Wait returns, what is left in its cgroups is killed — cgroup.kill on
// cgroup2, else SIGKILL to every process in them, repeatedly, frozen ones
// thawed first — and they are removed, deepest first; processes that will
// not die make Wait return ErrCgroupsLeft. When
// the starting process itself is killed, nobody removes them: every Start
// first removes, the same way, the cgroups next to the ones it makes of
// sandboxes whose starting process is gone, and leaves those of live ones
// alone. Options.HostCgroups runs a sandbox in the starting process's
// cgroups and the host's cgroup namespace instead, as before.
//
// With Options.RootFS the sandbox runs another system instead: the root is
// an overlay over that directory (a debootstrap tree, say) whose writes go
// to a tmpfs, so the directory never changes and the host's filesystem is
// not visible at all, except through Options.Binds. /dev is a tmpfs with
// the host's null, zero, full, random, urandom and tty and a private devpts,
// /sys is read-only (but for /sys/fs/cgroup), and /proc, the tmpfs mounts,
// lo, the host name, /etc/hosts and the cgroups are as above. The program must exist in that tree (or be
// bound into it): a statically linked binary runs in any of them.
//
// The sandbox is started by re-executing the current binary
// (/proc/self/exe); the child recognises itself by an environment variable
// and sets the sandbox up before doing anything else. Test binaries do that
// in Main (see Run); commands call Init first thing in main, from main's
// goroutine:
//
//	func main() {
//		if code, exit := sandbox.Init(); exit {
//			os.Exit(code)
//		}
//		...
//	}
//
// It needs root (CAP_SYS_ADMIN) and a Linux kernel with overlayfs.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// Hostname is the sandbox's host name.
const Hostname = "wcp-sandbox"

// Exit statuses of a sandbox that did not get to run its program, after the
// conventions of shells and container runtimes.
const (
	// ExitSetupFailed: the sandbox could not be set up (the reason is on stderr).
	ExitSetupFailed = 125
	// ExitCannotRun: the program exists but could not be started.
	ExitCannotRun = 126
	// ExitNotFound: the program was not found.
	ExitNotFound = 127
)

const (
	// envSetup carries the child's configuration (JSON) from the parent to
	// the re-executed child; Init consumes it.
	envSetup = "WCP_SANDBOX_SETUP"
	// envInside is set for every process in a set-up sandbox. Its value is
	// the sandbox's mount namespace, so a copy of it outside proves nothing.
	envInside = "WCP_SANDBOX"
)

// ErrUnavailable means sandboxes cannot be made here: not root, or the kernel
// refused the namespaces or the mounts.
var ErrUnavailable = errors.New("sandbox unavailable (needs root and Linux namespaces)")

// Bind is a bind mount of a host path into the sandbox.
type Bind struct {
	// Source is the host path (file or directory); it must exist.
	Source string
	// Target is the absolute path inside the sandbox. When it is missing it is
	// created, if it lies in a private part of the sandbox (/etc, /var, /home,
	// /run, /tmp, /dev/shm, /srv/www; with Options.RootFS, anywhere);
	// elsewhere it must exist.
	Target string
	// ReadOnly makes the mount read-only inside the sandbox.
	ReadOnly bool
}

// Options configure a sandbox. The zero value is a plain sandbox.
type Options struct {
	// Binds are mounted after the sandbox's own mounts, in order.
	Binds []Bind
	// Hosts maps names to IP addresses, appended to /etc/hosts.
	Hosts map[string]string
	// Env is added to the environment of the sandboxed process (KEY=VALUE).
	Env []string
	// RootFS, when set, is the absolute path of a root filesystem to run in
	// instead of the host's (see the package documentation). Bind targets
	// are then paths in it, and may be created anywhere in it.
	RootFS string
	// HostCgroups runs the sandbox in the starting process's cgroups, with
	// the host's cgroup namespace and cgroup file systems, instead of
	// cgroups of its own: what it creates there is on the host, next to
	// every other sandbox's, and stays when it ends.
	HostCgroups bool
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// Validate reports the first invalid option.
func (o Options) Validate() error {
	for _, b := range o.Binds {
		if !filepath.IsAbs(b.Source) || !filepath.IsAbs(b.Target) {
			return fmt.Errorf("bind %s:%s: paths must be absolute", b.Source, b.Target)
		}
		t := filepath.Clean(b.Target)
		if t == "/" || t == "/proc" || strings.HasPrefix(t, "/proc/") {
			return fmt.Errorf("bind %s:%s: cannot bind over %s", b.Source, b.Target, t)
		}
	}
	for name, ip := range o.Hosts {
		if len(name) > 253 || !hostNameRE.MatchString(name) {
			return fmt.Errorf("host %q: not a host name", name)
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("host %s: %w", name, err)
		}
	}
	if o.RootFS != "" && (!filepath.IsAbs(o.RootFS) || strings.ContainsAny(o.RootFS, ",:\\")) {
		return fmt.Errorf("rootfs %q: want an absolute path without ',', ':' or '\\'", o.RootFS)
	}
	for _, kv := range o.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
		if k == envSetup || k == envInside {
			return fmt.Errorf("env %s: reserved for the sandbox", k)
		}
	}
	return nil
}

// Inside reports whether this process runs in a sandbox that is set up.
func Inside() bool {
	v := os.Getenv(envInside)
	if v == "" {
		return false
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	return err == nil && ns == v
}

// childConfig is what the parent hands the re-executed child.
type childConfig struct {
	Binds []Bind            `json:"binds,omitempty"`
	Hosts map[string]string `json:"hosts,omitempty"`
	// Command is the program to run as PID 1's only child; empty when the
	// re-executed binary itself is what runs in the sandbox.
	Command []string `json:"command,omitempty"`
	// ParentNS are the parent's namespaces: the child refuses to set up in
	// any of them (it would change the host).
	ParentNS map[string]string `json:"parentNS"`
	// RootFS is Options.RootFS.
	RootFS string `json:"rootfs,omitempty"`
	// Cgroups are the sandbox's own cgroups; nil with Options.HostCgroups
	// or when the host mounts none.
	Cgroups *cgroupSetup `json:"cgroups,omitempty"`
}

// namespaces this package creates, by their /proc/self/ns names.
var namespaceNames = []string{"mnt", "net", "pid", "uts", "ipc"}

const cloneFlags = syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWPID |
	syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC

// Stdio are the sandboxed process's standard streams; nil means /dev/null.
// Writers that are not *os.File are fed through pipes; when Stdout and
// Stderr are the same writer they share one pipe, so their order is kept.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Process is a running sandbox.
type Process struct {
	pid     int
	proc    *os.Process
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
	copies  sync.WaitGroup
	stop    func() // stops the context watcher
	// cgroups are the sandbox's on the host (nil without), and cgroupsErr
	// says why they could not all be removed.
	cgroups    *sandboxCgroups
	cgroupsErr error
}

// Start runs the program argv (looked up in PATH inside the sandbox) in a new
// sandbox. Its exit status is the one Wait returns. ctx ending kills the
// sandbox and everything in it.
func Start(ctx context.Context, opts Options, argv []string, stdio Stdio) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("sandbox: no program to run")
	}
	return start(ctx, opts, []string{os.Args[0]}, argv, stdio)
}

// StartSelf runs this binary again with args (os.Args[1:] of the child) in
// a new sandbox. The child must call Init (test binaries: Main) before
// anything else; it then continues inside the sandbox.
func StartSelf(ctx context.Context, opts Options, args []string, stdio Stdio) (*Process, error) {
	return start(ctx, opts, append([]string{os.Args[0]}, args...), nil, stdio)
}

// Exec is Start and Wait.
func Exec(ctx context.Context, opts Options, argv []string, stdio Stdio) (int, error) {
	p, err := Start(ctx, opts, argv, stdio)
	if err != nil {
		return 0, err
	}
	return p.Wait()
}

func start(ctx context.Context, opts Options, args, command []string, stdio Stdio) (*Process, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not running as root", ErrUnavailable)
	}
	if Inside() {
		return nil, fmt.Errorf("%w: already inside a sandbox", ErrUnavailable)
	}
	if opts.RootFS != "" {
		st, err := os.Stat(opts.RootFS)
		if err != nil {
			return nil, fmt.Errorf("sandbox: rootfs: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("sandbox: rootfs %s is not a directory", opts.RootFS)
		}
	}
	cfg := childConfig{Binds: opts.Binds, Hosts: opts.Hosts, Command: command, ParentNS: map[string]string{}, RootFS: opts.RootFS}
	for _, n := range namespaceNames {
		link, err := os.Readlink("/proc/self/ns/" + n)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		cfg.ParentNS[n] = link
	}
	p := &Process{done: make(chan struct{})}
	if !opts.HostCgroups {
		cgroups, err := newCgroups()
		if err != nil {
			return nil, fmt.Errorf("%w: the sandbox's cgroups (Options.HostCgroups does without): %w", ErrUnavailable, err)
		}
		p.cgroups = cgroups
	}
	started := false
	defer func() {
		if !started && p.cgroups != nil {
			_ = p.cgroups.remove()
		}
	}()
	if p.cgroups != nil {
		cfg.Cgroups = p.cgroups.setup
		link, err := os.Readlink("/proc/self/ns/cgroup")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		cfg.ParentNS["cgroup"] = link
	}
	enc, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	env := mergeEnv(os.Environ(), append(opts.Env, envSetup+"="+string(enc)))

	files, closeAfterStart, err := p.stdioFiles(stdio)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	startErr := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child ends, not the
		// process: keep this goroutine on its thread until the child is gone,
		// so no other goroutine can take the thread over and end it.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		proc, err := os.StartProcess("/proc/self/exe", args, &os.ProcAttr{ //nolint:gosec // re-executes this binary
			Env:   env,
			Files: files,
			Sys:   &syscall.SysProcAttr{Cloneflags: cloneFlags, Pdeathsig: syscall.SIGKILL},
		})
		if err != nil {
			startErr <- err
			return
		}
		p.proc, p.pid = proc, proc.Pid
		startErr <- nil
		p.state, p.waitErr = proc.Wait()
		if p.cgroups != nil {
			p.cgroupsErr = p.cgroups.remove()
		}
		close(p.done)
	}()
	err = <-startErr
	for _, f := range closeAfterStart {
		_ = f.Close()
	}
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) ||
			errors.Is(err, syscall.EUSERS) || errors.Is(err, syscall.ENOSYS) {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}
	started = true
	watch, stop := context.WithCancel(context.Background())
	p.stop = stop
	go func() {
		select {
		case <-ctx.Done():
			_ = p.proc.Kill()
		case <-p.done:
		case <-watch.Done():
		}
	}()
	return p, nil
}

// mergeEnv is base with the variables of add replacing (or appended to)
// base's, and without the inside marker. The exec'd program would see only
// the first of two values.
func mergeEnv(base, add []string) []string {
	override := map[string]bool{envInside: true}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		override[k] = true
	}
	env := make([]string, 0, len(base)+len(add))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !override[k] {
			env = append(env, kv)
		}
	}
	return append(env, add...)
}

// stdioFiles turns stdio into the child's three files, starting the copy
// goroutines for non-file streams; it returns the child's ends of the pipes,
// which the parent closes once the child has started.
func (p *Process) stdioFiles(stdio Stdio) (files, childEnds []*os.File, err error) {
	defer func() {
		if err != nil {
			for _, f := range childEnds {
				_ = f.Close()
			}
		}
	}()
	devNull := func(flag int) (*os.File, error) {
		f, err := os.OpenFile(os.DevNull, flag, 0)
		if err == nil {
			childEnds = append(childEnds, f)
		}
		return f, err
	}
	var in *os.File
	switch r := stdio.Stdin.(type) {
	case nil:
		if in, err = devNull(os.O_RDONLY); err != nil {
			return nil, nil, err
		}
	case *os.File:
		in = r
	default:
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		childEnds = append(childEnds, pr)
		in = pr
		go func() {
			// Like os/exec, this goroutine may stay blocked on r after the
			// child exits; it ends when r does.
			_, _ = io.Copy(pw, r)
			_ = pw.Close()
		}()
	}
	output := func(w io.Writer) (*os.File, error) {
		switch w := w.(type) {
		case nil:
			return devNull(os.O_WRONLY)
		case *os.File:
			return w, nil
		default:
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, err
			}
			childEnds = append(childEnds, pw)
			p.copies.Add(1)
			go func() {
				defer p.copies.Done()
				_, _ = io.Copy(w, pr)
				_ = pr.Close()
			}()
			return pw, nil
		}
	}
	out, err := output(stdio.Stdout)
	if err != nil {
		return nil, nil, err
	}
	errf := out
	if stdio.Stderr != stdio.Stdout {
		if errf, err = output(stdio.Stderr); err != nil {
			return nil, nil, err
		}
	}
	return []*os.File{in, out, errf}, childEnds, nil
}

// Pid is the sandbox's first process, as the host sees it.
func (p *Process) Pid() int { return p.pid }

// Signal sends sig to the sandbox's first process. A sandbox started with
// Start passes SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 on to its program once
// that runs; sent while the sandbox is being set up, they may be lost or
// end it (with status 2).
func (p *Process) Signal(sig os.Signal) error { return p.proc.Signal(sig) }

// Kill kills the sandbox and everything in it.
func (p *Process) Kill() error { return p.proc.Kill() }

// Done is closed when the sandbox has exited and its cgroups are removed.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the sandbox has exited, its cgroups are removed and its
// output is copied, and returns its exit status: the program's, 128+n when
// a signal n killed it, or one of the Exit* constants. When some of its
// cgroups could not be removed it returns the exit status and an error
// wrapping ErrCgroupsLeft.
func (p *Process) Wait() (int, error) {
	<-p.done
	p.copies.Wait()
	p.stop()
	if p.waitErr != nil {
		return -1, fmt.Errorf("sandbox: wait: %w", p.waitErr)
	}
	return exitStatus(p.state.Sys().(syscall.WaitStatus)), p.cgroupsErr
}

func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
