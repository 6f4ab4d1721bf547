// Package sdbus is WCP360's connection to systemd: its private D-Bus
// socket (/run/systemd/private, no dbus-daemon needed), dialled again when
// lost, and the wait for a job's result. The PHP-FPM units and the tenant
// slices both go through it.
package sdbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// Booted reports whether systemd is PID 1, as sd_booted(3) does: its
// /run/systemd/system exists.
func Booted() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// ErrSystemd wraps what systemd answered, or that it could not be reached.
var ErrSystemd = errors.New("systemd")

// Conn is a connection to systemd, made on first use and again when lost
// (systemd re-executed, say). The zero value is ready.
type Conn struct {
	mu      sync.Mutex
	c       *sddbus.Conn
	version string
}

// Get returns the connection, dialling when there is none. ctx bounds the
// dial only: the connection lives until Close.
func (c *Conn) Get(ctx context.Context) (*sddbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil && c.c.Connected() {
		return c.c, nil
	}
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: connect to /run/systemd/private: %w", ErrSystemd, err)
	}
	conn, err := sddbus.NewSystemdConnectionContext(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: connect to /run/systemd/private: %w", ErrSystemd, err)
	}
	if v, err := conn.GetManagerProperty("Version"); err == nil {
		c.version = strings.Trim(v, `"`)
	}
	c.c = conn
	return conn, nil
}

// Version is systemd's version as it said at the last dial ("252.38-1"),
// "" before one.
func (c *Conn) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Close closes the connection, if any.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// Job runs a job-returning call (StartUnit, StopUnit, ...) and waits for
// the job's result; anything but "done" is an error naming what.
func (c *Conn) Job(ctx context.Context, what string, call func(c *sddbus.Conn, ch chan<- string) (int, error)) error {
	conn, err := c.Get(ctx)
	if err != nil {
		return err
	}
	ch := make(chan string, 1) // buffered: go-systemd delivers while holding its lock
	if _, err := call(conn, ch); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrSystemd, what, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%w: %s: job %s", ErrSystemd, what, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: %w", ErrSystemd, what, context.Cause(ctx))
	}
}
