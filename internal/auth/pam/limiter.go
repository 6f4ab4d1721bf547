package pam

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Limits configure the rate limiting of failed authentications. Zero
// fields take the defaults.
type Limits struct {
	// MaxFailures is how many failures a user name, or a source address,
	// may have in Window before it is locked out (default 5). Attempts in
	// progress count too: at most MaxFailures PAM transactions run for one
	// key before a lockout can engage.
	MaxFailures int
	// Window is how long failures are remembered (default 15 minutes). A
	// key that had no failure for Window after its lockout ended starts
	// again from the first lockout.
	Window time.Duration
	// Lockout is the first lockout's length (default 1 minute); each
	// further one doubles it, up to MaxLockout (default 1 hour).
	Lockout, MaxLockout time.Duration
	// MaxEntries bounds the user names and the source addresses
	// remembered, each (default 10000). When full, entries that expired
	// are dropped, then the one idle (or locked out) for the shortest time
	// still to come.
	MaxEntries int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFailures <= 0 {
		l.MaxFailures = 5
	}
	if l.Window <= 0 {
		l.Window = 15 * time.Minute
	}
	if l.Lockout <= 0 {
		l.Lockout = time.Minute
	}
	if l.MaxLockout <= 0 {
		l.MaxLockout = time.Hour
	}
	l.MaxLockout = max(l.MaxLockout, l.Lockout)
	if l.MaxEntries <= 0 {
		l.MaxEntries = 10000
	}
	return l
}

// lockoutFor is the length of the n-th consecutive lockout (n >= 1).
func (l Limits) lockoutFor(n int) time.Duration {
	d := l.Lockout
	for i := 1; i < n && d < l.MaxLockout; i++ {
		d *= 2
	}
	return min(d, l.MaxLockout)
}

// entry is what is remembered of one user name or source address.
type entry struct {
	failures    int       // failures since windowStart
	windowStart time.Time // first failure counted in failures
	lockouts    int       // consecutive lockouts
	lockedUntil time.Time
	last        time.Time // last failure
	inflight    int       // attempts admitted and not yet recorded
}

// idle reports whether e holds nothing worth keeping at now.
func (e *entry) idle(now time.Time, l Limits) bool {
	return e.inflight == 0 && !now.Before(e.lockedUntil) &&
		(e.failures == 0 && e.lockouts == 0 || now.Sub(e.last) > l.Window && now.Sub(e.lockedUntil) > l.Window)
}

// expire forgets what is older than the window at now.
func (e *entry) expire(now time.Time, l Limits) {
	if e.failures > 0 && now.Sub(e.windowStart) > l.Window {
		e.failures = 0
	}
	if e.lockouts > 0 && !now.Before(e.lockedUntil) && now.Sub(e.last) > l.Window && now.Sub(e.lockedUntil) > l.Window {
		e.lockouts = 0
	}
}

// table is the entries of one kind of key, bounded.
type table struct {
	kind    string // "user" or "source"
	entries map[string]*entry
}

func newTable(kind string) *table { return &table{kind: kind, entries: map[string]*entry{}} }

// get returns key's entry, creating it (and making room) when create is set.
func (t *table) get(key string, create bool, now time.Time, l Limits) *entry {
	e := t.entries[key]
	if e != nil {
		e.expire(now, l)
		return e
	}
	if !create {
		return nil
	}
	if len(t.entries) >= l.MaxEntries {
		t.evict(now, l)
	}
	e = &entry{}
	t.entries[key] = e
	return e
}

// evict drops the entries that hold nothing any more and, when that frees
// nothing, the one that matters for the shortest time still: the latest of
// its last failure and its lockout's end is the earliest. Entries with
// attempts in progress stay.
func (t *table) evict(now time.Time, l Limits) {
	for k, e := range t.entries {
		if e.idle(now, l) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) < l.MaxEntries {
		return
	}
	var victim string
	var victimAt time.Time
	for k, e := range t.entries {
		if e.inflight > 0 {
			continue
		}
		at := e.last
		if e.lockedUntil.After(at) {
			at = e.lockedUntil
		}
		if victim == "" || at.Before(victimAt) {
			victim, victimAt = k, at
		}
	}
	if victim != "" {
		delete(t.entries, victim)
	}
}

// dropIfIdle removes key's entry when it holds nothing.
func (t *table) dropIfIdle(key string, now time.Time, l Limits) {
	if e := t.entries[key]; e != nil && e.idle(now, l) {
		delete(t.entries, key)
	}
}

// sourceKey is the rate-limiting key of a source: an IPv4 address, an IPv6
// address's /64 (one host usually has all of it), or the string itself
// ("unix" for the socket); "unknown" when empty.
func sourceKey(source string) string {
	if source == "" {
		return "unknown"
	}
	a, err := netip.ParseAddr(source)
	if err != nil {
		return source
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return a.String()
}

// limiter counts failures per user name and per source address.
type limiter struct {
	mu      sync.Mutex
	lim     Limits
	now     func() time.Time
	users   *table
	sources *table
}

func newLimiter(l Limits, now func() time.Time) *limiter {
	return &limiter{lim: l.withDefaults(), now: now, users: newTable("user"), sources: newTable("source")}
}

// outcome is how an attempt ended, for the limiter.
type outcome int

const (
	// neutral: not the caller's doing (a system error); not counted.
	neutral outcome = iota
	// failed: bad credentials or an unusable account.
	failed
	// succeeded: resets the user's failures (not the source's).
	succeeded
)

// keyState is one key's state after an attempt was recorded.
type keyState struct {
	Failures int           // failures in the window, this one included
	Lockouts int           // consecutive lockouts
	Locked   time.Duration // the lockout that engaged now, 0 if none
}

// admit lets an attempt by user from source go to PAM, or refuses it: a
// *RateLimitError while either key is locked out, ErrBusy while as many
// attempts as the key has failures left are in progress. An empty key is
// not limited. An admitted attempt must be recorded.
func (l *limiter) admit(user, source string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	keys := l.keys(user, source)
	for _, k := range keys {
		if e := k.t.get(k.key, false, now, l.lim); e != nil && now.Before(e.lockedUntil) {
			return &RateLimitError{Key: k.t.kind, RetryAfter: e.lockedUntil.Sub(now)}
		}
	}
	for _, k := range keys {
		if e := k.t.get(k.key, false, now, l.lim); e != nil && e.failures+e.inflight >= l.lim.MaxFailures {
			return fmt.Errorf("%w: %d attempts for this %s in progress", ErrBusy, e.inflight, k.t.kind)
		}
	}
	for _, k := range keys {
		k.t.get(k.key, true, now, l.lim).inflight++
	}
	return nil
}

// record notes how an admitted attempt ended, and returns the user's and
// the source's state afterwards.
func (l *limiter) record(user, source string, o outcome) (userState, sourceState keyState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range l.keys(user, source) {
		e := k.t.get(k.key, true, now, l.lim)
		if e.inflight > 0 {
			e.inflight--
		}
		var st keyState
		switch o {
		case failed:
			if e.failures == 0 {
				e.windowStart = now
			}
			e.failures++
			e.last = now
			st.Failures = e.failures
			if e.failures >= l.lim.MaxFailures {
				e.lockouts++
				st.Locked = l.lim.lockoutFor(e.lockouts)
				e.lockedUntil = now.Add(st.Locked)
				e.failures = 0
			}
		case succeeded:
			if k.t == l.users {
				e.failures, e.lockouts = 0, 0
			}
			st.Failures = e.failures
		case neutral:
			st.Failures = e.failures
		}
		st.Lockouts = e.lockouts
		if k.t == l.users {
			userState = st
		} else {
			sourceState = st
		}
		k.t.dropIfIdle(k.key, now, l.lim)
	}
	return userState, sourceState
}

type tableKey struct {
	t   *table
	key string
}

func (l *limiter) keys(user, source string) []tableKey {
	ks := make([]tableKey, 0, 2)
	if user != "" {
		ks = append(ks, tableKey{l.users, user})
	}
	if source != "" {
		ks = append(ks, tableKey{l.sources, source})
	}
	return ks
}

// size is how many user names and sources are remembered.
func (l *limiter) size() (users, sources int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users.entries), len(l.sources.entries)
}
