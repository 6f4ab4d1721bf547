package token_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/store"
)

func TestLoginRefreshLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, token.Config{})
	ctx := context.Background()
	client := token.Client{UserAgent: "wcp/test", SourceAddress: "192.0.2.7"}

	first, err := e.svc.Login(ctx, "alice", client)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.RefreshToken, token.RefreshTokenPrefix) || !first.AccessExpiresAt.Equal(t0.Add(token.DefaultAccessTTL)) {
		t.Fatalf("login = %+v", first)
	}
	id, err := e.svc.Authenticate(ctx, first.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first.Identity, id); diff != "" || id.Principal != "alice" || id.Tenant != "acme" || id.Scopes != nil {
		t.Fatalf("identity %+v (-login +verified):\n%s", id, diff)
	}
	// A refresh token is no bearer token.
	_, err = e.svc.Authenticate(ctx, first.RefreshToken)
	wantRefusal(t, err, token.ErrMalformed)

	second, err := e.svc.Refresh(ctx, first.RefreshToken, client)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh handed out the same tokens")
	}
	third, err := e.svc.Refresh(ctx, second.RefreshToken, client)
	if err != nil {
		t.Fatal(err)
	}

	// The first refresh token again: it was copied. The session ends.
	_, err = e.svc.Refresh(ctx, first.RefreshToken, client)
	wantRefusal(t, err, token.ErrRefreshReused)
	_, err = e.svc.Refresh(ctx, third.RefreshToken, client)
	wantRefusal(t, err, token.ErrRevoked)

	// Another session: logout revokes it.
	other, err := e.svc.Login(ctx, "alice", client)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Logout(ctx, other.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Refresh(ctx, other.RefreshToken, client)
	wantRefusal(t, err, token.ErrRevoked)

	// Unknown, wrong secret, malformed.
	idPart := strings.TrimPrefix(other.RefreshToken, token.RefreshTokenPrefix)[:16]
	forged := token.RefreshTokenPrefix + idPart + "_" + strings.Repeat("A", 43)
	_, err = e.svc.Refresh(ctx, forged, client)
	wantRefusal(t, err, token.ErrUnknownToken)
	_, err = e.svc.Refresh(ctx, token.RefreshTokenPrefix+"0123456789abcdef_"+strings.Repeat("A", 43), client)
	wantRefusal(t, err, token.ErrUnknownToken)
	_, err = e.svc.Refresh(ctx, "wcpr_nope", client)
	wantRefusal(t, err, token.ErrMalformed)
	wantRefusal(t, e.svc.Logout(ctx, forged), token.ErrUnknownToken)

	// A role change shows in the next refresh.
	fresh, err := e.svc.Login(ctx, "alice", client)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutPrincipal(ctx, store.Principal{Name: "alice", Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
		t.Fatal(err)
	}
	promoted, err := e.svc.Refresh(ctx, fresh.RefreshToken, client)
	if err != nil || promoted.Identity.Role != store.RoleAdmin || promoted.Identity.Tenant != "" {
		t.Fatalf("refresh after a role change: %+v, %v", promoted.Identity, err)
	}

	// A disabled principal cannot log in or refresh.
	if _, err := e.st.PutPrincipal(ctx, store.Principal{Name: "alice", Role: store.RoleAdmin, Source: store.SourcePAM, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Login(ctx, "alice", client)
	wantRefusal(t, err, token.ErrDisabled)
	_, err = e.svc.Refresh(ctx, promoted.RefreshToken, client)
	wantRefusal(t, err, token.ErrDisabled)

	// No such principal: the store's error, not a token refusal.
	_, err = e.svc.Login(ctx, "mallory", client)
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("login of an unknown principal = %v", err)
	}
}

func TestRefreshExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, token.Config{RefreshTTL: time.Millisecond})
	ctx := context.Background()
	tok, err := e.svc.Login(ctx, "root", token.Client{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // refresh lifetimes are counted by the database's clock
	_, err = e.svc.Refresh(ctx, tok.RefreshToken, token.Client{})
	wantRefusal(t, err, token.ErrExpired)
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, token.Config{})
	ctx := context.Background()

	raw, created, err := e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "alice", Name: "deploy",
		Scopes: []string{"domains:write", "read", "read"}, CreatedBy: "root"})
	if err != nil {
		t.Fatal(err)
	}
	gotID, _, err := token.ParseAPIToken(raw)
	if err != nil || gotID != created.ID || !cmp.Equal(created.Scopes, []string{"domains:write", "read"}) {
		t.Fatalf("created %q = %+v, %v", raw, created, err)
	}
	id, err := e.svc.Authenticate(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	want := token.Identity{Principal: "alice", Role: "tenant", Tenant: "acme", Scopes: []string{"domains:write", "read"},
		Kind: token.KindAPI, TokenID: created.ID}
	if diff := cmp.Diff(want, id); diff != "" {
		t.Fatalf("identity (-want +got):\n%s", diff)
	}
	wantRBAC := rbac.Principal{Name: "alice", Role: rbac.RoleTenant, Tenants: []string{"acme"}, Scopes: []string{"domains:write", "read"}, Via: "api-token"}
	if diff := cmp.Diff(wantRBAC, id.RBAC()); diff != "" {
		t.Fatalf("RBAC principal (-want +got):\n%s", diff)
	}
	list, err := e.svc.ListAPITokens(ctx, "alice")
	if err != nil || len(list) != 1 || list[0].LastUsedAt == nil {
		t.Fatalf("list = %+v, %v", list, err)
	}

	// Refusals.
	_, _, err = e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "alice", Name: "bad", Scopes: []string{"sudo"}})
	if err == nil || !strings.Contains(err.Error(), `"sudo"`) {
		t.Fatalf("an unknown scope: %v", err)
	}
	_, _, err = e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "alice", Name: "deploy", Scopes: []string{"read"}})
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("a second token named deploy: %v", err)
	}
	idPart, _, _ := token.ParseAPIToken(raw)
	_, err = e.svc.VerifyAPIToken(ctx, token.APITokenPrefix+idPart+"_"+strings.Repeat("A", 43))
	wantRefusal(t, err, token.ErrUnknownToken)
	_, err = e.svc.VerifyAPIToken(ctx, raw[:len(raw)-1])
	wantRefusal(t, err, token.ErrMalformed)

	if _, err := e.svc.RevokeAPIToken(ctx, "alice", "deploy"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, raw)
	wantRefusal(t, err, token.ErrRevoked)

	short, _, err := e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "root", Name: "short", Scopes: []string{"read"}, TTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_, err = e.svc.Authenticate(ctx, short)
	wantRefusal(t, err, token.ErrExpired)

	forever, _, err := e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "root", Name: "ci", Scopes: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := e.svc.Authenticate(ctx, forever); err != nil || !id.ExpiresAt.IsZero() || !cmp.Equal(id.Scopes, []string{"write"}) {
		t.Fatalf("a token without expiry: %+v, %v", id, err)
	}
	if _, err := e.st.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, forever)
	wantRefusal(t, err, token.ErrDisabled)
}

func TestUnavailableIsNoRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true, token.Config{})
	ctx := context.Background()
	raw, _, err := e.svc.CreateAPIToken(ctx, token.APITokenRequest{Principal: "root", Name: "ci", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	e.st.Close()
	_, err = e.svc.Authenticate(ctx, raw)
	if err == nil || errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("with the store closed: %v, want an error that is not a refusal", err)
	}
}

func TestCheckScopes(t *testing.T) {
	t.Parallel()
	got, err := token.CheckScopes([]string{"write", "domains:read", "write"})
	if err != nil || !cmp.Equal(got, []string{"domains:read", "write"}) {
		t.Fatalf("CheckScopes = %v, %v", got, err)
	}
	for _, bad := range [][]string{nil, {}, {"sudo"}, {"read", "domains:admin"}} {
		if _, err := token.CheckScopes(bad); err == nil {
			t.Errorf("CheckScopes(%q) accepted it", bad)
		}
	}
}

func TestIdentityRBAC(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id   token.Identity
		want rbac.Principal
	}{
		{token.Identity{Principal: "root", Role: "admin", Kind: token.KindAccess}, rbac.Principal{Name: "root", Role: rbac.RoleAdmin, Via: "jwt"}},
		{token.Identity{Principal: "alice", Role: "tenant", Tenant: "acme", Kind: token.KindAccess},
			rbac.Principal{Name: "alice", Role: rbac.RoleTenant, Tenants: []string{"acme"}, Via: "jwt"}},
		{token.Identity{Principal: "rita", Role: "reseller", Tenants: []string{"a", "b"}, Scopes: []string{"read"}, Kind: token.KindAPI},
			rbac.Principal{Name: "rita", Role: rbac.RoleReseller, Tenants: []string{"a", "b"}, Scopes: []string{"read"}, Via: "api-token"}},
	} {
		if diff := cmp.Diff(c.want, c.id.RBAC()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.id.Principal, diff)
		}
		if err := c.id.RBAC().Check(); err != nil {
			t.Errorf("%s: %v", c.id.Principal, err)
		}
	}
}
