package cgroup

import (
	"context"
	"errors"

	"github.com/wcp360/wcp360/internal/host"
)

// ErrNotEnforced is returned by the None driver's readings.
var ErrNotEnforced = errors.New("cgroup: limits are not enforced on this host")

// None is the Driver of a host where the limits cannot (or, by
// configuration, must not) be enforced: it changes nothing and says so,
// limit by limit, in its Enforcement.
type None struct {
	// Reason says why nothing is enforced ("isolation.cgroups is none",
	// "no cgroup file system is mounted").
	Reason string
}

var _ Driver = None{}

// Enforcement lists every limit as not enforced, for Reason.
func (n None) Enforcement() Enforcement {
	e := Enforcement{Driver: "none", NotEnforced: map[string]string{}}
	for _, l := range AllLimits {
		e.NotEnforced[l] = n.Reason
	}
	return e
}

// Apply checks l and changes nothing.
func (None) Apply(_ string, l Limits) ([]host.Difference, error) { return nil, l.Validate() }

// Observe checks l: with nothing enforced, nothing can differ.
func (None) Observe(_ string, l Limits) ([]host.Difference, error) { return nil, l.Validate() }

// Remove has nothing to remove.
func (None) Remove(context.Context, string) (bool, error) { return false, nil }

// Usage is not counted.
func (n None) Usage(string) (Usage, error) { return Usage{}, ErrNotEnforced }

// Pressure is not kept per tenant.
func (None) Pressure(string) (Pressure, error) { return Pressure{}, ErrNoPSI }

// WatchPressure has nothing to watch.
func (None) WatchPressure(context.Context, string, Resource, Trigger) (<-chan struct{}, error) {
	return nil, ErrNoPSI
}

// StartIn starts the process where wcpd runs.
func (None) StartIn(_ string, start func(cgroupFD int) error) error { return start(-1) }
