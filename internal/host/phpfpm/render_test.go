package phpfpm

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/host/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// unitManager is a Manager for rendering and validation: nothing on the
// host is touched.
func unitManager(t *testing.T) *Manager {
	t.Helper()
	snaps, err := snapshot.New(snapshot.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Snapshots: snaps, Binaries: map[string]string{"8.2": "/usr/sbin/php-fpm8.2", "8.3": "/usr/sbin/php-fpm8.3"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func basePool() Pool {
	return Pool{Tenant: "acme", UID: 20000, GID: 20000, Home: "/srv/www/acme", Version: "8.2"}
}

func TestRenderGolden(t *testing.T) {
	m := unitManager(t)
	cases := map[string]func(p *Pool){
		"default": func(*Pool) {},
		"newest":  func(p *Pool) { p.Version = "" },
		"dynamic": func(p *Pool) {
			p.PM, p.MaxChildren, p.MemoryLimit, p.MaxExecutionTime, p.UploadMaxSize = "dynamic", 12, 512<<20, 120, 64<<20
			p.INI = map[string]string{"date.timezone": "Europe/Paris", "display_errors": "Off",
				"error_reporting": "E_ALL & ~E_DEPRECATED & ~E_STRICT", "max_input_vars": "3000"}
		},
		"static": func(p *Pool) {
			p.PM, p.MaxChildren, p.MemoryLimit, p.IdleTimeout = "static", 2, 100_000_000, time.Minute
		},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			p := basePool()
			mod(&p)
			r, err := m.render(p)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".conf.golden", r.master)
			golden(t, name+".pool.conf.golden", r.poolConf)
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-golden +rendered; go test -update rewrites it):\n%s", path, d)
	}
}

func TestPoolValidation(t *testing.T) {
	m := unitManager(t)
	cases := map[string]func(p *Pool){
		"tenant with a dot":        func(p *Pool) { p.Tenant = "a.b" },
		"tenant with a newline":    func(p *Pool) { p.Tenant = "acme\n[x]" },
		"tenant empty":             func(p *Pool) { p.Tenant = "" },
		"root uid":                 func(p *Pool) { p.UID = 0 },
		"root gid":                 func(p *Pool) { p.GID = 0 },
		"relative home":            func(p *Pool) { p.Home = "srv/www/acme" },
		"home with a colon":        func(p *Pool) { p.Home = "/srv/www/acme:/etc" },
		"home with a newline":      func(p *Pool) { p.Home = "/srv/www/acme\nuser = root" },
		"home not clean":           func(p *Pool) { p.Home = "/srv/www/../acme" },
		"home is root":             func(p *Pool) { p.Home = "/" },
		"version":                  func(p *Pool) { p.Version = "8" },
		"pm":                       func(p *Pool) { p.PM = "lazy" },
		"max children":             func(p *Pool) { p.MaxChildren = 1001 },
		"memory too small":         func(p *Pool) { p.MemoryLimit = 1 << 20 },
		"execution time":           func(p *Pool) { p.MaxExecutionTime = -1 },
		"idle timeout fraction":    func(p *Pool) { p.IdleTimeout = 1500 * time.Millisecond },
		"ini key not allowed":      func(p *Pool) { p.INI = map[string]string{"open_basedir": "/"} },
		"ini key disable":          func(p *Pool) { p.INI = map[string]string{"disable_functions": ""} },
		"ini key with bracket":     func(p *Pool) { p.INI = map[string]string{"date.timezone]": "UTC"} },
		"ini key with equals":      func(p *Pool) { p.INI = map[string]string{"a=b": "UTC"} },
		"ini value newline":        func(p *Pool) { p.INI = map[string]string{"date.timezone": "UTC\nphp_admin_value[open_basedir] = /"} },
		"ini value semicolon":      func(p *Pool) { p.INI = map[string]string{"date.timezone": "UTC ; comment"} },
		"ini value quote":          func(p *Pool) { p.INI = map[string]string{"date.timezone": `"UTC"`} },
		"ini value expansion":      func(p *Pool) { p.INI = map[string]string{"date.timezone": "${HOME}"} },
		"ini value equals":         func(p *Pool) { p.INI = map[string]string{"date.timezone": "a=b"} },
		"ini value too long":       func(p *Pool) { p.INI = map[string]string{"user_agent": strings.Repeat("a", 257)} },
		"ini value outer space":    func(p *Pool) { p.INI = map[string]string{"user_agent": " x"} },
		"post_max_size and upload": func(p *Pool) { p.UploadMaxSize = 1 << 20; p.INI = map[string]string{"post_max_size": "8M"} },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			p := basePool()
			mod(&p)
			if _, err := m.render(p); !errors.Is(err, ErrInvalidPool) {
				t.Fatalf("render: %v, want ErrInvalidPool", err)
			}
		})
	}
}

func TestVersionMissing(t *testing.T) {
	m := unitManager(t)
	p := basePool()
	p.Version = "7.4"
	_, err := m.render(p)
	if !errors.Is(err, ErrVersionMissing) {
		t.Fatalf("render: %v, want ErrVersionMissing", err)
	}
	var vm *VersionMissingError
	if !errors.As(err, &vm) || vm.Version != "7.4" || !cmp.Equal(vm.Installed, []string{"8.2", "8.3"}) {
		t.Fatalf("error %#v, want version 7.4 and installed 8.2, 8.3", vm)
	}
	if want := "PHP 7.4 is not installed (php-fpm7.4; installed: 8.2, 8.3)"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if _, err := m.Observe(t.Context(), p); !errors.Is(err, ErrVersionMissing) {
		t.Errorf("Observe: %v, want ErrVersionMissing", err)
	}
	if err := m.Apply(t.Context(), p); !errors.Is(err, ErrVersionMissing) {
		t.Errorf("Apply: %v, want ErrVersionMissing", err)
	}
}

func TestVersionsAndSocket(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"php-fpm8.2", "php-fpm8.10", "php-fpm7.4", "php-fpm", "php-fpm8.2.bak", "php8.2"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := snapshot.New(snapshot.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Snapshots: snaps, BinDir: dir, RunDir: "/run/x/php"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Versions(), []string{"7.4", "8.2", "8.10"}; !cmp.Equal(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
	if got, want := m.Socket("acme", ""), "/run/x/php/acme-8.10.sock"; got != want {
		t.Errorf("Socket(acme, \"\") = %q, want %q", got, want)
	}
	if got, want := m.Socket("acme", "7.4"), "/run/x/php/acme-7.4.sock"; got != want {
		t.Errorf("Socket(acme, 7.4) = %q, want %q", got, want)
	}
}

func TestCleanLog(t *testing.T) {
	in := "PHP:  syntax error, unexpected END_OF_LINE in Unknown on line 2\n" +
		"[26-Nov-2026 02:25:54] ERROR: Unable to include /etc/wcp360/php-fpm/acme-8.2.pool.conf from /etc/wcp360/php-fpm/acme-8.2.conf at line 11\n" +
		"[26-Nov-2026 02:25:54] ERROR: FPM initialization failed\n"
	want := "PHP:  syntax error, unexpected END_OF_LINE in Unknown on line 2; " +
		"ERROR: Unable to include /etc/wcp360/php-fpm/acme-8.2.pool.conf from /etc/wcp360/php-fpm/acme-8.2.conf at line 11"
	if got := cleanLog(in); got != want {
		t.Errorf("cleanLog:\n got %q\nwant %q", got, want)
	}
}

// FuzzRenderINI: whatever a php.ini setting is, either it is refused or
// the pool config gains exactly one line, php_admin_value[key] = value.
func FuzzRenderINI(f *testing.F) {
	for _, s := range [][2]string{
		{"date.timezone", "Europe/Paris"}, {"error_reporting", "E_ALL & ~E_NOTICE"},
		{"date.timezone", "UTC\n[evil]"}, {"open_basedir", "/"}, {"a]", "b"}, {"display_errors", "${X}"},
		{"user_agent", "a;b"}, {"session.name", "x=y"},
	} {
		f.Add(s[0], s[1])
	}
	m, err := New(Options{Snapshots: &snapshot.Store{}, Binaries: map[string]string{"8.2": "/usr/sbin/php-fpm8.2"}})
	if err != nil {
		f.Fatal(err)
	}
	plain, err := m.render(basePool())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		p := basePool()
		p.INI = map[string]string{k: v}
		r, err := m.render(p)
		if err != nil {
			if !errors.Is(err, ErrInvalidPool) {
				t.Fatalf("error %v is not ErrInvalidPool", err)
			}
			return
		}
		extra := strings.TrimPrefix(string(r.poolConf), string(plain.poolConf))
		if want := "\n; spec.php.ini\nphp_admin_value[" + k + "] = " + v + "\n"; extra != want {
			t.Fatalf("pool config gained %q, want %q", extra, want)
		}
		if !strings.HasPrefix(string(r.poolConf), string(plain.poolConf)) || string(r.master) != string(plain.master) {
			t.Fatal("an INI setting changed the rest of the config")
		}
	})
}
