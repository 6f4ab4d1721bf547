package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/store"
)

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestPrincipals(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))
	apply(t, s, tenantReq("beta", `{}`))

	admin := store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM}
	got, err := s.PutPrincipal(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.PutPrincipal(ctx, admin) // first boot runs it again after a crash
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Fatalf("a repeated put changed the principal (-first +second):\n%s", diff)
	}
	if _, err := s.PutPrincipal(ctx, store.Principal{Name: "alice", Role: store.RoleTenant, Tenant: "acme", Source: store.SourcePAM}); err != nil {
		t.Fatal(err)
	}
	res, err := s.PutPrincipal(ctx, store.Principal{Name: "rita", Role: store.RoleReseller, Tenants: []string{"beta", "acme"}, Source: store.SourceLocal})
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(res.Tenants, []string{"acme", "beta"}) {
		t.Fatalf("reseller tenants = %v", res.Tenants)
	}
	res, err = s.PutPrincipal(ctx, store.Principal{Name: "rita", Role: store.RoleReseller, Tenants: []string{"beta"}, Source: store.SourceLocal})
	if err != nil || !cmp.Equal(res.Tenants, []string{"beta"}) {
		t.Fatalf("reseller tenants after a put of [beta] = %v, %v", res.Tenants, err)
	}

	for name, c := range map[string]struct {
		p        store.Principal
		sentinel error
		field    string
	}{
		"no name":          {store.Principal{Role: store.RoleAdmin, Source: store.SourcePAM}, store.ErrInvalid, "principal.name"},
		"unknown role":     {store.Principal{Name: "x", Role: "root", Source: store.SourcePAM}, store.ErrInvalid, "principal.role"},
		"tenant unbound":   {store.Principal{Name: "x", Role: store.RoleTenant, Source: store.SourcePAM}, store.ErrInvalid, "principal.tenant"},
		"admin with one":   {store.Principal{Name: "x", Role: store.RoleAdmin, Tenant: "acme", Source: store.SourcePAM}, store.ErrInvalid, "principal.tenant"},
		"admin with many":  {store.Principal{Name: "x", Role: store.RoleAdmin, Tenants: []string{"acme"}, Source: store.SourcePAM}, store.ErrInvalid, "principal.tenants"},
		"unknown source":   {store.Principal{Name: "x", Role: store.RoleAdmin, Source: "ldap"}, store.ErrInvalid, "principal.source"},
		"missing tenant":   {store.Principal{Name: "x", Role: store.RoleTenant, Tenant: "nope", Source: store.SourcePAM}, store.ErrDependency, "principal.tenant"},
		"reseller missing": {store.Principal{Name: "x", Role: store.RoleReseller, Tenants: []string{"nope"}, Source: store.SourcePAM}, store.ErrDependency, "principal.tenant"},
	} {
		_, err := s.PutPrincipal(ctx, c.p)
		t.Run(name, func(t *testing.T) { wantFieldError(t, err, c.sentinel, c.field) })
	}

	list, err := s.ListPrincipals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if !cmp.Equal(names, []string{"alice", "rita", "root"}) {
		t.Fatalf("principals = %v", names)
	}

	// A tenant principal goes with its tenant, and its tokens with it.
	if _, err := s.CreateAPIToken(ctx, store.NewAPIToken{ID: "a1", Name: "ci", Principal: "alice", Scopes: []string{"read"}, Hash: hashOf("a1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `DELETE FROM tenants WHERE name = 'acme'`); err != nil {
		t.Fatal(err)
	}
	wantFieldError(t, s.DeletePrincipal(ctx, "alice"), store.ErrNotFound, "principal")
	if n := count(t, s, `SELECT count(*) FROM auth_api_tokens`); n != 0 {
		t.Fatalf("%d API tokens left after their principal went", n)
	}
	if _, err := s.GetPrincipal(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePrincipal(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetPrincipal(ctx, "root")
	wantFieldError(t, err, store.ErrNotFound, "principal")
}

func TestRefreshTokenRotation(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
		t.Fatal(err)
	}
	first, err := s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "r1", Principal: "root", Hash: hashOf("s1"),
		TTL: time.Hour, FamilyTTL: 24 * time.Hour, UserAgent: "wcp/1", SourceAddress: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Family == "" || first.UserAgent != "wcp/1" || !first.ExpiresAt.Before(first.FamilyExpiresAt) {
		t.Fatalf("first token = %+v", first)
	}

	// A wrong secret is an unknown token and uses nothing.
	_, _, err = s.RotateRefreshToken(ctx, "r1", hashOf("guess"), store.NewRefreshToken{ID: "x", Hash: hashOf("x"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrNotFound, "token")
	_, _, err = s.RotateRefreshToken(ctx, "nope", hashOf("s1"), store.NewRefreshToken{ID: "x", Hash: hashOf("x"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrNotFound, "token")

	second, p, err := s.RotateRefreshToken(ctx, "r1", hashOf("s1"), store.NewRefreshToken{ID: "r2", Hash: hashOf("s2"), TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if second.Family != first.Family || second.Parent != "r1" || p.Name != "root" || p.Role != store.RoleAdmin {
		t.Fatalf("second = %+v, principal %+v", second, p)
	}
	if !second.ExpiresAt.Equal(first.FamilyExpiresAt) {
		t.Fatalf("a 48 h token in a 24 h family expires at %v, want the family's %v", second.ExpiresAt, first.FamilyExpiresAt)
	}
	// Another login is another family, untouched by what follows.
	_, err = s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "o1", Principal: "root", Hash: hashOf("o1"), TTL: time.Hour, FamilyTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	// r1 again: reuse. The family is revoked, r2 with it.
	_, _, err = s.RotateRefreshToken(ctx, "r1", hashOf("s1"), store.NewRefreshToken{ID: "r3", Hash: hashOf("s3"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrTokenReused, "token")
	_, _, err = s.RotateRefreshToken(ctx, "r2", hashOf("s2"), store.NewRefreshToken{ID: "r3", Hash: hashOf("s3"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrRevoked, "token")
	if n := count(t, s, `SELECT count(*) FROM auth_refresh_tokens WHERE family = $1::uuid AND revoked_at IS NULL`, first.Family); n != 0 {
		t.Fatalf("%d tokens of a reused family are not revoked", n)
	}
	if _, _, err := s.RotateRefreshToken(ctx, "o1", hashOf("o1"), store.NewRefreshToken{ID: "o2", Hash: hashOf("o2"), TTL: time.Hour}); err != nil {
		t.Fatalf("another family: %v", err)
	}

	// Logout revokes the family; a second logout is no error.
	if err := s.RevokeRefreshFamily(ctx, "o2", hashOf("o2")); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRefreshFamily(ctx, "o2", hashOf("o2")); err != nil {
		t.Fatal(err)
	}
	wantFieldError(t, s.RevokeRefreshFamily(ctx, "o2", hashOf("guess")), store.ErrNotFound, "token")
	_, _, err = s.RotateRefreshToken(ctx, "o2", hashOf("o2"), store.NewRefreshToken{ID: "o3", Hash: hashOf("o3"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrRevoked, "token")

	// Expired.
	if _, err := s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "e1", Principal: "root", Hash: hashOf("e1"), TTL: time.Millisecond, FamilyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_, _, err = s.RotateRefreshToken(ctx, "e1", hashOf("e1"), store.NewRefreshToken{ID: "e2", Hash: hashOf("e2"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrExpired, "token")

	// Disabled principal: no new session, no refresh.
	if _, err := s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "d1", Principal: "root", Hash: hashOf("d1"), TTL: time.Hour, FamilyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.RotateRefreshToken(ctx, "d1", hashOf("d1"), store.NewRefreshToken{ID: "d2", Hash: hashOf("d2"), TTL: time.Hour})
	wantFieldError(t, err, store.ErrDisabled, "principal")
	_, err = s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "d3", Principal: "root", Hash: hashOf("d3"), TTL: time.Hour, FamilyTTL: time.Hour})
	wantFieldError(t, err, store.ErrDisabled, "principal")
	_, err = s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "n1", Principal: "nobody", Hash: hashOf("n1"), TTL: time.Hour, FamilyTTL: time.Hour})
	wantFieldError(t, err, store.ErrNotFound, "principal")

	if n, err := s.RevokePrincipalRefreshTokens(ctx, "root"); err != nil || n != 2 {
		t.Fatalf("RevokePrincipalRefreshTokens = %d, %v; want d1 and the expired e1", n, err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE auth_refresh_tokens SET family_expires_at = now(), expires_at = least(expires_at, now()), created_at = now() - interval '1 day' WHERE family = $1::uuid`, first.Family); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredRefreshTokens(ctx); err != nil || n != 2 {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v; want r1 and r2", n, err)
	}
}

// TestRefreshTokenConcurrentUse: two uses of one token at once, as two
// copies of a stolen token would be: exactly one wins, the other is a reuse.
func TestRefreshTokenConcurrentUse(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRefreshToken(ctx, store.NewRefreshToken{ID: "r1", Principal: "root", Hash: hashOf("s1"), TTL: time.Hour, FamilyTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	done := make(chan int)
	for i := range errs {
		go func() {
			_, _, errs[i] = s.RotateRefreshToken(ctx, "r1", hashOf("s1"), store.NewRefreshToken{ID: string(rune('a' + i)), Hash: hashOf("n"), TTL: time.Hour})
			done <- i
		}()
	}
	<-done
	<-done
	ok, reused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrTokenReused):
			reused++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 || reused != 1 {
		t.Fatalf("%d rotations and %d reuses, want 1 and 1", ok, reused)
	}
	if n := count(t, s, `SELECT count(*) FROM auth_refresh_tokens WHERE revoked_at IS NULL`); n != 0 {
		t.Fatalf("%d tokens left alive after a reuse", n)
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for _, name := range []string{"root", "bot"} {
		if _, err := s.PutPrincipal(ctx, store.Principal{Name: name, Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
			t.Fatal(err)
		}
	}
	ci, err := s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t1", Name: "ci", Principal: "bot", Scopes: []string{"read", "domains:write"},
		Hash: hashOf("t1"), TTL: time.Hour, CreatedBy: "root"})
	if err != nil {
		t.Fatal(err)
	}
	if ci.ExpiresAt == nil || ci.LastUsedAt != nil || ci.CreatedBy != "root" || !cmp.Equal(ci.Scopes, []string{"read", "domains:write"}) {
		t.Fatalf("created = %+v", ci)
	}
	_, err = s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t2", Name: "ci", Principal: "bot", Scopes: []string{"read"}, Hash: hashOf("t2")})
	wantFieldError(t, err, store.ErrDuplicate, "token.name")
	_, err = s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t1", Name: "other", Principal: "bot", Scopes: []string{"read"}, Hash: hashOf("t2")})
	wantFieldError(t, err, store.ErrDuplicate, "token")
	_, err = s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t3", Name: "x", Principal: "nobody", Scopes: []string{"read"}, Hash: hashOf("t3")})
	wantFieldError(t, err, store.ErrNotFound, "principal")
	_, err = s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t3", Name: "x", Principal: "bot", Hash: hashOf("t3")})
	wantFieldError(t, err, store.ErrInvalid, "token.scopes")
	_, err = s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t3", Name: "x", Principal: "bot", Scopes: []string{"read"}, Hash: []byte("short")})
	wantFieldError(t, err, store.ErrInvalid, "token.hash")
	// The same name for another principal is fine; no TTL never expires.
	if _, err := s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t4", Name: "ci", Principal: "root", Scopes: []string{"write"}, Hash: hashOf("t4")}); err != nil {
		t.Fatal(err)
	}

	used, p, err := s.UseAPIToken(ctx, "t1", hashOf("t1"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "bot" || used.LastUsedAt == nil {
		t.Fatalf("used = %+v, principal %+v", used, p)
	}
	// Used again within the minute: last_used_at is not written again.
	again, _, err := s.UseAPIToken(ctx, "t1", hashOf("t1"))
	if err != nil || !again.LastUsedAt.Equal(*used.LastUsedAt) {
		t.Fatalf("second use: last used %v (first %v), %v", again.LastUsedAt, used.LastUsedAt, err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE auth_api_tokens SET last_used_at = now() - interval '2 minutes' WHERE id = 't1'`); err != nil {
		t.Fatal(err)
	}
	third, _, err := s.UseAPIToken(ctx, "t1", hashOf("t1"))
	if err != nil || !third.LastUsedAt.After(*used.LastUsedAt) {
		t.Fatalf("use after two minutes: last used %v, %v", third.LastUsedAt, err)
	}

	_, _, err = s.UseAPIToken(ctx, "t1", hashOf("guess"))
	wantFieldError(t, err, store.ErrNotFound, "token")
	_, _, err = s.UseAPIToken(ctx, "nope", hashOf("t1"))
	wantFieldError(t, err, store.ErrNotFound, "token")

	list, err := s.ListAPITokens(ctx, "bot")
	if err != nil || len(list) != 1 || list[0].ID != "t1" {
		t.Fatalf("bot's tokens = %+v, %v", list, err)
	}
	if all, err := s.ListAPITokens(ctx, ""); err != nil || len(all) != 2 {
		t.Fatalf("all tokens = %+v, %v", all, err)
	}

	revoked, err := s.RevokeAPIToken(ctx, "bot", "ci")
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("revoke = %+v, %v", revoked, err)
	}
	_, _, err = s.UseAPIToken(ctx, "t1", hashOf("t1"))
	wantFieldError(t, err, store.ErrRevoked, "token")
	_, err = s.RevokeAPIToken(ctx, "bot", "ci")
	wantFieldError(t, err, store.ErrNotFound, "token.name")
	// The name is free again once revoked.
	if _, err := s.CreateAPIToken(ctx, store.NewAPIToken{ID: "t5", Name: "ci", Principal: "bot", Scopes: []string{"read"}, Hash: hashOf("t5"), TTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	_, _, err = s.UseAPIToken(ctx, "t5", hashOf("t5"))
	wantFieldError(t, err, store.ErrExpired, "token")

	if _, err := s.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.UseAPIToken(ctx, "t4", hashOf("t4"))
	wantFieldError(t, err, store.ErrDisabled, "principal")
}
