package reconcile

import (
	"errors"
	"fmt"
	"time"
)

// TerminalError is a failure that retrying cannot fix (a stalled resource,
// source-controller's Stalling error). The key is not retried until it is
// enqueued again.
type TerminalError struct {
	Err error
}

// Terminal wraps err so that the controller does not retry it. Terminal(nil)
// is a terminal error too.
func Terminal(err error) error {
	if err == nil {
		err = errors.New("terminal error")
	}
	return &TerminalError{Err: err}
}

func (e *TerminalError) Error() string { return "terminal: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *TerminalError) Unwrap() error { return e.Err }

// IsTerminal reports whether err is, or wraps, a TerminalError.
func IsTerminal(err error) bool {
	var t *TerminalError
	return errors.As(err, &t)
}

// WaitingError is an expected, temporary condition (a Domain whose Tenant is
// not Ready yet). The key is retried after After, without alarm and without
// growing its backoff.
type WaitingError struct {
	Err   error
	After time.Duration
}

// Waiting wraps err so that the controller retries after the given delay. A
// delay <= 0 retries with the key's backoff, as a generic error would.
func Waiting(err error, after time.Duration) error {
	if err == nil {
		err = errors.New("waiting")
	}
	return &WaitingError{Err: err, After: after}
}

func (e *WaitingError) Error() string {
	return fmt.Sprintf("waiting %s: %v", e.After, e.Err)
}

// Unwrap returns the wrapped error.
func (e *WaitingError) Unwrap() error { return e.Err }

// IsWaiting reports whether err is, or wraps, a WaitingError.
func IsWaiting(err error) bool {
	var w *WaitingError
	return errors.As(err, &w)
}

// PanicError is what a panic in Reconcile becomes. It is retried like a
// generic error.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
