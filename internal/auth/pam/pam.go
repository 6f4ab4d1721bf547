package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// DefaultService is the PAM service WCP360 authenticates through: the file
// /etc/pam.d/wcp360 that InstallServiceFile writes.
const DefaultService = "wcp360"

// Config configures an Authenticator. The zero value (with a Logger)
// authenticates root through the service "wcp360" with the default limits.
type Config struct {
	// Service is the PAM service name (default DefaultService).
	Service string
	// DenyRoot refuses uid 0; by default root may log in.
	DenyRoot bool
	// AdminGroup, when set, lets the members of this local group log in as
	// admins (e.g. "wcp360-admin"); no one else may. A group that does not
	// exist has no members.
	AdminGroup string
	// AllowUser, when set, lets a user who is neither root nor an admin
	// log in when it answers true (the panel's own principals: a tenant's
	// login). It is asked before PAM, so a user it refuses costs no PAM
	// transaction. Root's uid-0 accounts are never its to decide.
	AllowUser func(name string) bool
	// MaxConcurrent bounds the PAM transactions in progress (default 8),
	// including those whose caller gave up. When all are taken,
	// Authenticate fails at once with ErrBusy.
	MaxConcurrent int
	// RefusalDelay is how long a refusal decided without PAM (an unknown
	// user, a user who may not log in) takes, randomised as libpam does
	// (between half and one and a half times it), so that it cannot be told
	// from a wrong password by its timing: pam_unix's failure delay
	// (default 2s). Callers do not wait for it longer than their context.
	RefusalDelay time.Duration
	// Limits configure the rate limiting per user name and per source.
	Limits Limits
	// Logger receives the security log: every failure, lockout and
	// success (never a password). Default slog.Default().
	Logger *slog.Logger
	// Clock is the time source of the rate limiting (default time.Now).
	Clock func() time.Time
}

// Authenticator checks local users' passwords through PAM for the panel.
// It is safe for concurrent use.
type Authenticator struct {
	service      string
	policy       policy
	adminGroup   string
	refusalDelay time.Duration
	log          *slog.Logger
	lim          *limiter
	sem          chan struct{}
	wg           sync.WaitGroup

	// The host, replaceable in this package's tests.
	geteuid     func() int
	pam         pamFunc
	lookup      func(name string) (account, error)
	lookupGroup func(name string) (int, error)
}

// pamFunc runs one PAM transaction: authenticate user with password, then
// check the account. It returns the user name PAM ended with, or an error
// wrapping ErrBadCredentials, ErrAccount or ErrSystem.
type pamFunc func(service, user, password, rhost string, log *slog.Logger) (string, error)

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Service == "" {
		cfg.Service = DefaultService
	}
	if !validUser(cfg.Service) {
		return nil, fmt.Errorf("pam: invalid service name %q", cfg.Service)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 8
	}
	if cfg.RefusalDelay <= 0 {
		cfg.RefusalDelay = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now //nolint:forbidigo // the default clock
	}
	lim := newLimiter(cfg.Limits, cfg.Clock)
	if lim.lim.MaxEntries <= 2*cfg.MaxConcurrent {
		return nil, fmt.Errorf("pam: Limits.MaxEntries (%d) must exceed twice MaxConcurrent (%d)", lim.lim.MaxEntries, cfg.MaxConcurrent)
	}
	return &Authenticator{
		service:      cfg.Service,
		policy:       policy{denyRoot: cfg.DenyRoot, allow: cfg.AllowUser},
		adminGroup:   cfg.AdminGroup,
		refusalDelay: cfg.RefusalDelay,
		log:          cfg.Logger,
		lim:          lim,
		sem:          make(chan struct{}, cfg.MaxConcurrent),
		geteuid:      os.Geteuid,
		pam:          defaultPAM(),
		lookup:       lookupAccount,
		lookupGroup:  lookupGroup,
	}, nil
}

// result is how one attempt ended.
type result struct {
	id      Identity
	err     error
	outcome outcome
	reason  string // for the log only: why it failed
}

// Authenticate checks user's password through PAM and returns who they
// are, when they may log in to the panel. source is where the attempt
// comes from, for the rate limits and the log: the client's IP address,
// or "unix" for the local socket.
//
// The PAM transaction runs in a goroutine of its own; Authenticate returns
// when it ends or when ctx is done (with ctx's error), whichever comes
// first. A transaction whose caller left still finishes, and still counts.
//
// Errors (see their documentation for what to do): ErrBadCredentials,
// ErrAccount, *RateLimitError (ErrRateLimited), ErrBusy, ErrNotRoot,
// ErrUnavailable, ErrSystem, or ctx's error.
func (a *Authenticator) Authenticate(ctx context.Context, user, password, source string) (Identity, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, err
	}
	if euid := a.geteuid(); euid != 0 {
		return Identity{}, fmt.Errorf("%w: running as euid %d", ErrNotRoot, euid)
	}
	if a.pam == nil {
		return Identity{}, ErrUnavailable
	}
	src := sourceKey(source)
	userKey := user
	if !validUser(user) {
		userKey = "" // limited by source only; never reaches PAM
	}
	if err := a.lim.admit(userKey, src); err != nil {
		a.log.Debug("pam: attempt refused", "user", user, "source", source, "err", err)
		return Identity{}, err
	}
	select {
	case a.sem <- struct{}{}:
	default:
		a.lim.record(userKey, src, neutral)
		return Identity{}, fmt.Errorf("%w: %d authentications in progress", ErrBusy, cap(a.sem))
	}
	done := make(chan result, 1)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		r := a.attemptSafely(user, password, source)
		a.finish(userKey, src, user, source, r)
		<-a.sem
		done <- r
	}()
	select {
	case r := <-done:
		return r.id, r.err
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
}

// Wait blocks until every PAM transaction started has ended, those whose
// callers left too (for a clean shutdown, and for tests).
func (a *Authenticator) Wait() { a.wg.Wait() }

func (a *Authenticator) attemptSafely(user, password, source string) (r result) {
	defer func() {
		if p := recover(); p != nil {
			r = result{err: fmt.Errorf("%w: panic: %v", ErrSystem, p), outcome: neutral}
		}
	}()
	return a.attempt(user, password, source)
}

// attempt decides one authentication.
func (a *Authenticator) attempt(user, password, source string) result {
	if !validUser(user) || !validPassword(password) {
		return result{err: ErrBadCredentials, outcome: failed, reason: "malformed user name or password"}
	}
	acct, err := a.lookup(user)
	if errors.Is(err, errNoSuchUser) {
		return a.refuse("unknown user")
	}
	if err != nil {
		return result{err: fmt.Errorf("%w: look up user: %w", ErrSystem, err), outcome: neutral}
	}
	adminGID, err := a.lookupGroup(a.adminGroup)
	if err != nil {
		return result{err: fmt.Errorf("%w: look up group %q: %w", ErrSystem, a.adminGroup, err), outcome: neutral}
	}
	if _, ok := a.policy.decide(acct, adminGID); !ok {
		return a.refuse("user may not log in to the panel")
	}
	rhost := source // PAM_RHOST: for modules and their logs
	if source == "unix" {
		rhost = ""
	}
	pamUser, err := a.pam(a.service, user, password, rhost, a.log.With("user", user, "source", source))
	switch {
	case errors.Is(err, ErrBadCredentials):
		return result{err: ErrBadCredentials, outcome: failed, reason: err.Error()}
	case errors.Is(err, ErrAccount):
		return result{err: err, outcome: failed, reason: err.Error()}
	case err != nil:
		return result{err: err, outcome: neutral}
	}
	if pamUser != "" && pamUser != acct.Name {
		// A module mapped the name: the policy is about who PAM says it is.
		if acct, err = a.lookup(pamUser); err != nil {
			return result{err: fmt.Errorf("%w: look up user %q (PAM's name for %q): %w", ErrSystem, pamUser, user, err), outcome: neutral}
		}
	}
	id, ok := a.policy.decide(acct, adminGID)
	if !ok {
		return result{err: fmt.Errorf("%w: user %q may not log in to the panel", ErrAccount, acct.Name), outcome: failed, reason: "mapped user may not log in"}
	}
	return result{id: id, outcome: succeeded}
}

// refuse fails an attempt decided without PAM after as long as PAM takes
// to fail one.
func (a *Authenticator) refuse(reason string) result {
	time.Sleep(failDelay(a.refusalDelay))
	return result{err: ErrBadCredentials, outcome: failed, reason: reason}
}

// failDelay is a delay distributed as libpam's failure delay around base
// (_pam_compute_delay): base × (1 + m − ½), m the mean of three uniform
// numbers in [0, 1), so between base/2 and 3·base/2, most often near base.
func failDelay(base time.Duration) time.Duration {
	var m float64
	for range 3 {
		m += rand.Float64() //nolint:gosec // timing jitter, not a secret
	}
	return time.Duration(float64(base) * (1 + m/3 - 0.5))
}

// finish records r in the limits and the security log.
func (a *Authenticator) finish(userKey, src, user, source string, r result) {
	us, ss := a.lim.record(userKey, src, r.outcome)
	switch r.outcome {
	case succeeded:
		a.log.Info("pam: authenticated", "user", r.id.Name, "source", source, "root", r.id.Root, "admin", r.id.Admin)
	case failed:
		a.log.Warn("pam: authentication failed", "user", user, "source", source, "reason", r.reason,
			"user_failures", us.Failures, "source_failures", ss.Failures)
		if us.Locked > 0 {
			a.log.Warn("pam: user locked out", "user", user, "source", source, "lockouts", us.Lockouts, "for", us.Locked)
		}
		if ss.Locked > 0 {
			a.log.Warn("pam: source locked out", "source", src, "user", user, "lockouts", ss.Lockouts, "for", ss.Locked)
		}
	case neutral:
		a.log.Debug("pam: authentication error", "user", user, "source", source, "err", r.err)
	}
}
