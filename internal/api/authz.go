package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/store"
)

// Authenticator turns a bearer credential (an access token or an API
// token) into the principal it was issued to.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (rbac.Principal, error)
}

// ErrUnauthenticated is what an Authenticator wraps when the credential is
// not good (bad signature, expired, revoked): 401.
var ErrUnauthenticated = errors.New("unauthenticated")

// rootPrincipal is root on the local socket: an admin without a token, so
// the local CLI and emergencies always work.
var rootPrincipal = rbac.Principal{Name: "root", Role: rbac.RoleAdmin, Via: "unix"} //nolint:gochecknoglobals // constant

type principalKey struct{}

// PrincipalFrom returns who the request acts for (the zero Principal for
// an anonymous request).
func PrincipalFrom(ctx context.Context) rbac.Principal {
	p, _ := ctx.Value(principalKey{}).(rbac.Principal)
	return p
}

// identify finds the request's principal: root on the local socket, or the
// bearer credential's principal (Options.Auth), or anonymous.
func (s *Server) identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p rbac.Principal
		if peer, ok := PeerFrom(r.Context()); ok && peer.Root() {
			p = rootPrincipal
		} else if bearer, ok := bearerToken(r); ok {
			if s.opts.Auth == nil {
				unauthorized(w, "this API accepts no tokens here")
				return
			}
			var err error
			if p, err = s.opts.Auth.Authenticate(r.Context(), bearer); err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					s.internalError(w, err)
					return
				}
				unauthorized(w, unauthenticatedDetail(err))
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// bearerToken is the credential of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func unauthorized(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="wcp360"`)
	writeProblem(w, http.StatusUnauthorized, "Unauthenticated", detail, nil)
}

// unauthenticatedDetail is the problem detail of err, an error wrapping
// ErrUnauthenticated: its message without ErrUnauthenticated's own text
// in front, which the title ("Unauthenticated") says already.
func unauthenticatedDetail(err error) string {
	msg := err.Error()
	if detail, ok := strings.CutPrefix(msg, ErrUnauthenticated.Error()+": "); ok {
		return detail
	}
	return msg
}

// guard is the one place a route's declared Action is enforced: before the
// handler runs, the principal must be permitted the action on some object
// (its role and scopes); handlers that load an object then call allowed
// with the object's tenant. A nil action is a public route.
func (s *Server) guard(a *rbac.Action, h http.HandlerFunc) http.HandlerFunc {
	if a == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.permitted(w, r, *a) {
			return
		}
		h(w, r)
	}
}

// guardKind is guard for the /api/v1/{plural} routes: the resource is the
// plural, the verb the route's.
func (s *Server) guardKind(verb rbac.Verb, h kindHandler) http.HandlerFunc {
	return s.withKind(func(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
		if !s.permitted(w, r, rbac.Action{Verb: verb, Resource: Plural(kind)}) {
			return
		}
		h(w, r, kind)
	})
}

func (s *Server) permitted(w http.ResponseWriter, r *http.Request, a rbac.Action) bool {
	p := PrincipalFrom(r.Context())
	if p.Anonymous() {
		unauthorized(w, "this needs a bearer token (wcp login), or root on the local socket")
		return false
	}
	if d := rbac.Permits(p, a); !d.Allowed {
		writeProblem(w, http.StatusForbidden, "Forbidden", d.Reason, nil)
		return false
	}
	return true
}

// allowed checks the principal against an object owned by tenant and
// answers the refusal itself: 404 for another tenant's object (as if it
// did not exist), 403 otherwise.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind, verb rbac.Verb, tenant string) bool {
	d := rbac.Authorize(PrincipalFrom(r.Context()), rbac.Action{Verb: verb, Resource: Plural(kind)}, tenant)
	switch {
	case d.Allowed:
		return true
	case d.Hidden:
		writeProblem(w, http.StatusNotFound, "Not found", strings.ToLower(string(kind))+" "+r.PathValue("name")+" does not exist", nil)
	default:
		writeProblem(w, http.StatusForbidden, "Forbidden", d.Reason, nil)
	}
	return false
}

// load gets the named object and checks verb on it; false when it
// answered already (not found, refused, a store error).
func (s *Server) load(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind, verb rbac.Verb) (store.Resource, bool) {
	row, err := s.opts.Store.Get(r.Context(), kind, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return row, false
	}
	return row, s.allowed(w, r, kind, verb, row.Tenant)
}

// visible filters a list to the tenants the principal may see.
func visible(p rbac.Principal, rows []store.Resource) []store.Resource {
	tenants, all := rbac.ListFilter(p)
	if all {
		return rows
	}
	return slices.DeleteFunc(rows, func(r store.Resource) bool { return !slices.Contains(tenants, r.Tenant) })
}

// actor is who a write is recorded as.
func actor(p rbac.Principal) string {
	if p.Via == rootPrincipal.Via && p.Name == rootPrincipal.Name {
		return localActor
	}
	return p.Name + "@" + p.Via
}

// redact removes what the principal may not read from a stored resource:
// a Tenant's limits from a tenant principal.
func redact(p rbac.Principal, row store.Resource) store.Resource {
	if row.Kind != v1alpha1.KindTenant || rbac.SeesLimits(p, row.Name) {
		return row
	}
	row.Spec = withoutLimits(row.Spec)
	return row
}

// withoutLimits is a Tenant spec without its limits.
func withoutLimits(spec json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if len(spec) == 0 || json.Unmarshal(spec, &m) != nil {
		return spec
	}
	if _, ok := m["limits"]; !ok {
		return spec
	}
	delete(m, "limits")
	b, err := json.Marshal(m)
	if err != nil {
		return spec
	}
	return b
}
