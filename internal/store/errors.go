package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL error codes the store maps to its own errors.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
)

// failure turns err from operation op into what a caller matches: the
// store's own errors go through unchanged, a database that cannot be reached
// wraps ErrUnavailable, anything else is wrapped with the operation.
func failure(op string, err error) error {
	var fe *FieldError
	switch {
	case errors.As(err, &fe), errors.Is(err, ErrSchemaTooNew):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if isConnectError(err) {
			return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
		}
		return fmt.Errorf("store: %s: %w", op, err)
	case isUnavailable(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// isUnavailable reports errors that say the server is down, unreachable,
// restarting or dropped the connection, rather than refusing a statement.
func isUnavailable(err error) bool {
	if isConnectError(err) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01..03: shutdown, crash, starting up.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	for _, target := range []error{pgconn.ErrConnClosed, io.EOF, io.ErrUnexpectedEOF,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// pgCode returns the SQLSTATE of err and the constraint it names, if any.
func pgCode(err error) (code, constraint string) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code, pe.ConstraintName
	}
	return "", ""
}

// raceError maps what two concurrent transactions can make PostgreSQL refuse
// when no earlier check could see it; other errors come back unchanged.
func raceError(err error, t table, name string) error {
	code, constraint := pgCode(err)
	switch code {
	case pgSerializationFailure, pgDeadlockDetected:
		return &FieldError{Field: "metadata.name", Value: name, Err: ErrConflict,
			Msg: fmt.Sprintf("%s %q was changed concurrently; retry", t.kind, name)}
	case pgForeignKeyViolation:
		return &FieldError{Field: "spec.tenant", Err: ErrDependency,
			Msg: fmt.Sprintf("%s %q: its tenant was removed concurrently (%s)", t.kind, name, constraint)}
	case pgUniqueViolation:
		return &FieldError{Field: "metadata.name", Value: name, Err: ErrDuplicate,
			Msg: fmt.Sprintf("%s %q: %s is already taken (%s)", t.kind, name, constraintSubject(constraint), constraint)}
	}
	return err
}

func constraintSubject(constraint string) string {
	switch constraint {
	case "domain_hostnames_pkey":
		return "a hostname"
	case "databases_engine_database_name_key":
		return "the database name"
	}
	return "the name"
}
