//go:build cgo

package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// The tests below use the real libpam, pam_unix and shadow-utils, in a
// sandbox: its /etc is an overlay, so the users and the service file they
// create never reach the host.

// realUsers are the accounts setupHost creates, with their passwords.
var realUsers = []struct {
	name, password string
	admin          bool
}{
	{"alice", "alice-Secret-1", true},
	{"bob", "bob-Secret-2", false},
	{"carol", "carol-Secret-3", true},
	{"dave", "dave-Secret-4", true},
	{"erin", "erin-Secret-5", true},
	{"frank", "frank-Secret-6", true},
	{"grace", "grace-Secret-7", true},
	{"hank", "hank-Secret-8", true},
}

const rootPassword = "root-Secret-0"

func password(t *testing.T, name string) string {
	t.Helper()
	if name == "root" {
		return rootPassword
	}
	for _, u := range realUsers {
		if u.name == name {
			return u.password
		}
	}
	t.Fatalf("no user %s", name)
	return ""
}

// run runs a shadow-utils program; a missing one makes the environment
// unfit (Unavailable: fails under CI).
func run(t *testing.T, prog string, stdin string, args ...string) {
	t.Helper()
	path, err := cmdrun.LookPath(prog, "/usr/sbin", "/sbin")
	if err != nil {
		sandbox.Unavailable(t, err.Error())
	}
	c := cmdrun.Cmd{Path: path, Args: args, Timeout: 30 * time.Second}
	if stdin != "" {
		c.Stdin = []byte(stdin)
	}
	if _, err := cmdrun.Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// setupHost installs the service file and creates the users, in the
// sandbox.
func setupHost(t *testing.T) {
	t.Helper()
	for _, f := range []string{"/etc/pam.d/common-auth", "/etc/pam.d/common-account"} {
		if _, err := os.Stat(f); err != nil {
			sandbox.Unavailable(t, fmt.Sprintf("PAM's %s is missing (Debian's libpam-runtime): %v", f, err))
		}
	}
	if changed, err := InstallServiceFile(ServiceDir, ServiceFileOptions{}); err != nil || !changed {
		t.Fatalf("install the service file: changed %v, err %v", changed, err)
	}
	run(t, "groupadd", "", "--system", "wcp360-admin")
	var chpasswd strings.Builder
	fmt.Fprintf(&chpasswd, "root:%s\n", rootPassword)
	for _, u := range realUsers {
		args := []string{"--no-create-home", "--shell", "/usr/sbin/nologin"}
		if u.admin {
			args = append(args, "--groups", "wcp360-admin")
		}
		run(t, "useradd", "", append(args, u.name)...)
		fmt.Fprintf(&chpasswd, "%s:%s\n", u.name, u.password)
	}
	run(t, "chpasswd", chpasswd.String())
}

func newRealAuth(t *testing.T, cfg Config) (*Authenticator, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.AdminGroup == "" {
		cfg.AdminGroup = "wcp360-admin"
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Wait()
		if t.Failed() {
			t.Logf("security log:\n%s", logs)
		}
	})
	return a, logs
}

// timed runs Authenticate and returns how long it took.
func timed(ctx context.Context, a *Authenticator, user, pw, source string) (Identity, time.Duration, error) {
	start := time.Now()
	id, err := a.Authenticate(ctx, user, pw, source)
	return id, time.Since(start), err
}

func TestRealPAM(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	setupHost(t)
	// Lock, expire, or require a password change, of three admins.
	run(t, "passwd", "", "--lock", "dave")
	run(t, "chage", "", "--expiredate", "1", "erin")
	run(t, "chage", "", "--lastday", "0", "frank")

	t.Run("right password", func(t *testing.T) {
		t.Parallel()
		a, logs := newRealAuth(t, Config{})
		for _, want := range []Identity{{Name: "root", Root: true}, {Name: "alice", UID: uidOf(t, "alice"), Admin: true}} {
			id, d, err := timed(t.Context(), a, want.Name, password(t, want.Name), "192.0.2.10")
			if err != nil {
				t.Fatalf("%s: %v", want.Name, err)
			}
			if id != want {
				t.Errorf("identity %+v, want %+v", id, want)
			}
			t.Logf("%s authenticated in %v", want.Name, d)
			if d > time.Second {
				t.Errorf("%s: a right password took %v", want.Name, d)
			}
		}
		if !strings.Contains(logs.String(), "pam: authenticated") {
			t.Errorf("no success in the log:\n%s", logs)
		}
	})

	// Wrong password, unknown user, a user who may not log in, a locked
	// account: the same refusal, after about the same delay.
	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		a, logs := newRealAuth(t, Config{})
		tests := []struct{ name, user, pw string }{
			{"wrong password", "alice", "not-alice's"},
			{"wrong root password", "root", "guess"},
			{"unknown user", "nosuchuser", "whatever"},
			{"not an admin", "bob", password(t, "bob")},
			{"locked account", "dave", password(t, "dave")},
		}
		var wg sync.WaitGroup
		for i, tt := range tests {
			wg.Go(func() {
				_, d, err := timed(t.Context(), a, tt.user, tt.pw, fmt.Sprint("192.0.2.", 20+i))
				t.Logf("%s: %v after %v", tt.name, err, d)
				if !errors.Is(err, ErrBadCredentials) || err.Error() != ErrBadCredentials.Error() {
					t.Errorf("%s: err = %v, want exactly ErrBadCredentials", tt.name, err)
				}
				// libpam's delay: 2s × [0.5, 1.5).
				if d < 900*time.Millisecond || d > 5*time.Second {
					t.Errorf("%s: refused after %v, want pam_unix's 1-3s", tt.name, d)
				}
			})
		}
		wg.Wait()
		if strings.Contains(logs.String(), password(t, "bob")) || strings.Contains(logs.String(), "not-alice's") {
			t.Errorf("a password in the log:\n%s", logs)
		}
	})

	// The password is right; the account is not usable. Saying so is safe.
	t.Run("account problems", func(t *testing.T) {
		t.Parallel()
		a, _ := newRealAuth(t, Config{})
		for _, user := range []string{"erin", "frank"} {
			_, d, err := timed(t.Context(), a, user, password(t, user), "192.0.2.30")
			t.Logf("%s: %v after %v", user, err, d)
			if !errors.Is(err, ErrAccount) {
				t.Errorf("%s: err = %v, want ErrAccount", user, err)
			}
		}
	})

	// After K failures PAM is no longer asked: the refusal is immediate,
	// the right password included, from any source.
	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		a, logs := newRealAuth(t, Config{Limits: Limits{MaxFailures: 3, Lockout: time.Minute}})
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				if _, err := a.Authenticate(t.Context(), "grace", fmt.Sprint("guess", i), fmt.Sprint("203.0.113.", i)); !errors.Is(err, ErrBadCredentials) {
					t.Errorf("guess %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		_, d, err := timed(t.Context(), a, "grace", password(t, "grace"), "203.0.113.99")
		t.Logf("locked out: %v after %v", err, d)
		var rl *RateLimitError
		if !errors.As(err, &rl) || rl.Key != "user" {
			t.Fatalf("err = %v, want a user lockout", err)
		}
		if d > 50*time.Millisecond {
			t.Errorf("the rate-limited refusal took %v: PAM was asked", d)
		}
		for _, want := range []string{"pam: user locked out", "user=grace", "user_failures=3"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs)
			}
		}
	})

	// While wrong passwords sit in pam_unix's delay, other authentications
	// go through at their own speed.
	t.Run("others keep flowing", func(t *testing.T) {
		t.Parallel()
		// Enough failures allowed for hank that all guesses reach PAM.
		a, _ := newRealAuth(t, Config{MaxConcurrent: 8, Limits: Limits{MaxFailures: 10}})
		var pending atomic.Int32
		var wg sync.WaitGroup
		const n = 6
		pending.Store(n)
		start := time.Now()
		for i := range n {
			wg.Go(func() {
				defer pending.Add(-1)
				if _, err := a.Authenticate(t.Context(), "hank", fmt.Sprint("guess", i), fmt.Sprint("198.51.100.", i)); !errors.Is(err, ErrBadCredentials) {
					t.Errorf("guess %d: %v", i, err)
				}
			})
		}
		time.Sleep(300 * time.Millisecond) // the guesses are in PAM's delay
		id, d, err := timed(t.Context(), a, "carol", password(t, "carol"), "192.0.2.40")
		left := pending.Load()
		t.Logf("carol authenticated in %v, %d of %d wrong guesses still in PAM", d, left, n)
		if err != nil || id.Name != "carol" {
			t.Fatalf("carol: %+v, %v", id, err)
		}
		if d > 500*time.Millisecond || left != n {
			t.Errorf("carol took %v with %d/%d guesses pending: blocked behind them", d, left, n)
		}
		// A refusal that needs no PAM is as quick.
		if _, d, err := timed(t.Context(), a, "nobody\x00", "x", "192.0.2.41"); !errors.Is(err, ErrBadCredentials) || d > 50*time.Millisecond {
			t.Errorf("malformed attempt: %v after %v", err, d)
		}
		wg.Wait()
		t.Logf("the %d wrong guesses, run at once, took %v in all", n, time.Since(start))
	})

	// A caller that gives up returns at once; the transaction finishes in
	// the background, and counts.
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		a, _ := newRealAuth(t, Config{Limits: Limits{MaxFailures: 2}})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, d, err := timed(ctx, a, "root", "guess", "192.0.2.50")
		t.Logf("cancelled: %v after %v", err, d)
		if !errors.Is(err, context.DeadlineExceeded) || d > 300*time.Millisecond {
			t.Errorf("%v after %v; want the deadline at once", err, d)
		}
		a.Wait()
		if _, err := a.Authenticate(t.Context(), "root", "guess", "192.0.2.51"); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(t.Context(), "root", rootPassword, "192.0.2.52"); !errors.Is(err, ErrRateLimited) {
			t.Errorf("err = %v, want ErrRateLimited: the abandoned attempt was not counted", err)
		}
	})

	t.Run("root denied", func(t *testing.T) {
		t.Parallel()
		a, _ := newRealAuth(t, Config{DenyRoot: true})
		if _, err := a.Authenticate(t.Context(), "root", rootPassword, "unix"); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("err = %v, want ErrBadCredentials", err)
		}
	})
}

// Not root: refused with a clear error before PAM is asked. The whole
// process runs with euid nobody meanwhile (real and saved uid stay 0, so
// it can come back), which is why this test is alone in its sandbox.
func TestRealPAMNotRoot(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	setupHost(t)
	a, _ := newRealAuth(t, Config{})
	if err := syscall.Setresuid(-1, 65534, -1); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(t.Context(), "root", rootPassword, "unix")
	if err2 := syscall.Setresuid(-1, 0, -1); err2 != nil {
		t.Fatal(err2)
	}
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "euid 65534") {
		t.Fatalf("err = %v, want ErrNotRoot naming euid 65534", err)
	}
	// As root again, the same call succeeds.
	if _, err := a.Authenticate(t.Context(), "root", rootPassword, "unix"); err != nil {
		t.Fatal(err)
	}
}

func uidOf(t *testing.T, name string) int {
	t.Helper()
	a, err := lookupAccount(name)
	if err != nil {
		t.Fatal(err)
	}
	return a.UID
}
