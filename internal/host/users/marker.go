package users

import (
	"fmt"
	"strings"
)

// HasMarker reports whether the GECOS field gecos carries marker: the
// whole field, or one of its comma-separated subfields (full name, room,
// phones, other), equals marker exactly. Callers put markers such as
// "WCP360 tenant acme" in the comment of the users they create and test
// them before changing or deleting a user, so nothing created by someone
// else is touched.
func HasMarker(gecos, marker string) bool {
	if marker == "" {
		return false
	}
	if gecos == marker {
		return true
	}
	for _, f := range strings.Split(gecos, ",") {
		if f == marker {
			return true
		}
	}
	return false
}

// HasMarker reports whether u's comment carries marker (see HasMarker).
func (u User) HasMarker(marker string) bool { return HasMarker(u.Comment, marker) }

// ValidateMarker checks that marker can be stored as a GECOS subfield and
// found again by HasMarker: not empty, no ',', ':', line break or NUL.
func ValidateMarker(marker string) error {
	if marker == "" || strings.ContainsAny(marker, ",:\n\r\x00") {
		return fmt.Errorf("%w: ownership marker %q", ErrInvalidEntry, marker)
	}
	return nil
}
