package pam

import (
	"errors"
	"fmt"
	"time"
)

// The errors Authenticate returns; match them with errors.Is (and
// errors.As for *RateLimitError). What the caller does next:
var (
	// ErrBadCredentials: the user name or the password is wrong, or the
	// user may not log in to the panel. Which one is never said, so that
	// the answer does not tell whether the user exists. Show "invalid user
	// name or password"; the failure counted towards the rate limits.
	ErrBadCredentials = errors.New("invalid user name or password")
	// ErrAccount: the password was right but the account may not be used
	// now (expired, password change required, refused by the account
	// policy). The wrapping error says which; telling the user is safe,
	// since they proved the password. Counted as a failure too.
	ErrAccount = errors.New("account unavailable")
	// ErrRateLimited: refused without asking PAM, because the user name or
	// the source address had too many failures; retry after
	// RateLimitError.RetryAfter.
	ErrRateLimited = errors.New("too many failed authentications")
	// ErrBusy: too many authentications are in progress (in all, or for
	// this user or source); retry in a moment. Nothing was counted.
	ErrBusy = errors.New("too many authentications in progress; retry")
	// ErrNotRoot: the process is not running as root, and PAM's pam_unix
	// cannot check other users' passwords. A deployment error.
	ErrNotRoot = errors.New("PAM authentication needs root (wcpd runs as root)")
	// ErrUnavailable: this binary has no PAM (built without cgo). A build
	// error.
	ErrUnavailable = errors.New("built without cgo: PAM unavailable")
	// ErrSystem: PAM itself failed (service file missing or broken, a
	// module failing); the wrapping error carries PAM's. Not counted.
	ErrSystem = errors.New("PAM system error")
)

// RateLimitError is the ErrRateLimited error: which key is locked out and
// for how long still.
type RateLimitError struct {
	// Key is "user" or "source": which limit refused the attempt.
	Key string
	// RetryAfter is how long the lockout still lasts.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v for this %s; retry in %s", ErrRateLimited, e.Key, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }
