package token

import (
	"context"
	"fmt"
	"time"

	"github.com/wcp360/wcp360/internal/store"
)

// Client describes where a login or refresh comes from; it is stored with
// the refresh token for the audit and the session list. Both are optional.
type Client struct {
	UserAgent     string
	SourceAddress string
}

// Tokens is what a login or refresh hands out.
type Tokens struct {
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	Identity         Identity // what AccessToken verifies as
}

// Login starts a session for principal, whose password the caller has
// checked (PAM): an access token and the first refresh token of a new
// family. A principal that does not exist is the store's ErrNotFound; a
// disabled one is ErrDisabled.
func (s *Service) Login(ctx context.Context, principal string, c Client) (Tokens, error) {
	p, err := s.store.GetPrincipal(ctx, principal)
	if err != nil {
		return Tokens{}, err
	}
	if p.Disabled {
		return Tokens{}, fmt.Errorf("%w: %q", ErrDisabled, principal)
	}
	o, err := newOpaque()
	if err != nil {
		return Tokens{}, err
	}
	rt, err := s.store.CreateRefreshToken(ctx, store.NewRefreshToken{
		ID: o.id, Principal: p.Name, Hash: o.hash(), TTL: s.cfg.RefreshTTL, FamilyTTL: s.cfg.SessionTTL,
		UserAgent: c.UserAgent, SourceAddress: c.SourceAddress,
	})
	if err != nil {
		return Tokens{}, storeRefusal(err)
	}
	return s.tokens(p, o, rt)
}

// Refresh trades a refresh token for a new access token and a new refresh
// token of the same session; the one presented cannot be used again. The
// new access token carries the principal's role and tenants as they are
// now. Refusals: ErrMalformed, ErrUnknownToken, ErrExpired, ErrRevoked,
// ErrDisabled, and ErrRefreshReused, after which the whole session is
// revoked: a refresh token used twice has been copied.
func (s *Service) Refresh(ctx context.Context, refresh string, c Client) (Tokens, error) {
	cur, err := parseOpaque(RefreshTokenPrefix, refresh)
	if err != nil {
		return Tokens{}, err
	}
	next, err := newOpaque()
	if err != nil {
		return Tokens{}, err
	}
	rt, p, err := s.store.RotateRefreshToken(ctx, cur.id, cur.hash(), store.NewRefreshToken{
		ID: next.id, Hash: next.hash(), TTL: s.cfg.RefreshTTL, UserAgent: c.UserAgent, SourceAddress: c.SourceAddress,
	})
	if err != nil {
		return Tokens{}, storeRefusal(err)
	}
	return s.tokens(p, next, rt)
}

// Logout revokes the session (the family) of a refresh token. Access tokens
// already issued stay valid until they expire (Config.AccessTTL).
func (s *Service) Logout(ctx context.Context, refresh string) error {
	cur, err := parseOpaque(RefreshTokenPrefix, refresh)
	if err != nil {
		return err
	}
	return storeRefusal(s.store.RevokeRefreshFamily(ctx, cur.id, cur.hash()))
}

func (s *Service) tokens(p store.Principal, o opaque, rt store.RefreshToken) (Tokens, error) {
	access, exp, err := s.IssueAccessToken(p)
	if err != nil {
		return Tokens{}, err
	}
	id, err := s.Verify(access)
	if err != nil { // our own token: a broken key ring or clock
		return Tokens{}, fmt.Errorf("token: a fresh access token does not verify: %w", err)
	}
	return Tokens{AccessToken: access, AccessExpiresAt: exp, RefreshToken: o.format(RefreshTokenPrefix),
		RefreshExpiresAt: rt.ExpiresAt, Identity: id}, nil
}
