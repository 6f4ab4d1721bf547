package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Init is the sandbox child's entry point; a binary that may be re-executed
// into a sandbox (by Start, Exec or StartSelf) calls it first thing in main.
// Test binaries call it through Main.
//
// Outside a sandbox child it does nothing and returns (0, false). In a child
// it sets the sandbox up; then, for Start and Exec, it runs the program as
// PID 1's only child and returns (its exit status, true), and for StartSelf
// it returns (0, false) and the binary goes on inside the sandbox. When the
// setup fails it reports why on stderr and returns (ExitSetupFailed, true).
// The caller exits with the status when the second result is true.
func Init() (code int, exit bool) {
	raw, ok := os.LookupEnv(envSetup)
	if !ok {
		return 0, false
	}
	_ = os.Unsetenv(envSetup)
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "wcp-sandbox: bad %s: %v\n", envSetup, err)
		return ExitSetupFailed, true
	}
	if cfg.Cgroups != nil && !cfg.Cgroups.Entered {
		err := enterCgroups(cfg) // runs this binary again when it works
		fmt.Fprintf(os.Stderr, "wcp-sandbox: setup: %v\n", err)
		return ExitSetupFailed, true
	}
	if err := setup(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "wcp-sandbox: setup: %v\n", err)
		return ExitSetupFailed, true
	}
	runtime.UnlockOSThread() // locked in init
	if len(cfg.Command) > 0 {
		return supervise(cfg.Command), true
	}
	return 0, false
}

// The private parts of the sandbox.
var (
	// overlaid directories: the host's content, private writes.
	overlayDirs = []string{"/etc", "/var", "/home"}
	// tmpfs mounts, in mount order, with their modes.
	tmpfsDirs = []struct {
		path string
		mode uint32
	}{
		{"/run", 0o755},
		{"/tmp", 0o1777},
		{"/dev/shm", 0o1777},
		{"/var/log", 0o755},
		{"/var/lib/wcp360", 0o755},
		{"/srv/www", 0o755},
	}
)

// init locks the sandbox child's main goroutine, which calls Init, to the
// main thread: the thread that has the parent-death signal, and the one
// that must enter the cgroup namespace and run the binary again in it
// (enterCgroups).
func init() {
	if _, ok := os.LookupEnv(envSetup); ok {
		runtime.LockOSThread()
	}
}

func setup(cfg childConfig) error {
	if os.Getpid() != 1 {
		return errors.New("not PID 1 of a new PID namespace")
	}
	names := namespaceNames
	if cfg.Cgroups != nil {
		names = append(slices.Clip(names), "cgroup")
	}
	for _, n := range names {
		link, err := os.Readlink("/proc/self/ns/" + n)
		if err != nil {
			return err
		}
		if parent, ok := cfg.ParentNS[n]; !ok || parent == link {
			return fmt.Errorf("still in the parent's %s namespace", n)
		}
	}
	// Bind sources are host paths: open them before the private mounts
	// can hide them (a source under /tmp, say).
	sources := make([]*os.File, len(cfg.Binds))
	defer func() {
		for _, f := range sources {
			if f != nil {
				_ = f.Close()
			}
		}
	}()
	for i, b := range cfg.Binds {
		fd, err := unix.Open(b.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("bind %s: %w", b.Source, err)
		}
		sources[i] = os.NewFile(uintptr(fd), b.Source)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	if cfg.RootFS != "" {
		// Once the host's root is detached its mounts cannot be bound any
		// more: take detached copies of the sources now.
		for i, b := range cfg.Binds {
			fd, err := unix.OpenTree(int(sources[i].Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
			if err != nil {
				return fmt.Errorf("bind %s: %w", b.Source, err)
			}
			_ = sources[i].Close()
			sources[i] = os.NewFile(uintptr(fd), b.Source)
		}
		if err := enterRootFS(cfg.RootFS); err != nil {
			return err
		}
	} else if err := mountOverlays(); err != nil {
		return err
	}
	if cfg.Cgroups != nil {
		if err := mountCgroups(cfg.Cgroups.Layout); err != nil {
			return err
		}
	}
	logDirs, err := dirTree("/var/log")
	if err != nil {
		return err
	}
	for _, d := range tmpfsDirs {
		if err := mountTmpfs(d.path, d.mode); err != nil {
			return err
		}
	}
	if err := recreateDirs("/var/log", logDirs); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := setHostname(cfg.Hosts); err != nil {
		return err
	}
	for i, b := range cfg.Binds {
		if err := bindMount(b, sources[i], cfg.RootFS != ""); err != nil {
			return err
		}
	}
	// The working directory may be one the sandbox now hides (or overlays):
	// enter the sandbox's view of it, or / when there is none.
	if wd, err := os.Getwd(); err != nil || os.Chdir(wd) != nil {
		if err := os.Chdir("/"); err != nil {
			return err
		}
	}
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	return os.Setenv(envInside, ns)
}

// mountOverlays puts an overlay over each of overlayDirs. Their upper and
// work directories live on a scratch tmpfs mounted on /run and detached
// again at once (the overlays keep it), so nothing is created on the host.
func mountOverlays() error {
	const scratch = "/run"
	if err := unix.Mount("wcp-sandbox-scratch", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mount scratch tmpfs: %w", err)
	}
	for i, dir := range overlayDirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		upper := fmt.Sprintf("%s/%d/upper", scratch, i)
		work := fmt.Sprintf("%s/%d/work", scratch, i)
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		// The merged directory takes the upper one's owner and mode.
		if err := copyOwnerMode(dir, upper); err != nil {
			return err
		}
		opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
		if err := unix.Mount("overlay", dir, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay over %s: %w", dir, err)
		}
	}
	if err := unix.Unmount(scratch, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach scratch tmpfs: %w", err)
	}
	return nil
}

// enterRootFS makes an overlay of dir the root of this mount namespace:
// dir is its lower layer, its writes go to a tmpfs, so dir never changes.
// Its /dev gets the host's harmless devices (the host's /dev is no longer
// visible after the switch) and /sys the sysfs of this network namespace,
// read-only. /proc and the rest are mounted by setup, as for any sandbox.
func enterRootFS(dir string) error {
	// The scratch tmpfs holds the overlay's upper and work directories and
	// its mount point; detached with the old root, the overlay keeps it.
	const scratch = "/run"
	if err := unix.Mount("wcp-sandbox-root", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mount scratch tmpfs: %w", err)
	}
	root, upper, work := scratch+"/root", scratch+"/upper", scratch+"/work"
	for _, d := range []string{root, upper, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if err := copyOwnerMode(dir, upper); err != nil {
		return err
	}
	opts := "lowerdir=" + dir + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay over the rootfs %s: %w", dir, err)
	}
	for _, d := range []string{"proc", "sys", "dev", "etc", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil { //nolint:gosec // mount points in the overlay, as on any system
			return err
		}
	}
	if err := populateDev(root + "/dev"); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching it
	// leaves the new one alone.
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the rootfs %s: %w", dir, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	return nil
}

// populateDev mounts a tmpfs on dev with the host's null, zero, full,
// random, urandom and tty bound in, a devpts of its own, and the usual
// links.
func populateDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on /dev: %w", err)
	}
	for _, n := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		target := filepath.Join(dev, n)
		if err := os.WriteFile(target, nil, 0o600); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+n, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", n, err)
		}
	}
	if err := os.Mkdir(filepath.Join(dev, "pts"), 0o755); err != nil { //nolint:gosec // as on any system
		return err
	}
	if err := unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	links := [][2]string{{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return err
		}
	}
	return nil
}

func copyOwnerMode(from, to string) error {
	st, err := os.Stat(from)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(to, int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(to, st.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid))
}

func mountTmpfs(path string, mode uint32) error {
	if err := os.MkdirAll(path, 0o755); err != nil { //nolint:gosec // a mount point (on the host: /srv/www), world-readable like its siblings
		return err
	}
	opts := fmt.Sprintf("mode=%04o", mode)
	if err := unix.Mount("tmpfs", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", path, err)
	}
	return nil
}

type dirEntry struct {
	rel      string
	mode     os.FileMode
	uid, gid int
}

// dirTree lists the directories under root (not root itself), parents first.
func dirTree(root string) ([]dirEntry, error) {
	var dirs []dirEntry
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if !d.IsDir() || path == root {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		e := dirEntry{rel: strings.TrimPrefix(path, root+"/"), mode: info.Mode()}
		if st != nil {
			e.uid, e.gid = int(st.Uid), int(st.Gid)
		}
		dirs = append(dirs, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	return dirs, nil
}

func recreateDirs(root string, dirs []dirEntry) error {
	for _, d := range dirs {
		p := filepath.Join(root, d.rel)
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			return err
		}
		if err := os.Chmod(p, d.mode&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
			return err
		}
	}
	return nil
}

// loopbackUp sets lo up, as `ip link set lo up` does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	defer unix.Close(fd) //nolint:errcheck // a socket used for ioctls only
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: set flags: %w", err)
	}
	return nil
}

// setHostname sets the UTS host name and writes /etc/hostname and
// /etc/hosts (both in the /etc overlay).
func setHostname(hosts map[string]string) error {
	if err := unix.Sethostname([]byte(Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := os.WriteFile("/etc/hostname", []byte(Hostname+"\n"), 0o644); err != nil { //nolint:gosec // world-readable like the host's
		return err
	}
	if err := os.WriteFile("/etc/hosts", []byte(hostsFile(hosts)), 0o644); err != nil { //nolint:gosec // world-readable like the host's
		return err
	}
	return nil
}

// hostsFile is the sandbox's /etc/hosts.
func hostsFile(hosts map[string]string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost " + Hostname + "\n::1 localhost\n")
	names := make([]string, 0, len(hosts))
	for n := range hosts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString(hosts[n] + " " + n + "\n")
	}
	return b.String()
}

// privateRoot reports whether path is where a missing bind target may be
// created without touching the host.
func privateRoot(path string) bool {
	for _, r := range overlayDirs {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	for _, d := range tmpfsDirs {
		if path == d.path || strings.HasPrefix(path, d.path+"/") {
			return true
		}
	}
	return false
}

// resolveExisting resolves the symbolic links of the longest existing
// prefix of path.
func resolveExisting(path string) (string, error) {
	rest := ""
	for {
		if _, err := os.Lstat(path); err == nil {
			r, err := filepath.EvalSymlinks(path)
			return filepath.Join(r, rest), err
		}
		if path == "/" {
			return "", fs.ErrNotExist
		}
		rest = filepath.Join(filepath.Base(path), rest)
		path = filepath.Dir(path)
	}
}

// bindMount mounts source (an O_PATH file of b.Source, opened in the
// host's view) on b.Target. A missing target is created when it lies in a
// private part of the sandbox. With rootfs, all of the sandbox is private
// (its root is an overlay on a tmpfs) and source is a detached copy of
// b.Source's mount (open_tree), which is moved onto the target.
func bindMount(b Bind, source *os.File, rootfs bool) error {
	target := filepath.Clean(b.Target)
	src, err := source.Stat()
	if err != nil {
		return fmt.Errorf("bind %s: %w", b.Source, err)
	}
	if _, err := os.Stat(target); errors.Is(err, fs.ErrNotExist) {
		if resolved, err := resolveExisting(target); err != nil || !rootfs && !privateRoot(resolved) {
			return fmt.Errorf("bind %s:%s: the target is missing, and is not in a private part of the sandbox where it could be created", b.Source, b.Target)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil { //nolint:gosec // path to a mount point, inside the sandbox
			return err
		}
		if src.IsDir() {
			err = os.Mkdir(target, 0o700) // hidden by the mount
		} else {
			err = os.WriteFile(target, nil, 0o600)
		}
		if err != nil {
			return err
		}
	}
	if rootfs {
		err = unix.MoveMount(int(source.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
	} else {
		fdPath := fmt.Sprintf("/proc/self/fd/%d", source.Fd())
		err = unix.Mount(fdPath, target, "", unix.MS_BIND|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("bind %s:%s: %w", b.Source, b.Target, err)
	}
	if b.ReadOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s:%s read-only: %w", b.Source, b.Target, err)
		}
	}
	return nil
}

// supervise runs argv as PID 1's child and returns its exit status. It reaps
// every process orphaned into the sandbox, and passes SIGTERM, SIGHUP,
// SIGUSR1 and SIGUSR2 on to the program. SIGINT and SIGQUIT are ignored
// here: from a terminal they reach the program directly.
func supervise(argv []string) int {
	path, err := cmdrun.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "wcp-sandbox: %v\n", err)
		return ExitNotFound
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGQUIT)
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "wcp-sandbox: %v\n", err)
		if errors.Is(err, fs.ErrNotExist) {
			return ExitNotFound
		}
		return ExitCannotRun
	}
	go func() {
		for s := range sigs {
			if s != syscall.SIGINT && s != syscall.SIGQUIT {
				_ = proc.Signal(s)
			}
		}
	}()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			fmt.Fprintf(os.Stderr, "wcp-sandbox: wait: %v\n", err)
			return ExitCannotRun
		case pid == proc.Pid:
			return exitStatus(ws)
		}
	}
}
