// Package phpfpm runs one PHP-FPM master per tenant and PHP version.
//
// A tenant's PHP never shares a master with another tenant's: a shared
// master forks every pool's workers from one process, so they cannot be
// born in, or kept in, the tenant's cgroup. Here each (tenant, version) pair
// gets its own master with exactly one pool, and a tenant whose domains use
// two PHP versions has two masters.
//
//	m, err := phpfpm.New(phpfpm.Options{Snapshots: snaps, Clock: time.Now, Logger: log})
//	err = m.Adopt(ctx)                 // at wcpd start: keep the masters that run
//	ds, err := m.Observe(ctx, pool)    // how the host differs
//	err = m.Apply(ctx, pool)           // converge (idempotent: nothing when nothing changed)
//	err = m.Remove(ctx, "acme", "8.2") // the tenant no longer uses PHP 8.2
//	err = m.Close()                    // wcpd stops: the masters keep running
//
// # Files
//
//	/etc/wcp360/php-fpm/<t>-<v>.conf       root:root 0640  master: [global] and one include
//	/etc/wcp360/php-fpm/<t>-<v>.pool.conf  root:root 0640  the pool [<t>]
//	/run/wcp360/php/<t>-<v>.sock           <t>:www-data 0660  the FastCGI socket (nginx and the tenant only)
//	/run/wcp360/php/held/<t>-<v>.sock      the same socket: the pool's listen path, in a root-only directory
//	/run/wcp360/php/<t>-<v>.pid            written by the master
//	/run/wcp360/php/<t>-<v>.loaded         SHA-256 of the config the running master loaded
//	<home>/logs/php-fpm-<v>.log            root:<t> 0640  the master's error log (the tenant can read it)
//
// The directories are 0750 (configs) and 0711 (sockets: nginx and the tenant
// reach their socket, nobody lists the tenants). The templates are
// templates/php-fpm/*.tmpl; every value that goes into them is validated
// first (Pool.validate): names, paths and php.ini settings cannot inject a
// line, a section or a comment.
//
// # Apply
//
// Apply renders both files and writes them only when they differ from the
// host: a snapshot first (snapshot.Store, kind SnapshotKind, name
// "<t>-<v>"), then an atomic write of each, then `php-fpm<v> -t`; when
// php-fpm rejects the config the snapshot is restored (the running master
// never sees it) and the error is a *ConfigError carrying php-fpm's message.
// Then: no master running → start one; a master running a config other than
// the one on disk (the .loaded marker) or a binary replaced by a package
// upgrade → graceful reload (SIGUSR2: running requests finish, the socket is
// kept, php-fpm re-executes itself with the new config and new workers);
// a master of another binary → stop and start. Otherwise nothing at all: no
// write, no signal.
//
// # Supervision
//
// Without systemd as PID 1, wcpd is the supervisor. A master is started
// through cmdrun with --nodaemonize in a session of its own (setsid), so it
// is not in wcpd's process group and outlives wcpd: a restart or upgrade of
// wcpd does not restart every tenant's PHP. Each master is watched through a
// pidfd (pidfd_open(2) and the runtime's poller: no polling, and it works
// for processes that are not wcpd's children, which is what a master is
// after wcpd restarted). A master that exits without being asked to is
// restarted with exponential backoff (Options.RestartDelay doubling up to
// Options.MaxRestartDelay; reset after a minute of running). Before that,
// the workers the dead master left behind (its process group, verified by
// executable and process title) are killed: they still hold the listening
// socket, and php-fpm refuses to start while somebody listens on it.
//
// Adopt, at wcpd start, reads the pid files, verifies each named process
// (/proc/<pid>/exe is the version's php-fpm, its command line names our
// config; checked after pidfd_open, so a recycled pid cannot be mistaken)
// and supervises it again instead of starting a new one. Close stops the
// supervision and leaves the masters running.
//
// When Options.StartIn is set, each master is born inside its tenant's
// cgroup(s) (cgroup.Driver: clone3 CLONE_INTO_CGROUP through
// SysProcAttr.UseCgroupFD on cgroup2, the forking thread moved first on
// cgroup v1), so neither it nor any worker ever runs outside them.
//
// # Sockets and PHP on demand
//
// wcpd, not php-fpm, owns each master's listening socket (activate.go). It
// binds it once, in a root-only directory (/run/wcp360/php/held/<t>-<v>.sock,
// the pool's listen path), and links it as /run/wcp360/php/<t>-<v>.sock,
// the name nginx connects to: php-fpm unlinks its listen path when it exits,
// even an inherited one, and never touches the second name. Every master
// gets the socket as descriptor 3 with FPM_SOCKETS=<listen path>=3 and
// uses it instead of binding. So the socket outlives the master: requests
// that arrive while a master restarts wait in its backlog instead of
// failing. After a wcpd restart, the socket is taken back from the running
// master (found in /proc/net/unix, copied with pidfd_getfd(2)).
//
// With Options.IdleStop (wcpd's web.phpIdleStop, 10 minutes by default) a
// master runs only while its tenant is busy: Apply writes and tests the
// config and holds the socket; one goroutine waits (epoll, one-shot) on the
// sockets of the masters that do not run and starts a master when a
// connection waits; a sweep (one pass over /proc for all masters) stops a
// master that had no worker for IdleStop (pm = ondemand lets workers go
// after pm.process_idle_timeout). An idle tenant costs a socket and no
// process. Measured by BenchmarkOnDemand (docs/benchmarks.md): the first
// request, master start included, ~17 ms; ~7.5 MB PSS per tenant once busy.
//
// A wcpd that exits leaves running masters running (they hold the socket);
// the socket of a master that was not running closes with wcpd, and its
// requests fail until the next wcpd has applied the tenant's domains again
// (at its start). Keeping those sockets across a restart needs systemd's
// file descriptor store (FDSTORE=1) where systemd runs wcpd: not built.
// (With the systemd runner below, systemd holds the sockets and they
// survive wcpd.)
//
// # systemd
//
// Where systemd is PID 1 (/run/systemd/system exists, as sd_booted(3)
// checks), Options.Runner "" or RunnerAuto picks the systemd runner
// (systemd.go); RunnerWcpd and RunnerSystemd force one. The config files,
// php-fpm -t, Observe and Apply are the same; what changes is who starts,
// stops and holds. Each master is two transient units, made over systemd's
// private D-Bus socket (/run/systemd/private, go-systemd; no dbus-daemon):
//
//	wcp360-php-<t>-<v>.socket   ListenStream=/run/wcp360/php/<t>-<v>.sock, <uid>:<www-data gid> 0660, Backlog=511
//	wcp360-php-<t>-<v>.service  php-fpm<v> --nodaemonize --fpm-config <conf>, Type=notify,
//	                            Slice=wcp360-tenant-<t>.slice ('-' escaped: \x2d),
//	                            Environment=FPM_SOCKETS=/run/wcp360/php/held/<t>-<v>.sock=3,
//	                            KillMode=mixed, KillSignal=SIGQUIT, TimeoutStopSec=StopTimeout,
//	                            Restart=on-failure, RestartSec=RestartDelay, StartLimitIntervalSec=0
//
// created in one StartTransientUnit call (the service as an auxiliary
// unit, loaded but not started). systemd binds the name nginx connects to
// and passes the socket to the service as descriptor 3; the pool's listen
// path is only the key FPM_SOCKETS maps to it, bound by nobody, so
// php-fpm's unlinking it on exit touches nothing. The socket outlives
// masters and wcpd alike. The master runs in the tenant's slice
// (wcp360.slice/wcp360-tenant.slice/wcp360-tenant-<t>.slice), where the
// cgroup driver puts its limits.
//
// Start is a start job on the service (done once php-fpm said READY=1);
// reload is SIGUSR2 to the unit's main process (KillUnit, who=main: php-fpm
// re-executes itself, MainPID stays) confirmed by the error log as with
// wcpd; stop is a stop job (SIGQUIT, SIGKILL for the cgroup after
// StopTimeout); a crashed master is restarted by systemd (RestartSteps and
// RestartMaxDelaySec give it the same backoff on systemd 254 and later;
// Debian 12's 252 retries every RestartDelay). Status is the service's
// ActiveState and MainPID, the pid verified through /proc as the
// supervisor verifies (php-fpm, our config), watched through a pidfd. A
// socket owner or binary that changed replaces both units (a transient
// unit cannot be edited); so does a socket file removed or replaced (its
// inode is recorded when systemd binds it). Remove stops both and waits
// until systemd unloaded them. Adopt lists wcp360-php-* units; Close only
// hangs up.
//
// With Options.IdleStop, Apply creates the units without starting the
// service: the first connection starts it (socket activation), and the idle
// sweep, which first asks systemd which masters run (sync), stops the
// service of a master without workers, leaving the socket listening. The
// .loaded marker is written when no master runs: a master systemd starts
// later loads the files Apply wrote and tested.
//
// Tested against a real systemd by TestSystemd: Debian 12 with systemd and
// php8.2-fpm (hack/systemd-rootfs.sh: built once, ~80 s and 224 MB, cached
// in /var/cache/wcp360/rootfs) booted with systemd-nspawn over an overlay;
// the statically linked test binary runs in the container (nsenter). Boot
// ~0.3 s, scenario ~1.7 s, the whole test ~3 s once the rootfs exists.
// Options.StartIn is not used with systemd: the slice is the cgroup.
package phpfpm
