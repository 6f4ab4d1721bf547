package token

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wcp360/wcp360/internal/auth/rbac"
)

// Scopes are defined, and enforced, by internal/auth/rbac (rbac.Scopes():
// read, write, admin, and <resource>:read|write for tenants, domains,
// databases and system); this package only refuses unknown ones and
// carries them. Access tokens from Login and Refresh carry none: no
// narrowing, the principal may do what its role allows. API tokens carry at
// least one, chosen by their creator, and may do only what both their
// principal's role and one of their scopes allow.

// CheckScopes refuses an empty list and names the first unknown scope. It
// returns the list sorted, without duplicates.
func CheckScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 {
		return nil, fmt.Errorf("token: at least one scope is needed (one of %s)", strings.Join(rbac.Scopes(), ", "))
	}
	for _, s := range scopes {
		if !rbac.ValidScope(s) {
			return nil, fmt.Errorf("token: unknown scope %q (want one of %s)", s, strings.Join(rbac.Scopes(), ", "))
		}
	}
	out := slices.Clone(scopes)
	slices.Sort(out)
	return slices.Compact(out), nil
}
