package phpfpm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// The tests that start php-fpm create users and write /etc and /run: each
// runs in a sandbox of its own (sandbox.Run), with the real php-fpm8.2.
func TestMain(m *testing.M) { os.Exit(sandbox.Main(m)) }

const runDir = "/run/wcp360/php"

func newManager(t testing.TB, mod func(*phpfpm.Options)) *phpfpm.Manager {
	t.Helper()
	snaps, err := snapshot.New(snapshot.Options{Dir: "/var/lib/wcp360/snapshots"})
	if err != nil {
		t.Fatal(err)
	}
	opts := phpfpm.Options{
		Snapshots: snaps, RestartDelay: 100 * time.Millisecond, Clock: time.Now,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&opts)
	}
	m, err := phpfpm.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// probePHP reports what a script sees, as JSON.
const probePHP = `<?php
header('Content-Type: application/json');
$errs = [];
set_error_handler(function ($no, $msg) use (&$errs) { $errs[] = $msg; return true; });
$passwd = file_get_contents('/etc/passwd');
restore_error_handler();
echo json_encode([
	'euid' => posix_geteuid(),
	'pid' => getmypid(),
	'memory_limit' => ini_get('memory_limit'),
	'max_execution_time' => ini_get('max_execution_time'),
	'open_basedir' => ini_get('open_basedir'),
	'session_save_path' => ini_get('session.save_path'),
	'upload_tmp_dir' => ini_get('upload_tmp_dir'),
	'sys_temp_dir' => sys_get_temp_dir(),
	'timezone' => ini_get('date.timezone'),
	'passwd_read' => $passwd !== false,
	'passwd_error' => implode(' | ', $errs),
	'raise_memory' => ini_set('memory_limit', '1G'),
]);
`

type phpInfo struct {
	EUID             int    `json:"euid"`
	PID              int    `json:"pid"`
	MemoryLimit      string `json:"memory_limit"`
	MaxExecutionTime string `json:"max_execution_time"`
	OpenBasedir      string `json:"open_basedir"`
	SessionSavePath  string `json:"session_save_path"`
	UploadTmpDir     string `json:"upload_tmp_dir"`
	SysTempDir       string `json:"sys_temp_dir"`
	Timezone         string `json:"timezone"`
	PasswdRead       bool   `json:"passwd_read"`
	PasswdError      string `json:"passwd_error"`
	RaiseMemory      any    `json:"raise_memory"`
}

// newTenant creates a Linux user and the home layout of internal/host/tenant,
// with the probe script, and returns its pool.
func newTenant(t testing.TB, name string, uid int) phpfpm.Pool {
	t.Helper()
	home := filepath.Join("/srv/www", name)
	mustRun(t, "useradd", "-U", "-u", strconv.Itoa(uid), "-d", home, "-M", "-s", "/usr/sbin/nologin", name)
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []struct {
		rel       string
		rootOwned bool
		mode      os.FileMode
	}{{"", true, 0o750}, {"domains", false, 0o750}, {"logs", true, 0o750}, {"tmp", false, 0o700},
		{"php", true, 0o750}, {"php/sessions", false, 0o700}} {
		p := filepath.Join(home, d.rel)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		owner := uid
		if d.rootOwned {
			owner = 0
		}
		if err := os.Chown(p, owner, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(home, "domains", "probe.php")
	if err := os.WriteFile(script, []byte(probePHP), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(script, uid, gid); err != nil {
		t.Fatal(err)
	}
	return phpfpm.Pool{Tenant: name, UID: uid, GID: gid, Home: home, Version: "8.2",
		MemoryLimit: 64 << 20, IdleTimeout: time.Minute, INI: map[string]string{"date.timezone": "Europe/Paris"}}
}

func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := run(nil, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return out
}

func run(cred *syscall.Credential, name string, args ...string) (string, error) {
	path, err := cmdrun.LookPath(name, "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	if err != nil {
		return "", err
	}
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: path, Args: args, Credential: cred, Timeout: 30 * time.Second})
	return strings.TrimSpace(string(out)), err
}

// probe runs the probe script through the pool's socket.
func probe(t testing.TB, m *phpfpm.Manager, p phpfpm.Pool) phpInfo {
	t.Helper()
	info, err := tryProbe(m, p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func tryProbe(m *phpfpm.Manager, p phpfpm.Pool) (phpInfo, error) {
	var info phpInfo
	resp, err := fcgiGet(m.Socket(p.Tenant, p.Version), filepath.Join(p.Home, "domains", "probe.php"), 10*time.Second)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(resp.Body), &info); err != nil {
		return info, fmt.Errorf("probe answered %q (stderr %q): %w", resp.Body, resp.Stderr, err)
	}
	return info, nil
}

// master is the pid of the pool's master from its pid file, and its start
// time (clock ticks after boot).
func master(t testing.TB, m *phpfpm.Manager, p phpfpm.Pool) (pid int, start uint64) {
	t.Helper()
	pidFile := strings.TrimSuffix(m.Socket(p.Tenant, p.Version), ".sock") + ".pid"
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	start, ok := startTime(pid)
	if !ok {
		t.Fatalf("master %d (from %s) does not run", pid, pidFile)
	}
	return pid, start
}

// startTime is field 22 of /proc/<pid>/stat; false when the process is
// gone or a zombie.
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	st, _ := strconv.ParseUint(f[19], 10, 64)
	return st, true
}

// statField is field n (1-based after the command: 1 state, 2 ppid, 3
// pgrp, 4 session) of /proc/<pid>/stat.
func statField(pid, n int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))[n-1]
}

func alive(pid int) bool { _, ok := startTime(pid); return ok }

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			out = append(out, c)
		}
	}
	return out
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustApply(t testing.TB, m *phpfpm.Manager, p phpfpm.Pool) {
	t.Helper()
	if err := m.Apply(context.Background(), p); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustConverged(t testing.TB, m *phpfpm.Manager, p phpfpm.Pool) {
	t.Helper()
	ds, err := m.Observe(context.Background(), p)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	if len(ds) > 0 {
		t.Fatalf("Observe after Apply: %v", ds)
	}
}

func mtime(t testing.TB, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}
