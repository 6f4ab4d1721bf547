package sandbox

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host/mountinfo"
)

// A sandbox's cgroups. Start makes a cgroup of the sandbox's own in every
// mounted cgroup hierarchy (newCgroups); the child joins them, enters a new
// cgroup namespace whose root they are, and runs itself again there
// (enterCgroups); then it mounts the cgroup file systems in its mount
// namespace the way the host has them (mountCgroups). Once the sandbox is
// gone, the parent kills what is left in them and removes them (remove).

const (
	// cgroupPrefix starts the name of every sandbox's cgroups:
	// wcp-sandbox-<pid>-<start>-<random>, where pid and start (clock ticks
	// after boot, /proc/<pid>/stat) are those of the process that made them,
	// so that a later Start can tell when that process is gone.
	cgroupPrefix = "wcp-sandbox-"
	// cgroupDir is where the cgroup file systems are mounted.
	cgroupDir = "/sys/fs/cgroup"
	// initLeaf is the cgroup2 cgroup below a sandbox's where its processes
	// run: cgroup2 lets a cgroup other than the root give controllers to
	// its children only while it has no processes of its own, and the
	// sandbox's cgroup is the root the inside sees.
	initLeaf = "init"
	// removeBudget is how long remove keeps killing and retrying.
	removeBudget = 10 * time.Second
)

// ErrCgroupsLeft means cgroups a sandbox made on the host could not be
// removed: processes in them did not die (in uninterruptible sleep, say).
var ErrCgroupsLeft = errors.New("sandbox: cgroups left behind")

// delegated are the cgroup2 controllers Start enables on the parent of a
// sandbox's cgroup when the parent offers them but has them off, so that
// the sandbox has them: WCP360's tenant limits use them.
var delegated = []string{"cpu", "io", "memory", "pids"}

// cgroupSetup is what the child needs to enter its cgroups.
type cgroupSetup struct {
	// Roots are the sandbox's cgroups (host paths), one per hierarchy: the
	// child joins them, then enters a new cgroup namespace, whose root
	// they become.
	Roots []string `json:"roots"`
	// Init are where the child moves then, in the namespace: the initLeaf
	// of the cgroup2 root.
	Init []string `json:"init,omitempty"`
	// Layout is how the host mounts its cgroup file systems.
	Layout cgroupLayout `json:"layout"`
	// Entered is set for the child once it is in its cgroups and their
	// namespace (and runs again).
	Entered bool `json:"entered,omitempty"`
}

// cgroupLayout is how cgroup file systems are mounted at /sys/fs/cgroup.
type cgroupLayout struct {
	// Tmpfs holds the mount points (hybrid and legacy hosts); nil when a
	// cgroup file system is mounted on /sys/fs/cgroup itself (pure cgroup
	// v2).
	Tmpfs *fsMount `json:"tmpfs,omitempty"`
	// Mounts are the cgroup file systems, in mount order.
	Mounts []fsMount `json:"mounts,omitempty"`
	// Links are the symbolic links in Tmpfs (cpu -> cpu,cpuacct), by name.
	Links map[string]string `json:"links,omitempty"`
}

// fsMount is a file system to mount.
type fsMount struct {
	Point  string  `json:"point"`
	FSType string  `json:"fstype"`
	Data   string  `json:"data,omitempty"`
	Flags  uintptr `json:"flags,omitempty"`
}

// parseMountinfo parses /proc/self/mountinfo, skipping the lines it
// cannot read.
func parseMountinfo(s string) []mountinfo.Mount {
	var out []mountinfo.Mount
	for l := range strings.Lines(s) {
		if m, err := mountinfo.ParseLine(l); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// procCgroup is a line of /proc/<pid>/cgroup: the controllers of a
// hierarchy ("cpu,cpuacct", "name=systemd"; none for cgroup2) and the
// process's cgroup in it.
type procCgroup struct {
	controllers []string
	path        string
}

func parseProcCgroup(s string) []procCgroup {
	var out []procCgroup
	for l := range strings.Lines(s) {
		f := strings.SplitN(strings.TrimSpace(l), ":", 3)
		if len(f) != 3 {
			continue
		}
		c := procCgroup{path: f[2]}
		if f[1] != "" {
			c.controllers = strings.Split(f[1], ",")
		}
		out = append(out, c)
	}
	return out
}

// hierarchy is a mounted cgroup hierarchy, as the starting process sees it.
type hierarchy struct {
	v2 bool
	// mount is where it is mounted; current is the directory of this
	// process's cgroup in it, below mount.
	mount, current string
}

// findHierarchies lists each mounted cgroup hierarchy once, in mount
// order, with the process's cgroup in it (cgroups: /proc/self/cgroup).
// Of several mounts of a hierarchy, the first that shows the process's
// cgroup is used; when none does, the process's cgroup is taken to be the
// top of the first.
func findHierarchies(mounts []mountinfo.Mount, cgroups []procCgroup) []hierarchy {
	var out []hierarchy
	seen := map[string]int{} // dev → index in out
	exact := map[string]bool{}
	for _, m := range mounts {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		path, ok := cgroupIn(m, cgroups)
		if !ok {
			continue
		}
		h := hierarchy{v2: m.FSType == "cgroup2", mount: m.Point, current: m.Point}
		rel, below := strings.CutPrefix(path, m.Root)
		if below = below && (m.Root == "/" || rel == "" || strings.HasPrefix(rel, "/")); below {
			h.current = filepath.Join(m.Point, rel)
		}
		dev := m.Dev()
		i, dup := seen[dev]
		switch {
		case !dup:
			seen[dev], exact[dev] = len(out), below
			out = append(out, h)
		case below && !exact[dev]:
			out[i], exact[dev] = h, true
		}
	}
	return out
}

// cgroupIn returns the process's cgroup in the hierarchy mounted by m.
func cgroupIn(m mountinfo.Mount, cgroups []procCgroup) (string, bool) {
	for _, c := range cgroups {
		switch {
		case m.FSType == "cgroup2" && len(c.controllers) == 0:
			return c.path, true
		case m.FSType == "cgroup" && len(c.controllers) > 0 && !slices.ContainsFunc(c.controllers, func(x string) bool {
			return !m.HasSuperOption(x)
		}):
			return c.path, true
		}
	}
	return "", false
}

// layoutOf is how mounts has the cgroup file systems at /sys/fs/cgroup:
// the topmost mount there, and the cgroup file systems on its directories
// when it is a tmpfs. Links are left to the caller.
func layoutOf(mounts []mountinfo.Mount) cgroupLayout {
	top := -1
	for i, m := range mounts {
		if m.Point == cgroupDir {
			top = i
		}
	}
	var l cgroupLayout
	if top < 0 {
		return l
	}
	switch t := mounts[top]; t.FSType {
	case "cgroup", "cgroup2":
		l.Mounts = []fsMount{fsMountOf(t)}
	case "tmpfs":
		m := fsMountOf(t)
		l.Tmpfs = &m
		for _, m := range mounts[top+1:] {
			if (m.FSType == "cgroup" || m.FSType == "cgroup2") && filepath.Dir(m.Point) == cgroupDir {
				l.Mounts = append(l.Mounts, fsMountOf(m))
			}
		}
	}
	return l
}

// fsMountOf is how to mount m's file system again: the same super-block
// options (less rw, ro and release_agent, which a cgroup namespace may
// not set) and mount flags.
func fsMountOf(m mountinfo.Mount) fsMount {
	var data []string
	for _, o := range m.SuperOptions {
		if o != "rw" && o != "ro" && !strings.HasPrefix(o, "release_agent=") {
			data = append(data, o)
		}
	}
	flags := map[string]uintptr{"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV,
		"noexec": unix.MS_NOEXEC, "noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME}
	var f uintptr
	for _, o := range m.Options {
		f |= flags[o]
	}
	return fsMount{Point: m.Point, FSType: m.FSType, Data: strings.Join(data, ","), Flags: f}
}

// readLinks returns the symbolic links in dir, by name.
func readLinks(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var links map[string]string
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if links == nil {
			links = map[string]string{}
		}
		links[e.Name()] = target
	}
	return links, nil
}

// sandboxCgroups are a sandbox's cgroups on the host.
type sandboxCgroups struct {
	// dirs are the sandbox's cgroups, one per hierarchy.
	dirs  []string
	setup *cgroupSetup
}

// newCgroups makes a sandbox's cgroups: one in each mounted hierarchy,
// below this process's cgroup, except on cgroup2 (see cgroup2Parents). It
// first removes the cgroups of earlier sandboxes there whose process is
// gone (sweep). It returns nil when no hierarchy is mounted.
func newCgroups() (*sandboxCgroups, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mounts := parseMountinfo(string(mi))
	hier := findHierarchies(mounts, parseProcCgroup(string(self)))
	if len(hier) == 0 {
		return nil, nil
	}
	layout := layoutOf(mounts)
	if layout.Tmpfs != nil {
		if layout.Links, err = readLinks(cgroupDir); err != nil {
			return nil, err
		}
	}
	name, err := newCgroupName()
	if err != nil {
		return nil, err
	}
	c := &sandboxCgroups{setup: &cgroupSetup{Layout: layout}}
	for _, h := range hier {
		if err := c.add(h, name); err != nil {
			_ = c.remove()
			return nil, err
		}
	}
	return c, nil
}

// add makes the sandbox's cgroup name in h.
func (c *sandboxCgroups) add(h hierarchy, name string) error {
	parents := []string{h.current}
	if h.v2 {
		parents = cgroup2Parents(h)
	}
	var err error
	for _, parent := range parents {
		sweep(parent)
		if h.v2 {
			enableDelegated(parent)
		}
		dir := filepath.Join(parent, name)
		if err = os.Mkdir(dir, 0o755); err != nil { //nolint:gosec // a cgroup, readable like its siblings
			continue
		}
		c.dirs = append(c.dirs, dir)
		c.setup.Roots = append(c.setup.Roots, dir)
		if h.v2 {
			leaf := filepath.Join(dir, initLeaf)
			if err := os.Mkdir(leaf, 0o755); err != nil { //nolint:gosec // as above
				return err
			}
			c.setup.Init = append(c.setup.Init, leaf)
			return nil
		}
		return inheritCpuset(parent, dir)
	}
	return err
}

// cgroup2Parents are where a sandbox's cgroup2 cgroup may go, best first.
// Below this process's cgroup it could have no controllers: a cgroup with
// processes (this one) cannot give its children any, unless it is the
// root. So it goes below the top of the hierarchy (as this process sees
// it) when that is the root or has no processes; else, or when the top is
// not writable, below this process's cgroup.
func cgroup2Parents(h hierarchy) []string {
	if h.current == h.mount {
		return []string{h.current}
	}
	_, err := os.Stat(filepath.Join(h.mount, "cgroup.type")) // every cgroup has one but the root
	if errors.Is(err, fs.ErrNotExist) || !hasProcesses(h.mount) {
		return []string{h.mount, h.current}
	}
	return []string{h.current}
}

// enableDelegated enables the delegated controllers that the cgroup2
// cgroup dir offers but has off, if it can (the root, or a cgroup without
// processes).
func enableDelegated(dir string) {
	have, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	on, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	var add []string
	for _, c := range delegated {
		if slices.Contains(strings.Fields(string(have)), c) && !slices.Contains(strings.Fields(string(on)), c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) > 0 {
		_ = writeCgroupFile(filepath.Join(dir, "cgroup.subtree_control"), strings.Join(add, " "))
	}
}

// inheritCpuset copies cpuset.cpus and cpuset.mems from parent to dir in a
// v1 hierarchy with cpuset: a new cgroup has them empty, and no process
// can join it until they are set.
func inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(parent, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := writeCgroupFile(filepath.Join(dir, f), strings.TrimSpace(string(b))); err != nil {
			return err
		}
	}
	return nil
}

func hasProcesses(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	return err != nil || len(bytes.TrimSpace(b)) > 0
}

// writeCgroupFile writes s to a cgroup's control file.
func writeCgroupFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %q to %s: %w", s, path, err)
	}
	return f.Close()
}

// newCgroupName names a new sandbox's cgroups (see cgroupPrefix).
func newCgroupName() (string, error) {
	_, start, err := procStat(os.Getpid())
	if err != nil {
		return "", err
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%d-%d-%s", cgroupPrefix, os.Getpid(), start, hex.EncodeToString(r[:])), nil
}

// parseCgroupName returns the pid and start time in the name of a
// sandbox's cgroup.
func parseCgroupName(name string) (pid int, start uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, cgroupPrefix)
	f := strings.Split(rest, "-")
	if !ok || len(f) != 3 || f[2] == "" {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return 0, 0, false
	}
	return pid, start, true
}

// procStat returns the state of the process pid (R, S, Z...) and when it
// started, in clock ticks after boot: fields 3 and 22 of /proc/<pid>/stat.
func procStat(pid int) (state string, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, err
	}
	// The command (field 2) may contain spaces and parentheses: the fields
	// after it start at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

// ownerGone reports whether the process that made the cgroup name is gone:
// no process has its pid, or the one that has it started at another time,
// or it is dead but not yet waited for.
func ownerGone(name string) bool {
	pid, start, ok := parseCgroupName(name)
	if !ok {
		return false
	}
	state, st, err := procStat(pid)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return true
	}
	return err == nil && (st != start || state == "Z" || state == "X")
}

// sweep removes the cgroups in parent of sandboxes whose process is gone
// (killed before it could remove them): it kills what is left in them.
// Those of live processes, being set up or running, are not touched.
func sweep(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), cgroupPrefix) && ownerGone(e.Name()) {
			_ = removeCgroups([]string{filepath.Join(parent, e.Name())})
		}
	}
}

// remove kills what is left in the sandbox's cgroups and removes them.
func (c *sandboxCgroups) remove() error { return removeCgroups(c.dirs) }

// removeCgroups removes the cgroups roots and all below them, deepest
// first, killing the processes in them, until they are gone or
// removeBudget is spent: with cgroup.kill on cgroup2 (Linux 5.14), else
// with SIGKILL to each process in cgroup.procs, after thawing frozen
// cgroups. Every hierarchy is killed before any is removed: a process
// frozen in one (v1 freezer) dies only once thawed there.
func removeCgroups(roots []string) error {
	delay, waited := time.Millisecond, time.Duration(0)
	for {
		trees := make([][]string, len(roots))
		for i, root := range roots {
			trees[i] = cgroupTree(root)
			killCgroups(root, trees[i])
		}
		var left []string
		var lastErr error
		for i, root := range roots {
			for j := len(trees[i]) - 1; j >= 0; j-- {
				if err := unix.Rmdir(trees[i][j]); err != nil && !errors.Is(err, unix.ENOENT) {
					lastErr = fmt.Errorf("rmdir %s: %w", trees[i][j], err)
				}
			}
			if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
				left = append(left, root)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if waited >= removeBudget {
			return fmt.Errorf("%w: %s (after %s): %w", ErrCgroupsLeft, strings.Join(left, ", "), removeBudget, lastErr)
		}
		time.Sleep(delay)
		waited += delay
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// cgroupTree lists root and the cgroups below it, parents first; nothing
// when root is gone.
func cgroupTree(root string) []string {
	var dirs []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // a cgroup removed meanwhile
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	return dirs
}

// killCgroups kills the processes in the cgroup root and below it (tree).
func killCgroups(root string, tree []string) {
	if len(tree) == 0 {
		return
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.kill")); err == nil {
		if ev, _ := os.ReadFile(filepath.Join(root, "cgroup.events")); bytes.Contains(ev, []byte("populated 1")) {
			_ = writeCgroupFile(filepath.Join(root, "cgroup.kill"), "1")
		}
		return
	}
	for _, dir := range tree {
		if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
			_ = writeCgroupFile(filepath.Join(dir, "freezer.state"), "THAWED")
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err == nil {
			_ = writeCgroupFile(filepath.Join(dir, "cgroup.freeze"), "0")
		}
		killProcesses(filepath.Join(dir, "cgroup.procs"))
	}
}

// killProcesses sends SIGKILL to the processes listed in procs. It opens a
// pidfd of each and signals those still listed afterwards, so that a pid
// reused meanwhile by a process elsewhere is spared.
func killProcesses(procs string) {
	pids := readPids(procs)
	if len(pids) == 0 {
		return
	}
	fds := map[int]int{}
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case errors.Is(err, unix.ENOSYS):
			_ = unix.Kill(pid, unix.SIGKILL) // before Linux 5.3
		}
	}
	for _, pid := range readPids(procs) {
		if fd, ok := fds[pid]; ok {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
	}
}

func readPids(procs string) []int {
	b, err := os.ReadFile(procs)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// enterCgroups moves this process (all its threads) into the sandbox's
// cgroups, enters a new cgroup namespace whose root they are, moves on to
// the cgroup2 init leaf and runs this binary again, in the namespace: it
// returns only on failure. A namespace is a thread's, and only the thread
// that execs takes it into the new program, where every thread has it;
// that thread must be the main one, locked to the main goroutine in init
// until Init ends, which has the parent-death signal.
func enterCgroups(cfg childConfig) error {
	if unix.Gettid() != unix.Getpid() {
		return errors.New("sandbox.Init must be called from main's goroutine")
	}
	for _, dir := range cfg.Cgroups.Roots {
		if err := writeCgroupFile(filepath.Join(dir, "cgroup.procs"), "0"); err != nil {
			return fmt.Errorf("join the cgroup %s: %w", dir, err)
		}
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("new cgroup namespace: %w", err)
	}
	for _, dir := range cfg.Cgroups.Init {
		if err := writeCgroupFile(filepath.Join(dir, "cgroup.procs"), "0"); err != nil {
			return fmt.Errorf("join the cgroup %s: %w", dir, err)
		}
	}
	cfg.Cgroups.Entered = true
	enc, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	env := append(os.Environ(), envSetup+"="+string(enc))
	return unix.Exec("/proc/self/exe", os.Args, env)
}

// mountCgroups replaces the host's cgroup file systems at /sys/fs/cgroup
// (in rootfs mode, the empty directory of the fresh sysfs) by the same
// ones seen from this cgroup namespace: the sandbox's cgroups as roots.
func mountCgroups(l cgroupLayout) error {
	for range 8 { // detach the host's (there may be mounts over mounts)
		if unix.Unmount(cgroupDir, unix.MNT_DETACH) != nil {
			break
		}
	}
	if l.Tmpfs != nil {
		if err := unix.Mount("tmpfs", cgroupDir, "tmpfs", l.Tmpfs.Flags&^unix.MS_RDONLY, l.Tmpfs.Data); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", cgroupDir, err)
		}
		for _, m := range l.Mounts {
			if err := os.Mkdir(m.Point, 0o755); err != nil && !errors.Is(err, fs.ErrExist) { //nolint:gosec // mount points, as on the host
				return err
			}
		}
		for name, target := range l.Links {
			if err := os.Symlink(target, filepath.Join(cgroupDir, name)); err != nil {
				return err
			}
		}
	}
	for _, m := range l.Mounts {
		if err := unix.Mount(m.FSType, m.Point, m.FSType, m.Flags, m.Data); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", m.FSType, m.Data, m.Point, err)
		}
	}
	if l.Tmpfs != nil && l.Tmpfs.Flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", cgroupDir, "", unix.MS_REMOUNT|unix.MS_BIND|l.Tmpfs.Flags, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", cgroupDir, err)
		}
	}
	return nil
}
