package pam

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestLockoutFor(t *testing.T) {
	l := Limits{Lockout: time.Minute, MaxLockout: 10 * time.Minute}.withDefaults()
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, l.lockoutFor(n))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lockouts (-want +got):\n%s", diff)
	}
}

// fail admits and records one failure.
func fail(t *testing.T, l *limiter, user, source string) (keyState, keyState) {
	t.Helper()
	if err := l.admit(user, source); err != nil {
		t.Fatalf("admit %s from %s: %v", user, source, err)
	}
	return l.record(user, source, failed)
}

func TestLimiter(t *testing.T) {
	lim := Limits{MaxFailures: 3, Window: 10 * time.Minute, Lockout: time.Minute, MaxLockout: 4 * time.Minute}
	type step struct {
		advance time.Duration
		user    string
		source  string
		do      outcome // what the admitted attempt ends as
		want    string  // "ok", "user", "source" (rate limited by), "busy"
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"lockout after K failures, then only after it ends", []step{
			{0, "root", "a", failed, "ok"},
			{0, "root", "a", failed, "ok"},
			{0, "root", "b", failed, "ok"},
			{0, "root", "c", succeeded, "user"},
			{59 * time.Second, "root", "c", succeeded, "user"},
			{time.Second, "root", "c", succeeded, "ok"},
		}},
		{"the lockout doubles while failures go on", []step{
			{0, "root", "a", failed, "ok"}, {0, "root", "b", failed, "ok"}, {0, "root", "c", failed, "ok"},
			{time.Minute, "root", "d", failed, "ok"}, {0, "root", "e", failed, "ok"}, {0, "root", "f", failed, "ok"},
			{time.Minute + 59*time.Second, "root", "g", failed, "user"},
			{time.Second, "root", "g", failed, "ok"}, {0, "root", "h", failed, "ok"}, {0, "root", "i", failed, "ok"},
			{4*time.Minute - time.Second, "root", "j", failed, "user"}, // 4m (the cap), not 8m
			{time.Second, "root", "j", failed, "ok"},
		}},
		{"a success resets the user, not the source", []step{
			{0, "root", "a", failed, "ok"}, {0, "root", "a", failed, "ok"},
			{0, "root", "a", succeeded, "ok"},
			{0, "root", "b", failed, "ok"},  // user: 1 failure since the success
			{0, "admin", "a", failed, "ok"}, // source a: 3rd failure
			{0, "admin", "a", succeeded, "source"},
			{0, "root", "c", succeeded, "ok"},
		}},
		{"the source limit spans user names", []step{
			{0, "u1", "a", failed, "ok"}, {0, "u2", "a", failed, "ok"}, {0, "u3", "a", failed, "ok"},
			{0, "u4", "a", succeeded, "source"},
			{0, "u4", "b", succeeded, "ok"},
		}},
		{"failures older than the window are forgotten", []step{
			{0, "root", "a", failed, "ok"}, {0, "root", "a", failed, "ok"},
			{10*time.Minute + time.Second, "root", "a", failed, "ok"},
			{0, "root", "a", failed, "ok"},
			{0, "root", "a", failed, "ok"},
			{0, "root", "a", failed, "user"},
		}},
		{"system errors are not counted", []step{
			{0, "root", "a", neutral, "ok"}, {0, "root", "a", neutral, "ok"}, {0, "root", "a", neutral, "ok"},
			{0, "root", "a", neutral, "ok"},
		}},
		{"an empty user key is limited by source only", []step{
			{0, "", "a", failed, "ok"}, {0, "", "a", failed, "ok"}, {0, "", "a", failed, "ok"},
			{0, "root", "a", succeeded, "source"},
			{0, "root", "b", succeeded, "ok"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newLimiter(lim, clock.Now)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				err := l.admit(s.user, s.source)
				got := "ok"
				var rl *RateLimitError
				switch {
				case errors.As(err, &rl):
					got = rl.Key
				case errors.Is(err, ErrBusy):
					got = "busy"
				case err != nil:
					t.Fatalf("step %d: %v", i, err)
				}
				if got != s.want {
					t.Fatalf("step %d (%s from %s): got %s, want %s (err %v)", i, s.user, s.source, got, s.want, err)
				}
				if err == nil {
					l.record(s.user, s.source, s.do)
				}
			}
		})
	}
}

func TestLimiterRetryAfter(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(Limits{MaxFailures: 2, Lockout: time.Minute}, clock.Now)
	fail(t, l, "root", "a")
	us, ss := fail(t, l, "root", "a")
	want := keyState{Failures: 2, Lockouts: 1, Locked: time.Minute}
	if diff := cmp.Diff(want, us); diff != "" {
		t.Errorf("user state (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, ss); diff != "" {
		t.Errorf("source state (-want +got):\n%s", diff)
	}
	clock.Advance(20 * time.Second)
	err := l.admit("root", "b")
	var rl *RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || rl.Key != "user" || rl.RetryAfter != 40*time.Second {
		t.Fatalf("admit while locked out: %#v", err)
	}
}

// Attempts in progress count: no more than MaxFailures PAM transactions
// for one key can run before a lockout could engage.
func TestLimiterInflight(t *testing.T) {
	l := newLimiter(Limits{MaxFailures: 3}, newFakeClock().Now)
	for i := range 3 {
		if err := l.admit("root", fmt.Sprint("s", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.admit("root", "s9"); !errors.Is(err, ErrBusy) {
		t.Fatalf("4th concurrent attempt: %v, want ErrBusy", err)
	}
	l.record("root", "s0", succeeded)
	if err := l.admit("root", "s9"); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(Limits{MaxFailures: 2, MaxEntries: 100, Window: time.Minute, Lockout: time.Minute}, clock.Now)
	// A locked-out user stays remembered while a flood of other names and
	// sources goes by.
	fail(t, l, "root", "a")
	fail(t, l, "root", "a")
	for i := range 1000 {
		fail(t, l, fmt.Sprint("user", i), fmt.Sprint("10.0.", i/250, ".", i%250))
		if u, s := l.size(); u > 100 || s > 100 {
			t.Fatalf("after %d: %d users, %d sources remembered", i, u, s)
		}
	}
	if err := l.admit("root", "b"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("the locked-out user was forgotten in the flood: %v", err)
	}
	// Once everything has expired, nothing is kept.
	clock.Advance(10 * time.Minute)
	l.admit("x", "y") //nolint:errcheck // only to trigger expiry below
	l.record("x", "y", succeeded)
	u, s := l.size()
	if u > 100 || s > 100 {
		t.Errorf("%d users, %d sources", u, s)
	}
}

func TestSuccessForgetsTheUser(t *testing.T) {
	l := newLimiter(Limits{}, newFakeClock().Now)
	fail(t, l, "root", "a")
	if err := l.admit("root", "a"); err != nil {
		t.Fatal(err)
	}
	l.record("root", "a", succeeded)
	if u, s := l.size(); u != 0 || s != 1 {
		t.Errorf("remembered %d users, %d sources; want 0, 1", u, s)
	}
}

func TestSourceKey(t *testing.T) {
	tests := map[string]string{
		"":                     "unknown",
		"unix":                 "unix",
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	}
	for in, want := range tests {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}
