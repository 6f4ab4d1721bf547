// Package rbac decides what a principal may do: one policy, consulted by
// every API route through the Action it declares.
//
// Roles:
//
//   - admin: everything.
//   - tenant: a principal bound to one tenant. It manages that tenant's
//     domains and databases (read and write), reads its own Tenant (status
//     included, limits not: see SeesLimits), and nothing of any other
//     tenant, nor anything of the system (metrics, profiles, other
//     principals).
//   - reseller: bound to the tenants it owns; over those it is what an
//     admin is (their limits included), and it has no system access. The
//     tenants a reseller owns are set by an admin; a reseller cannot
//     create a tenant that is not already its own.
//
// Scopes narrow a principal further (API tokens for automation): a
// principal without scopes may do all its role allows; with scopes, an
// action needs one of them as well:
//
//	read               every read its role allows
//	write              every read and write its role allows
//	<resource>:read    reads of that resource only (tenants, domains, databases, events, system)
//	<resource>:write   reads and writes of that resource only
//	admin              system actions (metrics, profiles, tokens of others), for admins
package rbac

import (
	"fmt"
	"slices"
	"strings"
)

// Role is a principal's role.
type Role string

// The roles.
const (
	RoleAdmin    Role = "admin"
	RoleTenant   Role = "tenant"
	RoleReseller Role = "reseller"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleTenant || r == RoleReseller }

// Verb is what an action does to its resource.
type Verb string

// The verbs.
const (
	Read  Verb = "read"
	Write Verb = "write"
)

// Resources an action acts on. Tenant-owned resources (domains, databases,
// and their events, revisions, drift) are checked against the owning
// tenant; ResourceSelf is the principal's own session and tokens.
const (
	ResourceTenants   = "tenants"
	ResourceDomains   = "domains"
	ResourceDatabases = "databases"
	ResourceSystem    = "system" // metrics, profiles, principals and their tokens
	ResourceSelf      = "self"   // the principal's own tokens and session
)

// Action is what a route needs: a verb on a resource.
type Action struct {
	Verb     Verb
	Resource string
}

func (a Action) String() string { return a.Resource + ":" + string(a.Verb) }

// Principal is who a request acts for.
type Principal struct {
	// Name is the login name (a Linux user for PAM logins), or the API
	// token's name.
	Name string
	Role Role
	// Tenants binds the principal: exactly one for RoleTenant, those it
	// owns for RoleReseller, none for RoleAdmin.
	Tenants []string
	// Scopes narrow what the role allows; nil is no narrowing.
	Scopes []string
	// Via says how it authenticated: "unix" (root on the socket), "jwt",
	// "api-token".
	Via string
}

// Anonymous is the zero Principal: it may do nothing that asks.
func (p Principal) Anonymous() bool { return p.Name == "" || !p.Role.Valid() }

// Check reports an error when p is not a consistent principal.
func (p Principal) Check() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("principal without a name")
	case !p.Role.Valid():
		return fmt.Errorf("principal %s: role %q is not admin, tenant or reseller", p.Name, p.Role)
	case p.Role == RoleTenant && len(p.Tenants) != 1:
		return fmt.Errorf("principal %s: role tenant needs exactly one tenant, has %d", p.Name, len(p.Tenants))
	case p.Role == RoleAdmin && len(p.Tenants) > 0:
		return fmt.Errorf("principal %s: an admin is bound to no tenant", p.Name)
	}
	for _, s := range p.Scopes {
		if !ValidScope(s) {
			return fmt.Errorf("principal %s: unknown scope %q", p.Name, s)
		}
	}
	return nil
}

// Decision is the policy's answer, with the reason for a refusal.
type Decision struct {
	Allowed bool
	// Reason says why not, for the 403 problem (it names no resource the
	// principal may not know of).
	Reason string
	// Hidden: the object belongs to a tenant the principal is not bound
	// to; answer as if it did not exist (404), so that nobody learns what
	// another tenant has.
	Hidden bool
}

func allow() Decision                       { return Decision{Allowed: true} }
func deny(format string, a ...any) Decision { return Decision{Reason: fmt.Sprintf(format, a...)} }

// Permits is the part of Authorize that needs no object: whether p may do
// a to some object (its role and scopes). Routes check it before they load
// the object, then Authorize with the object's tenant.
func Permits(p Principal, a Action) Decision {
	if p.Anonymous() {
		return deny("authentication required")
	}
	if d := scoped(p, a); !d.Allowed {
		return d
	}
	if p.Role == RoleAdmin {
		return allow()
	}
	switch a.Resource {
	case ResourceSelf:
		return allow()
	case ResourceSystem:
		return deny("%s needs an admin", a)
	case ResourceTenants:
		if p.Role == RoleTenant && a.Verb == Write {
			return deny("a tenant's own settings and limits are set by its admin")
		}
	}
	if len(p.Tenants) == 0 {
		return deny("%s is bound to no tenant", p.Name)
	}
	return allow()
}

// Authorize decides whether p may do a to an object owned by tenant ("" for
// objects that belong to no tenant: the system, or a list). For a Tenant
// object, tenant is its own name. A write that moves an object to another
// tenant (a Domain's spec.tenant) must be authorized for both tenants.
func Authorize(p Principal, a Action, tenant string) Decision {
	if p.Anonymous() {
		return deny("authentication required")
	}
	if d := scoped(p, a); !d.Allowed {
		return d
	}
	switch p.Role {
	case RoleAdmin:
		return allow()
	case RoleTenant, RoleReseller:
		return bound(p, a, tenant)
	}
	return deny("unknown role")
}

// bound is the policy of principals bound to tenants.
func bound(p Principal, a Action, tenant string) Decision {
	switch a.Resource {
	case ResourceSelf:
		return allow()
	case ResourceSystem:
		return deny("%s needs an admin", a)
	case ResourceDomains, ResourceDatabases, ResourceTenants:
	default:
		return deny("unknown resource %q", a.Resource)
	}
	if tenant == "" {
		// A list: allowed, and ListFilter narrows it to the principal's tenants.
		if a.Verb == Read {
			return allow()
		}
		return deny("%s of no particular tenant needs an admin", a)
	}
	if !slices.Contains(p.Tenants, tenant) {
		// Not "forbidden": the caller must not learn that it exists.
		d := deny("no such %s for %s", strings.TrimSuffix(a.Resource, "s"), p.Name)
		d.Hidden = true
		return d
	}
	if a.Resource == ResourceTenants && a.Verb == Write && p.Role == RoleTenant {
		return deny("a tenant's own settings and limits are set by its admin")
	}
	return allow()
}

// scoped checks p's scopes (none: no narrowing).
func scoped(p Principal, a Action) Decision {
	if p.Scopes == nil {
		return allow()
	}
	for _, s := range p.Scopes {
		if scopeAllows(s, a) {
			return allow()
		}
	}
	return deny("the token's scopes (%s) do not include %s", strings.Join(p.Scopes, ", "), a)
}

func scopeAllows(s string, a Action) bool {
	if a.Resource == ResourceSelf {
		return true // a token may always see and revoke itself
	}
	switch s {
	case "admin":
		return a.Resource == ResourceSystem
	case "write":
		return a.Resource != ResourceSystem
	case "read":
		return a.Resource != ResourceSystem && a.Verb == Read
	}
	res, verb, ok := strings.Cut(s, ":")
	if !ok || res != a.Resource {
		return false
	}
	return verb == string(Write) || Verb(verb) == a.Verb
}

// Scopes lists every valid scope.
func Scopes() []string {
	out := []string{"read", "write", "admin"}
	for _, r := range []string{ResourceTenants, ResourceDomains, ResourceDatabases, ResourceSystem} {
		out = append(out, r+":read", r+":write")
	}
	return out
}

// ScopeCovered reports whether every action scope want allows is allowed
// by one of have: a token may only mint tokens narrower than itself.
func ScopeCovered(have []string, want string) bool {
	for _, res := range []string{ResourceTenants, ResourceDomains, ResourceDatabases, ResourceSystem} {
		for _, v := range []Verb{Read, Write} {
			a := Action{Verb: v, Resource: res}
			if !scopeAllows(want, a) {
				continue
			}
			if !slices.ContainsFunc(have, func(h string) bool { return scopeAllows(h, a) }) {
				return false
			}
		}
	}
	return true
}

// ValidScope reports whether s is a known scope.
func ValidScope(s string) bool { return slices.Contains(Scopes(), s) }

// ListFilter says which tenants' resources a list may show p: all (admin),
// or only those of tenants (tenant, reseller). For Tenant lists, the names
// are the tenants themselves.
func ListFilter(p Principal) (tenants []string, all bool) {
	if p.Role == RoleAdmin {
		return nil, true
	}
	return slices.Clone(p.Tenants), false
}

// SeesLimits reports whether p may read a Tenant's limits (spec.limits):
// admins and the tenant's reseller; a tenant principal sees its status and
// settings, not the limits its admin set.
func SeesLimits(p Principal, tenant string) bool {
	switch p.Role {
	case RoleAdmin:
		return true
	case RoleReseller:
		return slices.Contains(p.Tenants, tenant)
	case RoleTenant:
		return false
	}
	return false
}
