package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// Helper-process modes: the test binary re-executed by helperCmd to play
// another program holding or probing a classic fcntl lock, exactly the
// kind glibc's lckpwdf takes.
const (
	helperEnv     = "WCP_USERS_TEST_HELPER"
	helperPathEnv = "WCP_USERS_TEST_HELPER_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperPathEnv)))
	}
	os.Exit(m.Run())
}

// runHelper: "hold" takes a classic F_SETLKW write lock on path (as
// lckpwdf does), prints "locked" and sleeps until killed; "try" tries
// F_SETLK once and prints "free" or "busy".
func runHelper(mode, path string) int {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Println(err)
		return 2
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	switch mode {
	case "hold":
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
			fmt.Println(err)
			return 2
		}
		fmt.Println("locked")
		time.Sleep(time.Hour)
	case "try":
		err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
		switch {
		case err == nil:
			fmt.Println("free")
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EACCES):
			fmt.Println("busy")
		default:
			fmt.Println(err)
			return 2
		}
	}
	return 0
}

func helperCmd(t *testing.T, mode, path string) cmdrun.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return cmdrun.Cmd{Path: exe, Args: []string{"-test.run=^$"}, Env: []string{helperEnv + "=" + mode, helperPathEnv + "=" + path}}
}

// watchWriter collects output and closes seen when want appears in it.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newWatchWriter(want string) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startHolder starts a helper process holding a classic lock on path and
// returns once it holds it; the process is killed at cleanup.
func startHolder(t *testing.T, path string) *cmdrun.Process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := newWatchWriter("locked")
	p, err := cmdrun.Start(ctx, helperCmd(t, "hold", path), w)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = p.Wait() })
	select {
	case <-w.seen:
	case <-p.Done():
		t.Fatalf("lock holder exited: %s", w.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("lock holder did not lock: %s", w.String())
	}
	return p
}

// probeClassicLock reports what another process trying lckpwdf's lock on
// path would get right now: "free" or "busy".
func probeClassicLock(t *testing.T, path string) string {
	t.Helper()
	out, err := cmdrun.Run(context.Background(), helperCmd(t, "try", path))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// realFiles are copied from the host's /etc into test roots (read only,
// never written).
var realFiles = []string{"passwd", "shadow", "group", "gshadow", "login.defs"}

// newRoot makes a temporary root whose etc holds copies of the host's
// files, with their modes and owners.
func newRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: copies /etc/shadow and preserves owners")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range realFiles {
		copyFile(t, filepath.Join("/etc", name), filepath.Join(root, "etc", name))
	}
	return root
}

// newRootFrom makes a temporary root whose etc holds the files of dir,
// with shadow files 0640 and the rest 0644.
func newRootFrom(t *testing.T, dir string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains(e.Name(), "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(root, "etc", e.Name()), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if err := os.Chown(dst, int(sys.Uid), int(sys.Gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func newDB(root string) *DB {
	return &DB{Root: root, LockTimeout: 5 * time.Second, Now: time.Now}
}

func readEtc(t *testing.T, root, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// etcListing is the files in root/etc with inode, size and mtime, to see
// that nothing was written. Lock files (and so the directory's own mtime)
// come and go with every transaction and are left out.
func etcListing(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(filepath.Join(root, "etc"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(p, ".lock") {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		lines = append(lines, fmt.Sprintf("%s ino=%d size=%d mtime=%d.%09d mode=%v", p, sys.Ino, sys.Size, sys.Mtim.Sec, sys.Mtim.Nsec, st.Mode()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// entryNames counts the entry names of a file.
func entryNames(t *testing.T, root string, k fileKind) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, r := range parseRecords(k, readEtc(t, root, k.String())) {
		if r.entry {
			n[r.name()]++
		}
	}
	return n
}

// program finds a shadow-utils program.
func program(t *testing.T, name string) string {
	t.Helper()
	p, err := cmdrun.LookPath(name, "/usr/sbin", "/sbin")
	if err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// toolArgs are the arguments that point a shadow-utils program at root:
// none for "/", -R (chroot; the programs then use lckpwdf and the per-file
// locks exactly as on a live system) or --prefix (per-file locks only).
func toolArgs(root string, prefix bool) []string {
	switch {
	case root == "/":
		return nil
	case prefix:
		return []string{"--prefix", root}
	default:
		return []string{"-R", root}
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: program(t, name), Args: args, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// checkPwck runs pwck and grpck read-only on root and fails the test when
// they report anything (or, for "/", anything new since baseline).
func checkPwck(t *testing.T, root string, baseline map[string]string) {
	t.Helper()
	for form, out := range pwckReports(t, root) {
		if form == grpckFileArgs {
			// Judges members by the host's users; see pwckReports.
			continue
		}
		if root == "/" {
			if extra := newLines(baseline[form], out); extra != "" {
				t.Errorf("%s reports new problems:\n%s", form, extra)
			}
			continue
		}
		if out != "" {
			t.Errorf("%s reports:\n%s", form, out)
		}
	}
}

// pwckReports runs pwck and grpck read-only; a clean run is "". For a
// temporary root it runs two forms of each:
//
//   - with the files as arguments and -q: pwck then looks groups up in the
//     host's NSS and homes on the host's filesystem, so without -q the
//     warnings about them would fail even on copies of the host's files.
//     grpck so run reports members that are not users of the host, even
//     with -q, so checkPwck only uses that form's pwck half;
//   - chrooted with -R root and without -q, which checks everything inside
//     the root; the home directories and shells of every user are created
//     inside root first.
//
// For "/" (a sandbox) it runs pwck -r -q and grpck -r -q.
const grpckFileArgs = "grpck -r -q group gshadow"

func pwckReports(t *testing.T, root string) map[string]string {
	t.Helper()
	forms := map[string][]string{}
	if root == "/" {
		forms["pwck -r -q"] = []string{"pwck", "-r", "-q"}
		forms["grpck -r -q"] = []string{"grpck", "-r", "-q"}
	} else {
		etc := filepath.Join(root, "etc")
		forms["pwck -r -q passwd shadow"] = []string{"pwck", "-r", "-q", filepath.Join(etc, "passwd"), filepath.Join(etc, "shadow")}
		forms[grpckFileArgs] = []string{"grpck", "-r", "-q", filepath.Join(etc, "group"), filepath.Join(etc, "gshadow")}
		forms["pwck -r -R root"] = []string{"pwck", "-r", "-R", root}
		forms["grpck -r -R root"] = []string{"grpck", "-r", "-R", root}
		prepareChroot(t, root)
	}
	out := map[string]string{}
	for form, argv := range forms {
		b, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: program(t, argv[0]), Args: argv[1:], Timeout: time.Minute})
		report := strings.TrimSpace(string(b))
		if err != nil && report == "" {
			report = err.Error()
		}
		out[form] = report
	}
	return out
}

// prepareChroot creates inside root the home directory and the shell of
// every user, which pwck -R checks there.
func prepareChroot(t *testing.T, root string) {
	t.Helper()
	for _, u := range entriesOf(t, root) {
		if u.Home != "" {
			if err := os.MkdirAll(filepath.Join(root, u.Home), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if u.Shell != "" {
			sh := filepath.Join(root, u.Shell)
			if err := os.MkdirAll(filepath.Dir(sh), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sh, nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func newLines(before, after string) string {
	old := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		old[l] = true
	}
	var extra []string
	for _, l := range strings.Split(after, "\n") {
		if !old[l] {
			extra = append(extra, l)
		}
	}
	return strings.Join(extra, "\n")
}

func entriesOf(t *testing.T, root string) []User {
	t.Helper()
	var out []User
	for _, r := range parseRecords(passwdFile, readEtc(t, root, "passwd")) {
		if r.valid() {
			out = append(out, userOf(r.fields))
		}
	}
	return out
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	p, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: program(t, "true")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Wait()
	return p.Pid()
}

func writeLock(t *testing.T, path string, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pidContent(pid int) string { return strconv.Itoa(pid) + "\x00" }

// noLockFiles fails the test when root/etc holds <file>.lock or
// <file>.<pid> files (.pwd.lock stays, as with glibc).
func noLockFiles(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "etc"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".lock") && n != ".pwd.lock" {
			t.Errorf("lock file left: %s", n)
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(n), ".")); err == nil || strings.Contains(n, ".wcp360-") {
			t.Errorf("temporary file left: %s", n)
		}
	}
}
