package sandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: wcp-sandbox [--rootfs DIR] [--host-cgroups] [--bind SRC:DST[:ro]]... [--host NAME=IP]... [--env KEY=VALUE]... -- COMMAND [ARG]...

Runs COMMAND as root in a new sandbox (private /etc, /var, /home overlays;
tmpfs /run, /tmp, /srv/www, /var/lib/wcp360, /var/log; only lo; hostname
wcp-sandbox; cgroups of its own) and exits with its status. Everything it
started is killed when COMMAND exits. With --rootfs, the sandbox's root is
a private overlay of DIR (another system's root filesystem) instead of the
host's.

The sandbox gets a new cgroup (wcp-sandbox-...) in every cgroup hierarchy,
and /sys/fs/cgroup inside shows only those, as roots: the cgroups COMMAND
creates there are below the sandbox's on the host, with the kernel
enforcing their limits, and they are removed, with every process left in
them, when COMMAND exits. --host-cgroups runs it in the host's cgroup tree
instead.
`

// RunCLI is the wcp-sandbox command: it parses args (without the program
// name), runs the command in a sandbox and returns its exit status, 2 for a
// usage error, or ExitSetupFailed when no sandbox could be made. The binary's
// main must call Init before it.
func RunCLI(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, argv, err := parseCLI(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wcp-sandbox: %v\n%s", err, usage)
		return 2
	}
	p, err := Start(ctx, opts, argv, Stdio{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "wcp-sandbox: %v\n", err)
		return ExitSetupFailed
	}
	// Pass on the signals sent to this process. SIGINT and SIGQUIT from a
	// terminal reach the command directly; as the command's supervisor
	// ignores them, so does this process.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s != syscall.SIGINT && s != syscall.SIGQUIT {
					_ = p.Signal(s)
				}
			case <-p.Done():
				return
			}
		}
	}()
	code, err := p.Wait()
	if err != nil {
		fmt.Fprintf(stderr, "wcp-sandbox: %v\n", err)
		if !errors.Is(err, ErrCgroupsLeft) {
			return ExitSetupFailed
		}
	}
	return code
}

// parseCLI parses the wcp-sandbox command line.
func parseCLI(args []string) (Options, []string, error) {
	var opts Options
	fs := flag.NewFlagSet("wcp-sandbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // RunCLI reports errors
	fs.Func("bind", "bind mount SRC:DST[:ro] from the host (repeatable)", func(v string) error {
		parts := strings.Split(v, ":")
		b := Bind{}
		switch {
		case len(parts) == 2:
		case len(parts) == 3 && parts[2] == "ro":
			b.ReadOnly = true
		default:
			return fmt.Errorf("want SRC:DST or SRC:DST:ro, got %q", v)
		}
		b.Source, b.Target = parts[0], parts[1]
		opts.Binds = append(opts.Binds, b)
		return nil
	})
	fs.Func("host", "add NAME=IP to /etc/hosts (repeatable)", func(v string) error {
		name, ip, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("want NAME=IP, got %q", v)
		}
		if opts.Hosts == nil {
			opts.Hosts = map[string]string{}
		}
		opts.Hosts[name] = ip
		return nil
	})
	fs.Func("env", "set KEY=VALUE in the command's environment (repeatable)", func(v string) error {
		opts.Env = append(opts.Env, v)
		return nil
	})
	fs.StringVar(&opts.RootFS, "rootfs", "", "run in a private overlay of this root filesystem instead of the host's")
	fs.BoolVar(&opts.HostCgroups, "host-cgroups", false, "run in the host's cgroup tree, without cgroups of the sandbox's own")
	if err := fs.Parse(args); err != nil {
		return Options{}, nil, err
	}
	if fs.NArg() == 0 {
		return Options{}, nil, errors.New("no command")
	}
	if err := opts.Validate(); err != nil {
		return Options{}, nil, err
	}
	return opts, fs.Args(), nil
}
