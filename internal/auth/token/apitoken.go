package token

import (
	"context"
	"fmt"
	"time"

	"github.com/wcp360/wcp360/internal/store"
)

// APITokenRequest asks for a new API token.
type APITokenRequest struct {
	Principal string   // whom it acts as (must exist and not be disabled)
	Name      string   // unique among the principal's tokens that are not revoked
	Scopes    []string // at least one of Scopes()
	// TTL is its lifetime from now (by the database's clock); 0: it never
	// expires and lives until revoked.
	TTL       time.Duration
	CreatedBy string // who asked (audit)
}

// CreateAPIToken makes an API token and returns it: the only time its
// secret is seen; the store keeps its hash. Its format is
// "wcp_<16 hex id>_<43 base64url secret>".
func (s *Service) CreateAPIToken(ctx context.Context, req APITokenRequest) (string, store.APIToken, error) {
	scopes, err := CheckScopes(req.Scopes)
	if err != nil {
		return "", store.APIToken{}, err
	}
	o, err := newOpaque()
	if err != nil {
		return "", store.APIToken{}, err
	}
	t, err := s.store.CreateAPIToken(ctx, store.NewAPIToken{ID: o.id, Name: req.Name, Principal: req.Principal,
		Scopes: scopes, Hash: o.hash(), TTL: req.TTL, CreatedBy: req.CreatedBy})
	if err != nil {
		return "", store.APIToken{}, err
	}
	return o.format(APITokenPrefix), t, nil
}

// ListAPITokens lists the API tokens of principal ("": everyone's),
// revoked and expired ones included. Secrets are never listed.
func (s *Service) ListAPITokens(ctx context.Context, principal string) ([]store.APIToken, error) {
	return s.store.ListAPITokens(ctx, principal)
}

// RevokeAPIToken revokes principal's API token named name (the store's
// ErrNotFound if there is none that is not revoked).
func (s *Service) RevokeAPIToken(ctx context.Context, principal, name string) (store.APIToken, error) {
	return s.store.RevokeAPIToken(ctx, principal, name)
}

// VerifyAPIToken checks an API token: its shape, its id, its secret
// (compared by hash in constant time), not revoked, not expired, its
// principal not disabled. Refusals: ErrMalformed, ErrUnknownToken,
// ErrRevoked, ErrExpired, ErrDisabled. The identity carries the principal's
// role and tenants as they are now and the token's scopes.
func (s *Service) VerifyAPIToken(ctx context.Context, raw string) (Identity, error) {
	o, err := parseOpaque(APITokenPrefix, raw)
	if err != nil {
		return Identity{}, err
	}
	t, p, err := s.store.UseAPIToken(ctx, o.id, o.hash())
	if err != nil {
		return Identity{}, storeRefusal(err)
	}
	scopes, err := CheckScopes(t.Scopes)
	if err != nil { // stored by a newer version that knows more scopes
		return Identity{}, fmt.Errorf("%w: %w", ErrClaims, err)
	}
	id := Identity{Principal: p.Name, Role: p.Role, Tenant: p.Tenant, Tenants: p.Tenants, Scopes: scopes,
		Kind: KindAPI, TokenID: t.ID}
	if t.ExpiresAt != nil {
		id.ExpiresAt = *t.ExpiresAt
	}
	return id, nil
}
