package users

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors that callers match with errors.Is.
var (
	// ErrUserExists is an add of a user name that passwd already has.
	ErrUserExists = errors.New("user already exists")
	// ErrGroupExists is an add of a group name that group already has.
	ErrGroupExists = errors.New("group already exists")
	// ErrUIDTaken is a UID another passwd entry already uses.
	ErrUIDTaken = errors.New("uid already taken")
	// ErrGIDTaken is a GID another group entry already uses.
	ErrGIDTaken = errors.New("gid already taken")
	// ErrNotFound is a user or group (or a primary group, or a member) that
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLocked is a lock another program held until the wait ran out.
	ErrLocked = errors.New("locked")
	// ErrRangeFull is an id range without a free id.
	ErrRangeFull = errors.New("no free id in range")
	// ErrInvalidName is a user or group name we refuse to write.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidEntry is a field value we refuse to write (it would corrupt
	// the file or create an account without a password).
	ErrInvalidEntry = errors.New("invalid entry")
	// ErrMalformed is an existing line that an operation would have to
	// change but that does not parse, or a name with several entries. It
	// needs a human (pwck/grpck, vipw); it is never fixed silently.
	ErrMalformed = errors.New("malformed entry")
	// ErrGroupInUse is the deletion of a group that is some user's primary
	// group.
	ErrGroupInUse = errors.New("group is a primary group")
	// ErrModified is a file that changed on disk while we held the locks:
	// some program wrote it without taking them (an editor instead of vipw).
	ErrModified = errors.New("file modified without the lock")
	// ErrReadOnly is a change in a transaction opened with View.
	ErrReadOnly = errors.New("read-only transaction")
	// ErrTxDone is a use of a transaction after Commit or Abort.
	ErrTxDone = errors.New("transaction already committed or aborted")
)

// LockError is a lock that could not be taken.
type LockError struct {
	// Path is the lock file: <root>/etc/.pwd.lock or <file>.lock.
	Path string
	// PID is the process named in a <file>.lock, 0 when unknown.
	PID int
	// Waited is how long we tried.
	Waited time.Duration
	// Reason details a lock file we could not read a live pid from.
	Reason string
	// Err is the cause: a context error when the caller's context ended,
	// nil when our own timeout ran out.
	Err error
}

func (e *LockError) Error() string {
	var b strings.Builder
	switch {
	case e.PID > 0:
		fmt.Fprintf(&b, "%s is held by pid %d (is useradd or vipw running?)", e.Path, e.PID)
	case e.Reason != "":
		fmt.Fprintf(&b, "cannot take %s: %s", e.Path, e.Reason)
	default:
		fmt.Fprintf(&b, "another program holds %s (is useradd or vipw running?)", e.Path)
	}
	fmt.Fprintf(&b, "; waited %s", e.Waited.Round(time.Millisecond))
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap makes a LockError match ErrLocked and its cause.
func (e *LockError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrLocked}
	}
	return []error{ErrLocked, e.Err}
}

// LineError is a line of one of the files that does not parse.
type LineError struct {
	// Path is the file.
	Path string
	// Line is the 1-based line number.
	Line int
	// Err says what is wrong.
	Err error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

// Unwrap makes a LineError match ErrMalformed.
func (e *LineError) Unwrap() []error { return []error{ErrMalformed, e.Err} }
