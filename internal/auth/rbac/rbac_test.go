package rbac

import (
	"fmt"
	"strings"
	"testing"
)

var (
	admin    = Principal{Name: "root", Role: RoleAdmin, Via: "jwt"}
	tenantA  = Principal{Name: "alice", Role: RoleTenant, Tenants: []string{"a"}, Via: "jwt"}
	tenantB  = Principal{Name: "bob", Role: RoleTenant, Tenants: []string{"b"}, Via: "jwt"}
	reseller = Principal{Name: "rex", Role: RoleReseller, Tenants: []string{"a", "c"}, Via: "jwt"}
	readOnly = Principal{Name: "ci", Role: RoleAdmin, Scopes: []string{"domains:read"}, Via: "api-token"}
	aWriter  = Principal{Name: "deploy", Role: RoleTenant, Tenants: []string{"a"}, Scopes: []string{"domains:write"}, Via: "api-token"}
)

// The matrix: every principal × action × owning tenant → allowed or not.
func TestAuthorizeMatrix(t *testing.T) {
	type row struct {
		p      Principal
		verb   Verb
		res    string
		tenant string
		want   bool
	}
	var rows []row
	add := func(p Principal, verb Verb, res, tenant string, want bool) {
		rows = append(rows, row{p, verb, res, tenant, want})
	}
	for _, res := range []string{ResourceDomains, ResourceDatabases} {
		for _, v := range []Verb{Read, Write} {
			add(Principal{}, v, res, "a", false)
			add(admin, v, res, "a", true)
			add(admin, v, res, "", true)
			add(tenantA, v, res, "a", true)
			add(tenantA, v, res, "b", false)
			add(tenantB, v, res, "a", false)
			add(reseller, v, res, "a", true)
			add(reseller, v, res, "c", true)
			add(reseller, v, res, "b", false)
		}
		add(tenantA, Read, res, "", true) // a list, filtered by ListFilter
		add(tenantA, Write, res, "", false)
	}
	// Tenants: a tenant principal reads itself, never writes it.
	add(tenantA, Read, ResourceTenants, "a", true)
	add(tenantA, Write, ResourceTenants, "a", false)
	add(tenantA, Read, ResourceTenants, "b", false)
	add(reseller, Write, ResourceTenants, "a", true)
	add(reseller, Write, ResourceTenants, "b", false)
	add(reseller, Write, ResourceTenants, "", false)
	add(admin, Write, ResourceTenants, "", true)
	// System: admins only.
	for _, p := range []Principal{tenantA, reseller, {}} {
		add(p, Read, ResourceSystem, "", false)
	}
	add(admin, Read, ResourceSystem, "", true)
	add(admin, Write, ResourceSystem, "", true)
	// Self: anyone authenticated.
	for _, p := range []Principal{admin, tenantA, reseller, readOnly, aWriter} {
		add(p, Write, ResourceSelf, "", true)
	}
	add(Principal{}, Read, ResourceSelf, "", false)
	// Scopes narrow the role.
	add(readOnly, Read, ResourceDomains, "a", true)
	add(readOnly, Write, ResourceDomains, "a", false)
	add(readOnly, Read, ResourceDatabases, "a", false)
	add(readOnly, Read, ResourceSystem, "", false)
	add(aWriter, Write, ResourceDomains, "a", true)
	add(aWriter, Read, ResourceDomains, "a", true)
	add(aWriter, Write, ResourceDomains, "b", false) // the scope does not widen the role
	add(aWriter, Read, ResourceTenants, "a", false)

	for _, r := range rows {
		name := fmt.Sprintf("%s/%s/%s@%q", principalName(r.p), r.verb, r.res, r.tenant)
		d := Authorize(r.p, Action{r.verb, r.res}, r.tenant)
		if d.Allowed != r.want {
			t.Errorf("%s: allowed %v (%s), want %v", name, d.Allowed, d.Reason, r.want)
		}
		if !d.Allowed && d.Reason == "" {
			t.Errorf("%s: refused without a reason", name)
		}
	}
}

func principalName(p Principal) string {
	if p.Anonymous() {
		return "anonymous"
	}
	return p.Name
}

// A refusal for another tenant's object says "no such", not "forbidden":
// tenant A cannot learn what tenant B has.
func TestRefusalDoesNotRevealOtherTenants(t *testing.T) {
	d := Authorize(tenantA, Action{Read, ResourceDomains}, "b")
	if d.Allowed || !d.Hidden || !strings.HasPrefix(d.Reason, "no such domain") {
		t.Errorf("decision %+v, want a 'no such domain' refusal", d)
	}
}

func TestListFilterAndLimits(t *testing.T) {
	if ts, all := ListFilter(admin); !all || ts != nil {
		t.Errorf("admin list filter %v %v", ts, all)
	}
	if ts, all := ListFilter(tenantA); all || len(ts) != 1 || ts[0] != "a" {
		t.Errorf("tenant list filter %v %v", ts, all)
	}
	if !SeesLimits(admin, "a") || SeesLimits(tenantA, "a") || !SeesLimits(reseller, "a") || SeesLimits(reseller, "b") {
		t.Error("SeesLimits wrong")
	}
}

func TestPrincipalCheck(t *testing.T) {
	for _, p := range []Principal{admin, tenantA, reseller, readOnly, aWriter} {
		if err := p.Check(); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
	for _, p := range []Principal{
		{},
		{Name: "x", Role: "root"},
		{Name: "x", Role: RoleTenant},
		{Name: "x", Role: RoleTenant, Tenants: []string{"a", "b"}},
		{Name: "x", Role: RoleAdmin, Tenants: []string{"a"}},
		{Name: "x", Role: RoleAdmin, Scopes: []string{"everything"}},
	} {
		if err := p.Check(); err == nil {
			t.Errorf("%+v: accepted", p)
		}
	}
}

func TestScopes(t *testing.T) {
	for _, s := range Scopes() {
		if !ValidScope(s) {
			t.Errorf("%s not valid", s)
		}
	}
	for _, s := range []string{"", "domains", "domains:delete", "Write", "root"} {
		if ValidScope(s) {
			t.Errorf("%q valid", s)
		}
	}
}

// Permits agrees with Authorize: whatever Authorize allows for some tenant,
// Permits allows; what Permits refuses, Authorize refuses for every tenant.
func TestPermitsIsAuthorizeWithoutTheObject(t *testing.T) {
	for _, p := range []Principal{{}, admin, tenantA, tenantB, reseller, readOnly, aWriter} {
		for _, res := range []string{ResourceTenants, ResourceDomains, ResourceDatabases, ResourceSystem, ResourceSelf} {
			for _, v := range []Verb{Read, Write} {
				a := Action{v, res}
				some := false
				for _, tn := range []string{"", "a", "b", "c"} {
					some = some || Authorize(p, a, tn).Allowed
				}
				if got := Permits(p, a).Allowed; got != some {
					t.Errorf("%s %s: Permits %v, Authorize for some tenant %v", principalName(p), a, got, some)
				}
			}
		}
	}
}

func TestScopeCovered(t *testing.T) {
	for _, c := range []struct {
		have []string
		want string
		ok   bool
	}{
		{[]string{"write"}, "domains:read", true},
		{[]string{"write"}, "read", true},
		{[]string{"write"}, "admin", false},
		{[]string{"read"}, "write", false},
		{[]string{"domains:write"}, "domains:read", true},
		{[]string{"domains:read"}, "domains:write", false},
		{[]string{"domains:read", "databases:read", "tenants:read"}, "read", true},
		{[]string{"domains:read"}, "read", false},
	} {
		if got := ScopeCovered(c.have, c.want); got != c.ok {
			t.Errorf("ScopeCovered(%v, %q) = %v, want %v", c.have, c.want, got, c.ok)
		}
	}
}
