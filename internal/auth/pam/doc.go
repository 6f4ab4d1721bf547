// Package pam checks the passwords of the panel's root and admin users
// through PAM, for wcpd (which runs as root).
//
//	changed, err := pam.InstallServiceFile(pam.ServiceDir, pam.ServiceFileOptions{}) // at bootstrap
//	a, err := pam.New(pam.Config{AdminGroup: "wcp360-admin", Logger: log, Clock: time.Now})
//	id, err := a.Authenticate(ctx, "root", password, "192.0.2.7") // or source "unix"
//	// id.Name, id.Root, id.Admin; errors.Is(err, pam.ErrBadCredentials), ...
//	a.Wait() // at shutdown: the transactions still running end
//
// # The service file
//
// InstallServiceFile writes /etc/pam.d/wcp360 (the name is Config.Service):
// "auth include common-auth" and "account include common-account", so the
// panel checks passwords exactly as the console does on Debian and Ubuntu
// (pam_unix, and whatever the admin stacked there, pam_faillock say). Its
// first line marks it as WCP360's; while it is there, wcpd rewrites the file
// when its content or mode differ (atomically, see internal/host/atomicfile).
// An admin who wants their own stack deletes the marker line: the file is
// then theirs and InstallServiceFile refuses to touch it
// (ErrServiceFileNotOurs) unless ServiceFileOptions.Overwrite is set. Without
// the file, libpam would fall back to /etc/pam.d/other.
//
// # One authentication
//
// Authenticate needs euid 0 (ErrNotRoot otherwise: pam_unix can only check
// other users' passwords as root) and a binary built with cgo (libpam is a C
// library; without cgo it fails with ErrUnavailable, and the package still
// builds). Then:
//
//  1. The rate limits (below) may refuse the attempt at once, without PAM.
//  2. A slot of the concurrency bound (Config.MaxConcurrent) is taken, or
//     the attempt fails at once with ErrBusy: attempts never queue.
//  3. In a goroutine of its own: malformed input (a NUL, an empty password)
//     is refused; the user is looked up, and the policy decides whether
//     they may log in at all: root (uid 0) unless Config.DenyRoot, and the
//     members of Config.AdminGroup when it is set. Unknown users and users
//     who may not log in are refused without asking PAM — so the panel is
//     no password oracle for the host's other accounts — after a delay
//     distributed like pam_unix's, so that the refusal's timing does not
//     tell them from a wrong password.
//  4. PAM: pam_authenticate (the conversation answers the echo-off prompt
//     with the password and logs informational messages; PAM_RHOST is the
//     source; null passwords are refused whatever nullok says), then
//     pam_acct_mgmt. The user name PAM ends with is checked by the policy
//     again, when a module changed it.
//  5. The outcome is recorded in the rate limits and the security log.
//
// Errors say what happened without saying whether the user exists: a wrong
// password, an unknown user, a locked password (passwd -l) and a user who
// may not log in are all exactly ErrBadCredentials. ErrAccount (expired
// account, password change required) comes only after the right password.
// ErrSystem is PAM failing; it is not counted as the user's failure.
//
// # Why pam_unix's delay blocks nothing
//
// After a wrong password libpam sleeps about two seconds (the failure delay
// pam_unix asks for, randomised between one and three) inside
// pam_authenticate, on the calling thread. That thread is the attempt's own
// goroutine (locked to its OS thread for the transaction), so the API server
// and every other authentication go on meanwhile. Authenticate returns when
// the transaction ends or when ctx is done, whichever is first: a client
// that disconnects, or a handler's deadline, frees its caller at once, and
// the transaction ends in the background — still holding its slot, and still
// counted as a failure, so giving up early gains an attacker nothing. The
// slots bound the threads and memory PAM can take: with the default 8, at
// most 8 transactions run, and more fail fast with ErrBusy.
//
// # Rate limits
//
// Failures (ErrBadCredentials and ErrAccount) are counted per user name and
// per source: the IPv4 address, the IPv6 /64, or "unix". After
// Limits.MaxFailures failures within Limits.Window the key is locked out for
// Limits.Lockout, doubling with each further lockout up to
// Limits.MaxLockout; a key quiet for a Window after its lockout ends starts
// over. While either key is locked out, Authenticate returns a
// *RateLimitError (ErrRateLimited, with RetryAfter) without starting PAM, in
// microseconds: a locked-out attacker costs nothing. Attempts in progress
// count against MaxFailures too (ErrBusy beyond), so concurrent guesses
// cannot overshoot the limit. A success resets the user's count, not the
// source's (one valid account must not let a source guess others'
// passwords). Memory is bounded by Limits.MaxEntries per kind of key: idle
// entries are dropped first, then those that matter for the shortest time.
// The clock is Config.Clock.
//
// # The security log
//
// Config.Logger gets, never with a password: every failure (user, source,
// the reason — which the caller is not told —, the user's and the source's
// failure counts), every lockout (key, how many, for how long), and every
// success (user, source, root, admin). Refusals during a lockout are logged
// at debug level only, so that a locked-out attacker cannot flood the log.
// Callers need not log these again.
package pam
