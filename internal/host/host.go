// Package host holds what every host driver shares: the description of one
// difference between the host and a spec. The drivers live in sub-packages
// (users, snapshot, tenant, ...); a controller reads as observe → plan →
// apply over them.
package host

import (
	"fmt"
	"strings"
)

// Difference is one way the host differs from a spec, worded for people:
// "shell: want /usr/sbin/nologin, have /bin/bash".
type Difference struct {
	// Field names what differs, as a short path: "user.shell", "home.mode".
	Field string `json:"field"`
	Want  string `json:"want"`
	Have  string `json:"have"`
	// Due marks work that fell due with time rather than a change someone
	// made (a certificate to renew): it is never drift, and is applied
	// whatever the drift policy.
	Due bool `json:"-"`
}

func (d Difference) String() string {
	return fmt.Sprintf("%s: want %s, have %s", d.Field, d.Want, d.Have)
}

// Summary joins differences into one line for an event or a condition.
func Summary(ds []Difference) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "; ")
}
