// Package cmdrun is the one place that runs programs. Every command gets
// LC_ALL=C, a context deadline, and on failure an error that names the
// command and carries its output.
package cmdrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec" //nolint:forbidigo // this package owns os/exec
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds a command whose context has no deadline.
const DefaultTimeout = 2 * time.Minute

// Cmd describes one program run.
type Cmd struct {
	Path string
	Args []string
	// Env is added to a minimal environment (PATH, LC_ALL=C).
	Env []string
	Dir string
	// Stdin is fed to the program when non-nil.
	Stdin []byte
	// UID/GID run the program as that user when Credential is set.
	Credential *syscall.Credential
	Timeout    time.Duration
	// Setsid starts the program in a new session (and process group) of its
	// own: it is not in the caller's process group, so it does not get the
	// caller's terminal signals, and a daemon started with Start lives on
	// when the caller exits.
	Setsid bool
	// UseCgroupFD starts the program inside the cgroup v2 directory open as
	// CgroupFD (clone3 with CLONE_INTO_CGROUP): it is born there, so none of
	// its children ever runs outside it.
	UseCgroupFD bool
	CgroupFD    int
	// ExtraFiles are inherited by Start's program as descriptors 3, 4, ...
	ExtraFiles []*os.File
}

// sysProcAttr is the SysProcAttr for c, nil when it needs none.
func (c Cmd) sysProcAttr() *syscall.SysProcAttr {
	if c.Credential == nil && !c.Setsid && !c.UseCgroupFD {
		return nil
	}
	return &syscall.SysProcAttr{Credential: c.Credential, Setsid: c.Setsid, UseCgroupFD: c.UseCgroupFD, CgroupFD: c.CgroupFD}
}

// Error is a failed run: the command line, its exit status and output.
type Error struct {
	Command string
	Err     error
	Output  string
}

func (e *Error) Error() string {
	out := strings.TrimSpace(e.Output)
	if len(out) > 4000 {
		out = out[len(out)-4000:]
	}
	if out == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, out)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs c and returns its combined output.
func Run(ctx context.Context, c Cmd) ([]byte, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Path, c.Args...) //nolint:gosec // callers pass fixed programs
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, c.Env...)
	cmd.Dir = c.Dir
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	cmd.SysProcAttr = c.sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out, &Error{Command: c.String(), Err: err, Output: string(out)}
	}
	return out, nil
}

// String is the command line, for messages.
func (c Cmd) String() string {
	return strings.TrimSpace(c.Path + " " + strings.Join(c.Args, " "))
}

// LookPath finds a program in PATH or in the given extra directories.
func LookPath(name string, extraDirs ...string) (string, error) {
	for _, d := range extraDirs {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("program %s not found: %w", name, err)
	}
	return p, nil
}

// Process is a long-running program started by Start.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts c without waiting for it; its output goes to out (may be nil).
// The process is killed when ctx ends.
func Start(ctx context.Context, c Cmd, out io.Writer) (*Process, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...) //nolint:gosec // callers pass fixed programs
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}, c.Env...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = c.sysProcAttr()
	cmd.ExtraFiles = c.ExtraFiles
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, &Error{Command: c.String(), Err: err}
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the exit and returns its error (an *exec.ExitError for a non-zero status).
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// ExitCode is the exit status after Done (-1 when killed by a signal).
func (p *Process) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}
