// Command wcp-sandbox runs a command as root in a throwaway sandbox: new
// mount, network, PID, UTS, IPC and cgroup namespaces where /etc, /var and
// /home are private overlays of the host's, /run, /tmp, /srv/www,
// /var/lib/wcp360 and /var/log are fresh tmpfs, lo is the only network
// interface, the host name is wcp-sandbox and the cgroups are the
// sandbox's own. The demo runs the panel in one.
//
//	wcp-sandbox [--rootfs DIR] [--host-cgroups] [--bind SRC:DST[:ro]]... [--host NAME=IP]... [--env KEY=VALUE]... -- COMMAND [ARG]...
//
// --bind mounts a host file or directory into the sandbox (a directory for a
// unix socket that the outside uses, say); --host adds a line to the
// sandbox's /etc/hosts; --env sets a variable for COMMAND. --rootfs runs
// COMMAND in another system's root filesystem (a debootstrap tree, such as
// the one hack/trixie-rootfs.sh builds) instead of the host's: its root is
// an overlay of DIR whose writes vanish with the sandbox.
//
// The sandbox gets a cgroup wcp-sandbox-... in every cgroup hierarchy (v1
// ones below wcp-sandbox's own cgroup, cgroup2 below the root), and
// /sys/fs/cgroup inside shows those as the roots, laid out as on the host:
// what COMMAND creates there is below them on the host, with its limits
// enforced by the kernel, and is removed, with every process left in it,
// when COMMAND exits (or, when wcp-sandbox itself was killed, by the next
// wcp-sandbox). --host-cgroups runs COMMAND in wcp-sandbox's own cgroups
// and the host's cgroup tree instead.
//
// The exit status is COMMAND's (128+N when signal N killed it), 125 when the
// sandbox could not be made, 126/127 when COMMAND could not be run or found,
// 2 for a usage error. When COMMAND exits, every process it left in the
// sandbox is killed, and everything it wrote outside the binds is gone.
// SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 sent to wcp-sandbox are passed on to
// COMMAND; Ctrl-C in a terminal reaches COMMAND directly. See package
// internal/sandbox for the details.
package main

import (
	"context"
	"os"

	"github.com/wcp360/wcp360/internal/sandbox"
)

func main() {
	// In the re-executed sandbox child: set the sandbox up and run COMMAND.
	if code, exit := sandbox.Init(); exit {
		os.Exit(code)
	}
	os.Exit(sandbox.RunCLI(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
