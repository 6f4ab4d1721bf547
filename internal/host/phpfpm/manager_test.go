package phpfpm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/sandbox"
	"golang.org/x/sys/unix"
)

func TestServesAsTenant(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	if ds, err := m.Observe(t.Context(), p); err != nil || len(ds) == 0 {
		t.Fatalf("Observe before Apply: %v, %v; want differences", ds, err)
	}
	mustApply(t, m, p)
	mustConverged(t, m, p)

	// The socket: only the tenant and nginx.
	sock := m.Socket("acme", "8.2")
	if sock != runDir+"/acme-8.2.sock" {
		t.Errorf("Socket = %s", sock)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK || st.Mode&0o7777 != 0o660 || int(st.Uid) != p.UID || st.Gid != 33 {
		t.Errorf("socket mode %o owner %d:%d, want socket 0660 %d:33 (acme:www-data)", st.Mode, st.Uid, st.Gid, p.UID)
	}
	for path, want := range map[string]os.FileMode{
		runDir: os.ModeDir | 0o711, "/etc/wcp360/php-fpm": os.ModeDir | 0o750,
		"/etc/wcp360/php-fpm/acme-8.2.conf": 0o640, "/etc/wcp360/php-fpm/acme-8.2.pool.conf": 0o640,
		"/srv/www/acme/logs/php-fpm-8.2.log": 0o640,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	// A request runs as the tenant, with the pool's limits.
	info := probe(t, m, p)
	switch {
	case info.EUID != p.UID:
		t.Errorf("PHP runs as uid %d, want %d", info.EUID, p.UID)
	case info.MemoryLimit != "64M" || info.MaxExecutionTime != "30" || info.Timezone != "Europe/Paris":
		t.Errorf("memory_limit %q, max_execution_time %q, date.timezone %q; want 64M, 30, Europe/Paris",
			info.MemoryLimit, info.MaxExecutionTime, info.Timezone)
	case info.RaiseMemory != false:
		t.Errorf("ini_set(memory_limit) returned %v: a script can raise its limit", info.RaiseMemory)
	case info.OpenBasedir != "/srv/www/acme/:/dev/urandom":
		t.Errorf("open_basedir %q", info.OpenBasedir)
	case info.SessionSavePath != "/srv/www/acme/php/sessions" || info.UploadTmpDir != "/srv/www/acme/tmp" || info.SysTempDir != "/srv/www/acme/tmp":
		t.Errorf("sessions %q, uploads %q, temp %q", info.SessionSavePath, info.UploadTmpDir, info.SysTempDir)
	case info.PasswdRead || !strings.Contains(info.PasswdError, "open_basedir restriction"):
		t.Errorf("/etc/passwd read %v (%q): open_basedir does not hold", info.PasswdRead, info.PasswdError)
	}
	mpid, _ := master(t, m, p)
	if sid := statField(mpid, 3); sid != strconv.Itoa(mpid) {
		t.Errorf("master %d is in session %s, want a session of its own (setsid)", mpid, sid)
	}
	if !slices.Contains(children(mpid), info.PID) {
		t.Errorf("worker %d is not a child of master %d (children %v)", info.PID, mpid, children(mpid))
	}
}

func TestSocketOnlyForTenantAndWebServer(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	acme := newTenant(t, "acme", 20000)
	other := newTenant(t, "other", 20001)
	mustApply(t, m, acme)
	connect := `exit(@stream_socket_client("unix://` + m.Socket("acme", "8.2") + `") ? 0 : 3);`
	for _, c := range []struct {
		who      string
		uid, gid uint32
		ok       bool
	}{{"acme", uint32(acme.UID), uint32(acme.GID), true}, {"www-data", 33, 33, true}, {"other", uint32(other.UID), uint32(other.GID), false}} {
		_, err := run(&syscall.Credential{Uid: c.uid, Gid: c.gid}, "php8.2", "-n", "-r", connect)
		if (err == nil) != c.ok {
			t.Errorf("%s connects to acme's socket: %v, want %v", c.who, err == nil, c.ok)
		}
	}
}

func TestApplyAgainChangesNothingAndReloadIsGraceful(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m, p)
	pid, start := master(t, m, p)
	worker := probe(t, m, p).PID
	conf, pool := "/etc/wcp360/php-fpm/acme-8.2.conf", "/etc/wcp360/php-fpm/acme-8.2.pool.conf"
	confTime, poolTime := mtime(t, conf), mtime(t, pool)
	log, _ := os.ReadFile("/srv/www/acme/logs/php-fpm-8.2.log")
	time.Sleep(20 * time.Millisecond) // a rewrite would show in the mtimes

	// Again: no write, no signal.
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if pid2, start2 := master(t, m, p); pid2 != pid || start2 != start {
		t.Errorf("master %d (start %d) became %d (start %d)", pid, start, pid2, start2)
	}
	if !mtime(t, conf).Equal(confTime) || !mtime(t, pool).Equal(poolTime) {
		t.Error("config rewritten although nothing changed")
	}
	if log2, _ := os.ReadFile("/srv/www/acme/logs/php-fpm-8.2.log"); string(log2) != string(log) {
		t.Errorf("the master logged something: %q", strings.TrimPrefix(string(log2), string(log)))
	}
	if w := probe(t, m, p).PID; w != worker {
		t.Errorf("worker %d replaced by %d: the master reloaded", worker, w)
	}

	// A change: graceful reload, same master, new workers.
	p.MemoryLimit = 96 << 20
	if ds, _ := m.Observe(t.Context(), p); len(ds) == 0 {
		t.Fatal("Observe sees no difference after a spec change")
	}
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if pid2, start2 := master(t, m, p); pid2 != pid || start2 != start {
		t.Errorf("master %d (start %d) became %d (start %d): restarted, not reloaded", pid, start, pid2, start2)
	}
	info := probe(t, m, p)
	if info.MemoryLimit != "96M" {
		t.Errorf("memory_limit %s after reload, want 96M", info.MemoryLimit)
	}
	if info.PID == worker || alive(worker) {
		t.Errorf("worker %d still serves after the reload", worker)
	}
}

func TestRejectedConfigIsRestored(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m, p)
	pid, start := master(t, m, p)
	pool := "/etc/wcp360/php-fpm/acme-8.2.pool.conf"
	before, _ := os.ReadFile(pool)

	// Allowed characters, but not an expression php-fpm's INI parser takes.
	bad := p
	bad.INI = map[string]string{"error_reporting": "E_ALL & ("}
	err := m.Apply(t.Context(), bad)
	var ce *phpfpm.ConfigError
	if !errors.Is(err, phpfpm.ErrConfigRejected) || !errors.As(err, &ce) {
		t.Fatalf("Apply of a bad config: %v, want a ConfigError", err)
	}
	if !strings.Contains(ce.Message, "syntax error") || ce.Snapshot == "" {
		t.Errorf("ConfigError without php-fpm's message or snapshot: %v", err)
	}
	t.Logf("error: %v", err)
	if after, _ := os.ReadFile(pool); string(after) != string(before) {
		t.Errorf("pool config not restored:\n%s", after)
	}
	if pid2, start2 := master(t, m, p); pid2 != pid || start2 != start {
		t.Errorf("master %d became %d", pid, pid2)
	}
	if info := probe(t, m, p); info.MemoryLimit != "64M" {
		t.Errorf("memory_limit %s, want the old config's 64M", info.MemoryLimit)
	}
	mustConverged(t, m, p)
}

func TestDriftIsReportedAndRepaired(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m, p)
	pool := "/etc/wcp360/php-fpm/acme-8.2.pool.conf"
	b, _ := os.ReadFile(pool)
	if err := os.WriteFile(pool, []byte(strings.Replace(string(b), "memory_limit] = 64M", "memory_limit] = 1G", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pool, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(runDir, "acme-8.2.sock"), 0o666); err != nil {
		t.Fatal(err)
	}
	ds, err := m.Observe(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, d := range ds {
		fields = append(fields, d.Field)
	}
	if want := []string{"config.pool.content", "config.pool.mode", "socket.mode"}; !slices.Equal(fields, want) {
		t.Errorf("Observe: %v, want fields %v", ds, want)
	}
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if info := probe(t, m, p); info.MemoryLimit != "64M" {
		t.Errorf("memory_limit %s after the repair, want 64M", info.MemoryLimit)
	}
}

func TestMasterKilledIsRestarted(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m, p)
	pid, _ := master(t, m, p)
	worker := probe(t, m, p).PID // a worker the dead master leaves behind
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new master", 10*time.Second, func() bool {
		_, err := tryProbe(m, p)
		pid2 := 0
		if b, rerr := os.ReadFile(filepath.Join(runDir, "acme-8.2.pid")); rerr == nil {
			pid2, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return err == nil && pid2 != pid && alive(pid2)
	})
	if alive(worker) {
		t.Errorf("worker %d of the killed master still runs", worker)
	}
	mustConverged(t, m, p)
}

func TestAdoptAfterWcpdRestart(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m1 := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m1, p)
	pid, start := master(t, m1, p)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatal("Close stopped the master")
	}
	if err := m1.Apply(t.Context(), p); !errors.Is(err, phpfpm.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}

	m2 := newManager(t, nil)
	if err := m2.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustConverged(t, m2, p)
	mustApply(t, m2, p)
	if pid2, start2 := master(t, m2, p); pid2 != pid || start2 != start {
		t.Fatalf("master %d (start %d) became %d (start %d): not adopted", pid, start, pid2, start2)
	}
	// The new Manager supervises it.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the adopted master's replacement", 10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(runDir, "acme-8.2.pid"))
		if err != nil {
			return false
		}
		pid2, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		_, perr := tryProbe(m2, p)
		return pid2 != pid && alive(pid2) && perr == nil
	})
	mustConverged(t, m2, p)
}

func TestRemove(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m, p)
	pid, _ := master(t, m, p)
	worker := probe(t, m, p).PID
	if err := m.Remove(t.Context(), "acme", "8.2"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || alive(worker) {
		t.Errorf("master %d alive %v, worker %d alive %v after Remove", pid, alive(pid), worker, alive(worker))
	}
	for _, f := range []string{"/etc/wcp360/php-fpm/acme-8.2.conf", "/etc/wcp360/php-fpm/acme-8.2.pool.conf",
		runDir + "/acme-8.2.sock", runDir + "/acme-8.2.pid", runDir + "/acme-8.2.loaded"} {
		if _, err := os.Lstat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Remove (%v)", f, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // more than the restart delay: nothing comes back
	if _, err := os.Lstat(runDir + "/acme-8.2.pid"); !errors.Is(err, os.ErrNotExist) {
		t.Error("the supervisor restarted a removed master")
	}
	if err := m.Remove(t.Context(), "acme", "8.2"); err != nil {
		t.Errorf("Remove again: %v", err)
	}
	ds, err := m.Observe(t.Context(), p)
	if err != nil || len(ds) != 4 {
		t.Errorf("Observe after Remove: %v %v, want both configs, the master and the socket missing", ds, err)
	}
	// And back.
	mustApply(t, m, p)
	mustConverged(t, m, p)
}

// Two versions of one tenant are two masters. Only PHP 8.2 is installed
// here: "8.1" is the same binary under another name, which is all this
// package can tell apart.
func TestTwoVersionsTwoMasters(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	bin := "/run/wcp360-test/php-fpm8.1"
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/sbin/php-fpm8.2", bin); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, func(o *phpfpm.Options) {
		o.Binaries = map[string]string{"8.2": "/usr/sbin/php-fpm8.2", "8.1": bin}
	})
	p82 := newTenant(t, "acme", 20000)
	p81 := p82
	p81.Version = "8.1"
	p81.MemoryLimit = 32 << 20
	mustApply(t, m, p82)
	mustApply(t, m, p81)
	mustConverged(t, m, p82)
	mustConverged(t, m, p81)
	pid82, _ := master(t, m, p82)
	pid81, _ := master(t, m, p81)
	if pid82 == pid81 {
		t.Fatal("one master for two versions")
	}
	if a, b := probe(t, m, p82), probe(t, m, p81); a.MemoryLimit != "64M" || b.MemoryLimit != "32M" {
		t.Errorf("memory_limit %s and %s, want 64M and 32M", a.MemoryLimit, b.MemoryLimit)
	}
	if err := m.Remove(t.Context(), "acme", "8.1"); err != nil {
		t.Fatal(err)
	}
	if alive(pid81) || !alive(pid82) {
		t.Errorf("after removing 8.1: 8.1 alive %v, 8.2 alive %v", alive(pid81), alive(pid82))
	}
	mustConverged(t, m, p82)
}

func TestApplyWithoutTenantHome(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m := newManager(t, nil)
	p := phpfpm.Pool{Tenant: "ghost", UID: 20000, GID: 20000, Home: "/srv/www/ghost"}
	if err := m.Apply(context.Background(), p); err == nil {
		t.Fatal("Apply without a home succeeded")
	}
	if _, err := os.Lstat("/etc/wcp360/php-fpm/ghost-8.2.conf"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config written for a tenant without a home (%v)", err)
	}
}

// A master that died while wcpd was down is not adopted; Apply starts a new
// one after killing the workers the dead one left on the socket.
func TestMasterDiedWhileWcpdWasDown(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	m1 := newManager(t, nil)
	p := newTenant(t, "acme", 20000)
	mustApply(t, m1, p)
	pid, _ := master(t, m1, p)
	worker := probe(t, m1, p).PID
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the master to die", 5*time.Second, func() bool { return !alive(pid) })
	if !alive(worker) {
		t.Fatal("the worker died with its master: this test tests nothing")
	}

	m2 := newManager(t, nil)
	if err := m2.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds, err := m2.Observe(t.Context(), p)
	// The socket died with the master: wcpd held it no more while it was down.
	if err != nil || len(ds) != 2 || ds[0].Field != "socket.held" || ds[1].Field != "master" {
		t.Fatalf("Observe: %v, %v; want the socket not held and the master not running", ds, err)
	}
	mustApply(t, m2, p)
	mustConverged(t, m2, p)
	if alive(worker) {
		t.Errorf("worker %d of the dead master still runs", worker)
	}
	if pid2, _ := master(t, m2, p); pid2 == pid {
		t.Error("same pid")
	}
	probe(t, m2, p)
}

// The cgroup seam, without touching the host's cgroup tree (/sys is the
// host's, even in the sandbox): a failing StartIn stops the start, and a
// directory that is not a cgroup makes clone3(CLONE_INTO_CGROUP) refuse,
// which shows the descriptor reaches it. Being born in a real cgroup is
// for the cgroup driver's tests (kernel VM).
func TestStartInSeam(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	p := newTenant(t, "acme", 20000)
	boom := errors.New("no cgroup for you")
	m := newManager(t, func(o *phpfpm.Options) {
		o.StartIn = func(string, func(int) error) error { return boom }
	})
	if err := m.Apply(t.Context(), p); !errors.Is(err, boom) {
		t.Fatalf("Apply with a failing StartIn: %v, want %v", err, boom)
	}
	_ = m.Close()
	notCgroup := t.TempDir()
	m = newManager(t, func(o *phpfpm.Options) {
		o.StartIn = func(_ string, start func(int) error) error {
			fd, err := unix.Open(notCgroup, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd) //nolint:errcheck // read only
			return start(fd)
		}
	})
	err := m.Apply(t.Context(), p)
	if err == nil {
		t.Fatal("Apply started a master into a directory that is not a cgroup")
	}
	t.Logf("as expected: %v", err)
	if _, err := os.Lstat(filepath.Join(runDir, "acme-8.2.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a master started anyway (%v)", err)
	}
}

// A package upgrade replaces the binary under a running master: Observe
// says so and Apply reloads (php-fpm re-executes the new binary, same pid).
// A master of another binary altogether is replaced.
func TestBinaryReplaced(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	dir := "/run/wcp360-test"
	bin := filepath.Join(dir, "php-fpm8.2")
	install := func() {
		b, err := os.ReadFile("/usr/sbin/php-fpm8.2")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin+".new", b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(bin+".new", bin); err != nil {
			t.Fatal(err)
		}
	}
	install()
	p := newTenant(t, "acme", 20000)

	// Started from /usr/sbin; now the Manager's 8.2 is the copy.
	m1 := newManager(t, nil)
	mustApply(t, m1, p)
	pid, _ := master(t, m1, p)
	_ = m1.Close()
	m := newManager(t, func(o *phpfpm.Options) { o.Binaries = map[string]string{"8.2": bin} })
	if err := m.Adopt(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds, err := m.Observe(t.Context(), p)
	if err != nil || len(ds) != 1 || ds[0].Field != "master.binary" {
		t.Fatalf("Observe: %v %v, want master.binary", ds, err)
	}
	mustApply(t, m, p)
	mustConverged(t, m, p)
	pid2, start2 := master(t, m, p)
	if pid2 == pid || alive(pid) {
		t.Fatalf("master of the other binary (%d) not replaced", pid)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid2)); exe != bin {
		t.Errorf("new master runs %s, want %s", exe, bin)
	}

	// The upgrade.
	install()
	ds, err = m.Observe(t.Context(), p)
	if err != nil || len(ds) != 1 || ds[0].Field != "master.binary" {
		t.Fatalf("Observe after the upgrade: %v %v, want master.binary", ds, err)
	}
	t.Logf("after the upgrade: %v", ds)
	mustApply(t, m, p)
	mustConverged(t, m, p)
	if pid3, start3 := master(t, m, p); pid3 != pid2 || start3 != start2 {
		t.Errorf("master %d restarted (%d) instead of reloaded", pid2, pid3)
	}
	probe(t, m, p)
}
