package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// fakeHost stands in for PAM and the user database.
type fakeHost struct {
	accounts  map[string]account
	passwords map[string]string
	calls     atomic.Int32
	// block, when set, holds every PAM call until closed.
	block chan struct{}
	// started receives a value as each PAM call starts (when set).
	started chan string
}

func newFakeHost() *fakeHost {
	return &fakeHost{
		accounts: map[string]account{
			"root":  {Name: "root", UID: 0, GIDs: []int{0}},
			"alice": {Name: "alice", UID: 1000, GIDs: []int{1000, 990}},
			"bob":   {Name: "bob", UID: 1001, GIDs: []int{1001}},
		},
		passwords: map[string]string{"root": "root-pw", "alice": "alice-pw", "bob": "bob-pw"},
	}
}

func (h *fakeHost) pam(_, user, password, _ string, _ *slog.Logger) (string, error) {
	h.calls.Add(1)
	if h.started != nil {
		h.started <- user
	}
	if h.block != nil {
		<-h.block
	}
	if p, ok := h.passwords[user]; !ok || p != password {
		return "", fmt.Errorf("%w: fake", ErrBadCredentials)
	}
	return user, nil
}

func (h *fakeHost) lookup(name string) (account, error) {
	if a, ok := h.accounts[name]; ok {
		return a, nil
	}
	return account{}, errNoSuchUser
}

func (h *fakeHost) lookupGroup(name string) (int, error) {
	if name == "wcp360-admin" {
		return 990, nil
	}
	return -1, nil
}

func newFakeAuth(t *testing.T, cfg Config, h *fakeHost) (*Authenticator, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.RefusalDelay == 0 {
		cfg.RefusalDelay = 20 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = newFakeClock().Now
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.geteuid = func() int { return 0 }
	a.pam, a.lookup, a.lookupGroup = h.pam, h.lookup, h.lookupGroup
	t.Cleanup(func() {
		if h.block != nil {
			select {
			case <-h.block:
			default:
				close(h.block)
			}
		}
		a.Wait()
	})
	return a, logs
}

func TestAuthenticateFake(t *testing.T) {
	tests := []struct {
		name, user, password string
		cfg                  Config
		want                 Identity
		wantErr              error
		wantPAM              bool // PAM was asked
	}{
		{"root", "root", "root-pw", Config{}, Identity{Name: "root", Root: true}, nil, true},
		{"root denied", "root", "root-pw", Config{DenyRoot: true}, Identity{}, ErrBadCredentials, false},
		{"admin", "alice", "alice-pw", Config{AdminGroup: "wcp360-admin"}, Identity{Name: "alice", UID: 1000, Admin: true}, nil, true},
		{"admin without an admin group", "alice", "alice-pw", Config{}, Identity{}, ErrBadCredentials, false},
		{"admin group missing", "alice", "alice-pw", Config{AdminGroup: "nosuchgroup"}, Identity{}, ErrBadCredentials, false},
		{"not an admin", "bob", "bob-pw", Config{AdminGroup: "wcp360-admin"}, Identity{}, ErrBadCredentials, false},
		{"wrong password", "root", "nope", Config{}, Identity{}, ErrBadCredentials, true},
		{"unknown user", "mallory", "nope", Config{}, Identity{}, ErrBadCredentials, false},
		{"empty password", "root", "", Config{}, Identity{}, ErrBadCredentials, false},
		{"NUL in the password", "root", "root-pw\x00junk", Config{}, Identity{}, ErrBadCredentials, false},
		{"NUL in the user name", "root\x00x", "root-pw", Config{}, Identity{}, ErrBadCredentials, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost()
			a, _ := newFakeAuth(t, tt.cfg, h)
			got, err := a.Authenticate(t.Context(), tt.user, tt.password, "192.0.2.1")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if errors.Is(tt.wantErr, ErrBadCredentials) && err.Error() != ErrBadCredentials.Error() {
				t.Errorf("the refusal says more than %q: %q", ErrBadCredentials, err)
			}
			if got != tt.want {
				t.Errorf("identity = %+v, want %+v", got, tt.want)
			}
			if called := h.calls.Load() > 0; called != tt.wantPAM {
				t.Errorf("PAM called: %v, want %v", called, tt.wantPAM)
			}
		})
	}
}

func TestRefusalWithoutPAMTakesTheDelay(t *testing.T) {
	a, _ := newFakeAuth(t, Config{RefusalDelay: 200 * time.Millisecond}, newFakeHost())
	for _, user := range []string{"mallory", "bob"} {
		start := time.Now()
		_, err := a.Authenticate(t.Context(), user, "x", "unix")
		if d := time.Since(start); !errors.Is(err, ErrBadCredentials) || d < 100*time.Millisecond || d > time.Second {
			t.Errorf("%s: %v after %v; want ErrBadCredentials after 100-300ms", user, err, d)
		}
	}
}

func TestNotRoot(t *testing.T) {
	h := newFakeHost()
	a, _ := newFakeAuth(t, Config{}, h)
	a.geteuid = func() int { return 1000 }
	_, err := a.Authenticate(t.Context(), "root", "root-pw", "unix")
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "euid 1000") {
		t.Fatalf("err = %v, want ErrNotRoot naming the euid", err)
	}
	if h.calls.Load() != 0 {
		t.Error("PAM was called")
	}
}

func TestWithoutPAM(t *testing.T) {
	a, _ := newFakeAuth(t, Config{}, newFakeHost())
	a.pam = nil // as built without cgo
	if _, err := a.Authenticate(t.Context(), "root", "root-pw", "unix"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

// A caller that gives up gets its answer at once; the transaction ends in
// the background and its failure still counts.
func TestCancelReturnsAtOnce(t *testing.T) {
	h := newFakeHost()
	h.block = make(chan struct{})
	a, _ := newFakeAuth(t, Config{Limits: Limits{MaxFailures: 2}}, h)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Authenticate(ctx, "root", "wrong", "192.0.2.1")
	if d := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || d > 500*time.Millisecond {
		t.Fatalf("%v after %v; want the context's error at once", err, d)
	}
	close(h.block)
	a.Wait()
	if _, err := a.Authenticate(t.Context(), "root", "wrong", "192.0.2.2"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	// The abandoned failure and this one: the user is locked out.
	if _, err := a.Authenticate(t.Context(), "root", "root-pw", "192.0.2.3"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited (the abandoned failure was not counted)", err)
	}
	// A context already done: nothing starts.
	done, cancelDone := context.WithCancel(t.Context())
	cancelDone()
	calls := h.calls.Load()
	if _, err := a.Authenticate(done, "alice", "x", "unix"); !errors.Is(err, context.Canceled) || h.calls.Load() != calls {
		t.Fatalf("done context: %v, PAM calls %d -> %d", err, calls, h.calls.Load())
	}
}

// When MaxConcurrent transactions run, the next attempt fails at once with
// ErrBusy instead of queueing; it succeeds again when one ended.
func TestBusy(t *testing.T) {
	h := newFakeHost()
	h.block = make(chan struct{})
	h.started = make(chan string, 8)
	a, _ := newFakeAuth(t, Config{MaxConcurrent: 2}, h)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			_, _ = a.Authenticate(t.Context(), "root", "wrong", fmt.Sprint("192.0.2.", i))
		})
		<-h.started
	}
	start := time.Now()
	_, err := a.Authenticate(t.Context(), "root", "root-pw", "192.0.2.99")
	if d := time.Since(start); !errors.Is(err, ErrBusy) || d > 100*time.Millisecond {
		t.Fatalf("%v after %v; want ErrBusy at once", err, d)
	}
	close(h.block)
	wg.Wait()
	h.started = nil
	if _, err := a.Authenticate(t.Context(), "root", "root-pw", "192.0.2.99"); err != nil {
		t.Fatalf("after the others ended: %v", err)
	}
}

func TestRateLimitSkipsPAM(t *testing.T) {
	h := newFakeHost()
	clock := newFakeClock()
	a, logs := newFakeAuth(t, Config{Clock: clock.Now, Limits: Limits{MaxFailures: 3, Lockout: time.Minute}}, h)
	for i := range 3 {
		if _, err := a.Authenticate(t.Context(), "root", fmt.Sprint("guess", i), "198.51.100.7"); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	_, err := a.Authenticate(t.Context(), "root", "root-pw", "198.51.100.8")
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Key != "user" || rl.RetryAfter != time.Minute {
		t.Fatalf("err = %v, want a one-minute user lockout", err)
	}
	if n := h.calls.Load(); n != 3 {
		t.Errorf("PAM called %d times, want 3", n)
	}
	clock.Advance(time.Minute)
	if _, err := a.Authenticate(t.Context(), "root", "root-pw", "198.51.100.8"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"user_failures=3", "pam: user locked out", "pam: source locked out", "lockouts=1", "source=198.51.100.7", "pam: authenticated"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"guess0", "guess2", "root-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains the password %q:\n%s", secret, out)
		}
	}
}

func TestFailDelay(t *testing.T) {
	const base = time.Second
	var sum time.Duration
	const n = 10000
	for range n {
		d := failDelay(base)
		if d < base/2 || d > base*3/2 {
			t.Fatalf("failDelay(%v) = %v, outside [%v, %v]", base, d, base/2, base*3/2)
		}
		sum += d
	}
	if mean := sum / n; mean < 980*time.Millisecond || mean > 1020*time.Millisecond {
		t.Errorf("mean delay %v, want about %v", mean, base)
	}
}
