package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotCatchesChanges(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	write := func(n, content string) {
		t.Helper()
		if err := os.WriteFile(path(n), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"passwd", "shadow", "group", "same-by-rename"} {
		write(n, "root:x:0:0:root:/root:/bin/bash\n"+n+"\n")
	}
	files := []string{path("passwd"), path("shadow"), path("group"), path("gshadow"), path("same-by-rename")}
	before := hashFiles(files)
	if got := compareSnapshots(before, hashFiles(files)); len(got) != 0 {
		t.Fatalf("no change, yet changed = %v", got)
	}

	write("passwd", "root:x:0:0:root:/root:/bin/bash\npasswd\nintruder:x:1000:1000::/:/bin/sh\n") // content
	if err := os.Remove(path("shadow")); err != nil {                                             // removal
		t.Fatal(err)
	}
	write("gshadow", "new\n") // creation
	// A byte-identical rewrite by rename is no change.
	write("tmp", "root:x:0:0:root:/root:/bin/bash\nsame-by-rename\n")
	if err := os.Rename(path("tmp"), path("same-by-rename")); err != nil {
		t.Fatal(err)
	}
	got := compareSnapshots(before, hashFiles(files))
	want := []string{path("gshadow"), path("passwd"), path("shadow")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("changed (-want +got):\n%s", diff)
	}
	if got := compareSnapshots(map[string]string{"a": "1"}, map[string]string{"b": "1"}); !cmp.Equal(got, []string{"a", "b"}) {
		t.Fatalf("keys only on one side: %v", got)
	}
}

func TestHostsFile(t *testing.T) {
	got := hostsFile(map[string]string{"b.test": "10.0.0.2", "a.test": "fd00::1"})
	want := "127.0.0.1 localhost wcp-sandbox\n::1 localhost\nfd00::1 a.test\n10.0.0.2 b.test\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"zero", Options{}, ""},
		{"full", Options{Binds: []Bind{{Source: "/a", Target: "/run/a", ReadOnly: true}},
			Hosts: map[string]string{"db.example": "10.0.0.1"}, Env: []string{"A=1", "B="}}, ""},
		{"relative source", Options{Binds: []Bind{{Source: "a", Target: "/run/a"}}}, "absolute"},
		{"relative target", Options{Binds: []Bind{{Source: "/a", Target: "run/a"}}}, "absolute"},
		{"bind over /", Options{Binds: []Bind{{Source: "/a", Target: "/"}}}, "cannot bind over"},
		{"bind over /proc", Options{Binds: []Bind{{Source: "/a", Target: "/proc/1"}}}, "cannot bind over"},
		{"bad host name", Options{Hosts: map[string]string{"a b": "10.0.0.1"}}, "not a host name"},
		{"bad ip", Options{Hosts: map[string]string{"a": "10.0.0"}}, "host a"},
		{"env without =", Options{Env: []string{"A"}}, "KEY=VALUE"},
		{"reserved env", Options{Env: []string{envSetup + "={}"}}, "reserved"},
		{"rootfs", Options{RootFS: "/var/cache/wcp360/rootfs/trixie-0123"}, ""},
		{"relative rootfs", Options{RootFS: "rootfs"}, "rootfs"},
		{"rootfs with a comma", Options{RootFS: "/a,upperdir=/b"}, "rootfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.err)
			}
		})
	}
}

func TestParseCLI(t *testing.T) {
	tests := []struct {
		name string
		args []string
		opts Options
		argv []string
		err  bool
	}{
		{"command only", []string{"--", "sh", "-c", "true"}, Options{}, []string{"sh", "-c", "true"}, false},
		{"without --", []string{"true", "--bind", "x"}, Options{}, []string{"true", "--bind", "x"}, false},
		{"all flags", []string{"--bind", "/a:/run/a", "--bind=/b:/run/b:ro", "--host", "db.test=10.0.0.1",
			"--env", "A=1", "--", "wcpd", "--serve"},
			Options{
				Binds: []Bind{{Source: "/a", Target: "/run/a"}, {Source: "/b", Target: "/run/b", ReadOnly: true}},
				Hosts: map[string]string{"db.test": "10.0.0.1"},
				Env:   []string{"A=1"},
			}, []string{"wcpd", "--serve"}, false},
		{"rootfs", []string{"--rootfs", "/srv/trixie", "--", "/bin/sh"}, Options{RootFS: "/srv/trixie"}, []string{"/bin/sh"}, false},
		{"host cgroups", []string{"--host-cgroups", "--", "true"}, Options{HostCgroups: true}, []string{"true"}, false},
		{"no command", []string{"--host", "a=10.0.0.1"}, Options{}, nil, true},
		{"bad bind", []string{"--bind", "/a", "--", "true"}, Options{}, nil, true},
		{"bad bind mode", []string{"--bind", "/a:/b:rw", "--", "true"}, Options{}, nil, true},
		{"bad host", []string{"--host", "a", "--", "true"}, Options{}, nil, true},
		{"bad ip", []string{"--host", "a=b", "--", "true"}, Options{}, nil, true},
		{"unknown flag", []string{"--nope", "--", "true"}, Options{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, argv, err := parseCLI(tt.args)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error: %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.opts, opts); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.argv, argv); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
		})
	}
}

// waitProgram waits until the sandbox p runs its program: its PID 1 has a
// child.
func waitProgram(t *testing.T, p *Process) {
	t.Helper()
	for i := 0; ; i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p.Pid()))
		for _, f := range tasks {
			if b, _ := os.ReadFile(f); len(b) > 0 {
				return
			}
		}
		if i == 2000 {
			t.Fatal("the sandbox did not start its program in 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireSandbox skips (or fails, in CI) where sandboxes cannot be made.
func requireSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "not running as root")
	}
}

func TestCLI(t *testing.T) {
	requireSandbox(t)
	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"exit status and hosts", []string{"--host", "db.cli.test=10.9.8.7", "--env", "X=from-env", "--",
			"sh", "-c", "getent hosts db.cli.test; echo $X; hostname; exit 7"},
			7, "10.9.8.7        db.cli.test\nfrom-env\nwcp-sandbox\n"},
		{"stdin", []string{"--", "cat"}, 0, "piped in\n"},
		{"not found", []string{"--", "wcp-no-such-program"}, ExitNotFound, "wcp-sandbox: program wcp-no-such-program not found"},
		{"killed by a signal", []string{"--", "sh", "-c", "kill -KILL $$"}, 128 + 9, ""},
		{"usage", []string{"--bind", "x"}, 2, "wcp-sandbox: invalid value"},
		{"help", []string{"-h"}, 0, "usage: wcp-sandbox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := RunCLI(context.Background(), tt.args, strings.NewReader("piped in\n"), &out, &out)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.code, out.String())
			}
			if !strings.HasPrefix(out.String(), tt.out) {
				t.Errorf("output %q, want it to start with %q", out.String(), tt.out)
			}
		})
	}
}

func TestSignalsAndCancel(t *testing.T) {
	requireSandbox(t)
	t.Run("SIGTERM reaches the program", func(t *testing.T) {
		p, err := Start(context.Background(), Options{}, []string{"sleep", "1000"}, Stdio{})
		if err != nil {
			t.Fatal(err)
		}
		waitProgram(t, p) // a signal sent while the sandbox is set up may be lost
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code, err := p.Wait(); err != nil || code != 128+int(syscall.SIGTERM) {
			t.Fatalf("exit status %d, %v; want %d", code, err, 128+int(syscall.SIGTERM))
		}
	})
	t.Run("ending the context kills the sandbox", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p, err := Start(ctx, Options{}, []string{"sleep", "1000"}, Stdio{})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if code, err := p.Wait(); err != nil || code != 128+int(syscall.SIGKILL) {
			t.Fatalf("exit status %d, %v; want %d", code, err, 128+int(syscall.SIGKILL))
		}
	})
	t.Run("the program sees the inside marker", func(t *testing.T) {
		var out bytes.Buffer
		code, err := Exec(context.Background(), Options{}, []string{"sh", "-c", "echo $" + envInside}, Stdio{Stdout: &out})
		if err != nil || code != 0 || !strings.HasPrefix(out.String(), "mnt:[") {
			t.Fatalf("exit %d, %v, %s=%q", code, err, envInside, out.String())
		}
	})
}

func TestStartOutsideOnly(t *testing.T) {
	if Inside() {
		t.Fatal("Inside() outside a sandbox")
	}
	t.Setenv(envInside, "mnt:[1]") // a copied marker proves nothing
	if Inside() {
		t.Fatal("Inside() believes a copied environment variable")
	}
	if _, err := Start(context.Background(), Options{Binds: []Bind{{Source: "x", Target: "/y"}}}, []string{"true"}, Stdio{}); err == nil ||
		errors.Is(err, ErrUnavailable) {
		t.Fatalf("invalid options: %v", err)
	}
}
