package token

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/store"
)

// Defaults of Config.
const (
	DefaultIssuer     = "wcp360"
	DefaultAudience   = "wcp360-api"
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
	DefaultSessionTTL = 30 * 24 * time.Hour
	DefaultLeeway     = 30 * time.Second
)

// maxTokenLen bounds what Verify parses; our access tokens are well under 1 KiB.
const maxTokenLen = 8 << 10

// Config tunes a Service. Zero values take the defaults.
type Config struct {
	// Issuer (iss) written and required (DefaultIssuer).
	Issuer string
	// Audience (aud) written and required (DefaultAudience).
	Audience string
	// AccessTTL is the lifetime of an access token (DefaultAccessTTL).
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of one refresh token: a session left unused
	// that long ends (DefaultRefreshTTL).
	RefreshTTL time.Duration
	// SessionTTL bounds a login session however often it is refreshed
	// (DefaultSessionTTL).
	SessionTTL time.Duration
	// Leeway is the clock skew tolerated on exp, nbf and iat
	// (DefaultLeeway): several wcpd hosts and their clients never agree to
	// the second.
	Leeway time.Duration
	// Clock stamps and checks access tokens and dates new keys. Required.
	// Refresh and API token lifetimes are counted by the database's clock,
	// like every other time the store keeps.
	Clock func() time.Time
}

// Store is what a Service needs of internal/store; *store.Store has it.
type Store interface {
	GetPrincipal(ctx context.Context, name string) (store.Principal, error)
	CreateRefreshToken(ctx context.Context, t store.NewRefreshToken) (store.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, id string, hash []byte, next store.NewRefreshToken) (store.RefreshToken, store.Principal, error)
	RevokeRefreshFamily(ctx context.Context, id string, hash []byte) error
	CreateAPIToken(ctx context.Context, t store.NewAPIToken) (store.APIToken, error)
	ListAPITokens(ctx context.Context, principal string) ([]store.APIToken, error)
	RevokeAPIToken(ctx context.Context, principal, name string) (store.APIToken, error)
	UseAPIToken(ctx context.Context, id string, hash []byte) (store.APIToken, store.Principal, error)
}

// Service issues and verifies every kind of token.
type Service struct {
	keys   *KeyRing
	store  Store
	cfg    Config
	parser *jwt.Parser
}

// New makes a Service over a loaded key ring and the store.
func New(keys *KeyRing, st Store, cfg Config) (*Service, error) {
	if keys == nil || st == nil || cfg.Clock == nil {
		return nil, errors.New("token: a key ring, a store and a clock are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.AccessTTL, DefaultAccessTTL)
	def(&cfg.RefreshTTL, DefaultRefreshTTL)
	def(&cfg.SessionTTL, DefaultSessionTTL)
	def(&cfg.Leeway, DefaultLeeway)
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	s := &Service{keys: keys, store: st, cfg: cfg}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), // the algorithm is pinned
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithNotBeforeRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Clock),
		jwt.WithStrictDecoding(),
	)
	return s, nil
}

// Identity is who a verified token speaks for, and what it may do.
type Identity struct {
	Principal string
	Role      string   // store.RoleAdmin, RoleTenant or RoleReseller
	Tenant    string   // RoleTenant only
	Tenants   []string // RoleReseller only
	Scopes    []string // nil: no narrowing (a login); else rbac scopes (an API token)
	Kind      string   // KindAccess or KindAPI
	TokenID   string   // the JWT's jti or the API token's id (loggable)
	ExpiresAt time.Time
}

// Kinds of Identity, the values of rbac.Principal.Via.
const (
	KindAccess = "jwt"       // an access token from Login or Refresh
	KindAPI    = "api-token" // an API token
)

// RBAC is the identity as the policy sees it.
func (id Identity) RBAC() rbac.Principal {
	p := rbac.Principal{Name: id.Principal, Role: rbac.Role(id.Role), Scopes: slices.Clone(id.Scopes), Via: id.Kind}
	switch id.Role {
	case store.RoleTenant:
		p.Tenants = []string{id.Tenant}
	case store.RoleReseller:
		p.Tenants = slices.Clone(id.Tenants)
	}
	return p
}

// claims of an access token.
type claims struct {
	jwt.RegisteredClaims
	Role    string   `json:"role"`
	Tenant  string   `json:"tenant,omitempty"`
	Tenants []string `json:"tenants,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
}

// IssueAccessToken signs an access token for p, narrowed to scopes if any
// are given (Login and Refresh give none). It is exported for the bootstrap
// and for tests.
func (s *Service) IssueAccessToken(p store.Principal, scopes ...string) (string, time.Time, error) {
	if len(scopes) > 0 {
		var err error
		if scopes, err = CheckScopes(scopes); err != nil {
			return "", time.Time{}, err
		}
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("token: random: %w", err)
	}
	now := s.cfg.Clock().Truncate(time.Second)
	exp := now.Add(s.cfg.AccessTTL)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.Issuer, Audience: jwt.ClaimStrings{s.cfg.Audience}, Subject: p.Name,
			ExpiresAt: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
			ID: base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		Role: p.Role, Tenant: p.Tenant, Tenants: p.Tenants, Scopes: scopes,
	}
	key := s.keys.signer()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = key.id
	signed, err := t.SignedString(key.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	return signed, exp, nil
}

// Verify checks an access token: EdDSA only, a kid of the key ring, the
// signature, iss and aud, exp, nbf and iat (all required, with Config.Leeway),
// sub, jti, role and tenant(s), and scopes (optional; known ones only).
// Every refusal matches ErrInvalidToken and one of the errors of errors.go.
func (s *Service) Verify(raw string) (Identity, error) {
	if len(raw) > maxTokenLen {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	var (
		c      claims
		keyErr error // keyFor's own refusal, returned as it is
	)
	t, err := s.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		pub, err := s.keyFor(t)
		keyErr = err
		return pub, err
	})
	switch {
	case keyErr != nil:
		return Identity{}, keyErr
	case err != nil:
		return Identity{}, refusalOf(t, err)
	}
	if err := checkClaims(&c); err != nil {
		return Identity{}, err
	}
	return Identity{
		Principal: c.Subject, Role: c.Role, Tenant: c.Tenant, Tenants: c.Tenants, Scopes: c.Scopes,
		Kind: KindAccess, TokenID: c.ID, ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

func (s *Service) keyFor(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodEdDSA { // WithValidMethods has refused it already
		return nil, fmt.Errorf("%w: alg %q", ErrAlgorithm, t.Method.Alg())
	}
	kid, ok := t.Header["kid"].(string)
	if !ok || kid == "" {
		return nil, fmt.Errorf("%w: no kid in the header", ErrUnknownKey)
	}
	pub, ok := s.keys.public(kid)
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, truncate(kid))
	}
	return pub, nil
}

// refusalOf maps a jwt error to one of ours.
func refusalOf(t *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && t.Method.Alg() != jwt.SigningMethodEdDSA.Alg() {
			return fmt.Errorf("%w: alg %q", ErrAlgorithm, truncate(t.Method.Alg()))
		}
		return fmt.Errorf("%w: %w", ErrSignature, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable): // alg missing or unknown
		return fmt.Errorf("%w: %w", ErrAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: %w", ErrNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return fmt.Errorf("%w: %w", ErrIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Errorf("%w: %w", ErrAudience, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fmt.Errorf("%w: %w", ErrClaims, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

func checkClaims(c *claims) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrClaims, fmt.Sprintf(format, args...))
	}
	switch {
	case c.IssuedAt == nil:
		return bad("iat is required")
	case c.Subject == "":
		return bad("sub is required")
	case c.ID == "":
		return bad("jti is required")
	case c.Scopes != nil && len(c.Scopes) == 0:
		return bad("scopes, when present, name at least one scope")
	}
	switch c.Role {
	case store.RoleAdmin:
		if c.Tenant != "" || len(c.Tenants) > 0 {
			return bad("an admin token names no tenant")
		}
	case store.RoleTenant:
		if c.Tenant == "" || len(c.Tenants) > 0 {
			return bad("a tenant token names exactly one tenant")
		}
	case store.RoleReseller:
		if c.Tenant != "" {
			return bad("a reseller token lists its tenants in tenants")
		}
	default:
		return bad("role %q is not admin, tenant or reseller", truncate(c.Role))
	}
	for _, sc := range c.Scopes {
		if !rbac.ValidScope(sc) {
			return bad("unknown scope %q", truncate(sc))
		}
	}
	return nil
}

// truncate keeps attacker-chosen strings short in error messages.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// Authenticate verifies a bearer token of any kind: an API token (by its
// prefix) or an access token. Refusals match ErrInvalidToken; a refresh
// token is refused (ErrMalformed): it is only good for Refresh.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	switch {
	case strings.HasPrefix(bearer, APITokenPrefix):
		return s.VerifyAPIToken(ctx, bearer)
	case strings.HasPrefix(bearer, RefreshTokenPrefix):
		return Identity{}, fmt.Errorf("%w: a refresh token is not a bearer token", ErrMalformed)
	}
	return s.Verify(bearer)
}

// RotateKeys makes a new signing key and prunes the keys no valid access
// token can have been signed by (retired more than AccessTTL + Leeway ago).
func (s *Service) RotateKeys() (kid string, pruned []string, err error) {
	return s.keys.Rotate(s.cfg.Clock(), s.cfg.AccessTTL+s.cfg.Leeway)
}

// refuse is sentinel with the store's message. The store's error is not
// wrapped: a refusal must not match store.ErrNotFound and pass for a
// missing resource (404) where it is a bad credential (401).
func refuse(sentinel, storeErr error) error {
	return fmt.Errorf("%w (%s)", sentinel, storeErr.Error())
}

// storeRefusal maps the store's refusals about an opaque token to ours;
// anything else (ErrUnavailable...) comes back unchanged.
func storeRefusal(err error) error {
	var fe *store.FieldError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrTokenReused):
		return refuse(ErrRefreshReused, err)
	case errors.Is(err, store.ErrRevoked):
		return refuse(ErrRevoked, err)
	case errors.Is(err, store.ErrExpired):
		return refuse(ErrExpired, err)
	case errors.Is(err, store.ErrDisabled):
		return refuse(ErrDisabled, err)
	case errors.Is(err, store.ErrNotFound) && errors.As(err, &fe) && fe.Field == "token":
		return refuse(ErrUnknownToken, err)
	}
	return err
}
