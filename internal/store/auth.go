package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles of a principal.
const (
	RoleAdmin    = "admin"    // everything
	RoleTenant   = "tenant"   // one tenant (Principal.Tenant)
	RoleReseller = "reseller" // the tenants in Principal.Tenants
)

// Sources of a principal: how it proves who it is.
const (
	SourcePAM   = "pam"   // a login name checked by PAM
	SourceLocal = "local" // no password: API tokens only (automation)
)

// Errors about credentials, wrapped in a *FieldError (Field "token" or
// "principal") like the errors of types.go.
var (
	// ErrTokenReused: a refresh token presented a second time. Its whole
	// family has been revoked (committed) by the call that returned it.
	ErrTokenReused = errors.New("was already used: every token of its family is revoked")
	ErrRevoked     = errors.New("has been revoked")
	ErrExpired     = errors.New("has expired")
	ErrDisabled    = errors.New("is disabled")
)

// APITokenTouchInterval is how stale last_used_at may get: UseAPIToken
// writes it at most once per interval per token, so verifying a token costs
// one indexed read and, once a minute, one write.
const APITokenTouchInterval = time.Minute

// Principal is someone who may authenticate.
type Principal struct {
	Name      string
	Role      string   // RoleAdmin, RoleTenant or RoleReseller
	Tenant    string   // RoleTenant only
	Tenants   []string // RoleReseller only, sorted
	Source    string   // SourcePAM or SourceLocal
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RefreshToken is a stored refresh token, without its hash.
type RefreshToken struct {
	ID              string
	Principal       string
	Family          string // uuid shared by the tokens of one login
	Parent          string // the token this one replaced ("" for the first)
	CreatedAt       time.Time
	ExpiresAt       time.Time
	FamilyExpiresAt time.Time
	UsedAt          *time.Time
	RevokedAt       *time.Time
	UserAgent       string
	SourceAddress   string
}

// NewRefreshToken is a refresh token to store. Lifetimes count from the
// database's now().
type NewRefreshToken struct {
	ID        string
	Principal string // ignored by RotateRefreshToken: the family's principal
	Hash      []byte // SHA-256 of the secret (32 bytes)
	TTL       time.Duration
	// FamilyTTL bounds the whole family (CreateRefreshToken only): no
	// rotation extends a token past it.
	FamilyTTL     time.Duration
	UserAgent     string
	SourceAddress string
}

// APIToken is a stored API token, without its hash.
type APIToken struct {
	ID         string
	Name       string
	Principal  string
	Scopes     []string
	CreatedAt  time.Time
	CreatedBy  string
	ExpiresAt  *time.Time // nil: never
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// NewAPIToken is an API token to store.
type NewAPIToken struct {
	ID        string
	Name      string
	Principal string
	Scopes    []string
	Hash      []byte        // SHA-256 of the secret (32 bytes)
	TTL       time.Duration // 0: never expires
	CreatedBy string
}

// ---------------------------------------------------------------- principals

const principalColumns = `p.name, p.role, coalesce(p.tenant, ''),
	ARRAY(SELECT pt.tenant FROM auth_principal_tenants pt WHERE pt.principal = p.name ORDER BY pt.tenant),
	p.source, p.disabled, p.created_at, p.updated_at`

func principalDest(p *Principal) []any {
	return []any{&p.Name, &p.Role, &p.Tenant, &p.Tenants, &p.Source, &p.Disabled, &p.CreatedAt, &p.UpdatedAt}
}

func scanPrincipal(row pgx.Row) (Principal, error) {
	var p Principal
	if err := row.Scan(principalDest(&p)...); err != nil {
		return Principal{}, err
	}
	if len(p.Tenants) == 0 {
		p.Tenants = nil
	}
	return p, nil
}

func checkPrincipal(p Principal) error {
	bad := func(field, value, msg string) error {
		return &FieldError{Field: field, Value: value, Err: ErrInvalid, Msg: msg}
	}
	switch {
	case p.Name == "" || len(p.Name) > 64:
		return bad("principal.name", p.Name, "a principal needs a name of 1 to 64 bytes")
	case p.Role != RoleAdmin && p.Role != RoleTenant && p.Role != RoleReseller:
		return bad("principal.role", p.Role, fmt.Sprintf("role %q is not admin, tenant or reseller", p.Role))
	case (p.Role == RoleTenant) != (p.Tenant != ""):
		return bad("principal.tenant", p.Tenant, "a tenant principal needs a tenant; other roles have none")
	case p.Role != RoleReseller && len(p.Tenants) > 0:
		return bad("principal.tenants", p.Role, "only a reseller owns a list of tenants")
	case p.Source != SourcePAM && p.Source != SourceLocal:
		return bad("principal.source", p.Source, fmt.Sprintf("source %q is not pam or local", p.Source))
	}
	return nil
}

// PutPrincipal creates p, or replaces the role, tenant(s), source and
// disabled flag of the principal of that name: running it again with the
// same value changes nothing (first boot relies on that). A tenant that does
// not exist is ErrDependency.
func (s *Store) PutPrincipal(ctx context.Context, p Principal) (Principal, error) {
	if err := checkPrincipal(p); err != nil {
		return Principal{}, err
	}
	tenants := p.Tenants
	if tenants == nil {
		tenants = []string{}
	}
	var tenant *string
	if p.Tenant != "" {
		tenant = &p.Tenant
	}
	var out Principal
	err := s.inTx(ctx, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO auth_principals (name, role, tenant, source, disabled)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, tenant = EXCLUDED.tenant,
				source = EXCLUDED.source, disabled = EXCLUDED.disabled, updated_at = now()
			WHERE (auth_principals.role, auth_principals.tenant, auth_principals.source, auth_principals.disabled)
				IS DISTINCT FROM (EXCLUDED.role, EXCLUDED.tenant, EXCLUDED.source, EXCLUDED.disabled)`,
			p.Name, p.Role, tenant, p.Source, p.Disabled); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM auth_principal_tenants WHERE principal = $1 AND tenant <> ALL($2::text[])`,
			p.Name, tenants); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO auth_principal_tenants (principal, tenant)
			SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, p.Name, tenants); err != nil {
			return err
		}
		var err error
		out, err = scanPrincipal(tx.QueryRow(ctx, `SELECT `+principalColumns+` FROM auth_principals p WHERE p.name = $1`, p.Name))
		return err
	})
	if code, _ := pgCode(err); code == pgForeignKeyViolation {
		return Principal{}, &FieldError{Field: "principal.tenant", Value: p.Tenant, Err: ErrDependency,
			Msg: fmt.Sprintf("principal %q: a tenant it is bound to does not exist", p.Name)}
	}
	if err != nil {
		return Principal{}, failure("put principal "+p.Name, err)
	}
	return out, nil
}

func principalNotFound(name string) error {
	return &FieldError{Field: "principal", Value: name, Err: ErrNotFound, Msg: fmt.Sprintf("principal %q not found", name)}
}

// GetPrincipal returns the principal named name (ErrNotFound if none).
func (s *Store) GetPrincipal(ctx context.Context, name string) (Principal, error) {
	p, err := scanPrincipal(s.pool.QueryRow(ctx, `SELECT `+principalColumns+` FROM auth_principals p WHERE p.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, principalNotFound(name)
	}
	if err != nil {
		return Principal{}, failure("get principal "+name, err)
	}
	return p, nil
}

// ListPrincipals returns every principal, by name.
func (s *Store) ListPrincipals(ctx context.Context) ([]Principal, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+principalColumns+` FROM auth_principals p ORDER BY p.name`)
	if err != nil {
		return nil, failure("list principals", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Principal, error) { return scanPrincipal(r) })
	if err != nil {
		return nil, failure("list principals", err)
	}
	return out, nil
}

// DeletePrincipal removes a principal with its tokens (ErrNotFound if none).
func (s *Store) DeletePrincipal(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_principals WHERE name = $1`, name)
	if err != nil {
		return failure("delete principal "+name, err)
	}
	if tag.RowsAffected() == 0 {
		return principalNotFound(name)
	}
	return nil
}

// ---------------------------------------------------------------- refresh tokens

const refreshColumns = `id, principal, family::text, coalesce(parent, ''), created_at, expires_at, family_expires_at,
	used_at, revoked_at, user_agent, source_address`

func scanRefresh(row pgx.Row, extra ...any) (RefreshToken, []byte, error) {
	var t RefreshToken
	var hash []byte
	dest := append([]any{&t.ID, &t.Principal, &t.Family, &t.Parent, &t.CreatedAt, &t.ExpiresAt, &t.FamilyExpiresAt,
		&t.UsedAt, &t.RevokedAt, &t.UserAgent, &t.SourceAddress, &hash}, extra...)
	err := row.Scan(dest...)
	return t, hash, err
}

func tokenError(sentinel error, id, msg string) error {
	return &FieldError{Field: "token", Value: id, Err: sentinel, Msg: msg}
}

// unknownToken is the answer for an id that does not exist and for a secret
// that does not match: the two are not told apart.
func unknownToken(id string) error {
	return tokenError(ErrNotFound, id, fmt.Sprintf("token %q is not known (or its secret does not match)", id))
}

func checkHash(h []byte) error {
	if len(h) != 32 {
		return &FieldError{Field: "token.hash", Err: ErrInvalid, Msg: fmt.Sprintf("a token hash is 32 bytes (SHA-256), not %d", len(h))}
	}
	return nil
}

func micros(d time.Duration) int64 { return d.Microseconds() }

// usablePrincipal locks the principal name against changes until tx ends
// and refuses one that is missing or disabled.
func usablePrincipal(ctx context.Context, tx pgx.Tx, name string) (Principal, error) {
	p, err := scanPrincipal(tx.QueryRow(ctx, `SELECT `+principalColumns+` FROM auth_principals p WHERE p.name = $1 FOR SHARE OF p`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, principalNotFound(name)
	}
	if err != nil {
		return Principal{}, err
	}
	if p.Disabled {
		return Principal{}, &FieldError{Field: "principal", Value: name, Err: ErrDisabled, Msg: fmt.Sprintf("principal %q is disabled", name)}
	}
	return p, nil
}

// CreateRefreshToken stores the first token of a new family for
// t.Principal, which must exist and not be disabled.
func (s *Store) CreateRefreshToken(ctx context.Context, t NewRefreshToken) (RefreshToken, error) {
	if err := checkHash(t.Hash); err != nil {
		return RefreshToken{}, err
	}
	if t.ID == "" || t.TTL <= 0 || t.FamilyTTL <= 0 {
		return RefreshToken{}, &FieldError{Field: "token", Value: t.ID, Err: ErrInvalid, Msg: "a refresh token needs an id and positive lifetimes"}
	}
	var out RefreshToken
	err := s.inTx(ctx, false, func(tx pgx.Tx) error {
		if _, err := usablePrincipal(ctx, tx, t.Principal); err != nil {
			return err
		}
		var err error
		out, _, err = scanRefresh(tx.QueryRow(ctx, `INSERT INTO auth_refresh_tokens
				(id, principal, family, hash, expires_at, family_expires_at, user_agent, source_address)
			VALUES ($1, $2, gen_random_uuid(), $3,
				now() + least($4::bigint, $5::bigint) * interval '1 microsecond',
				now() + $5::bigint * interval '1 microsecond', $6, $7)
			RETURNING `+refreshColumns+`, hash`,
			t.ID, t.Principal, t.Hash, micros(t.TTL), micros(t.FamilyTTL), t.UserAgent, t.SourceAddress))
		return err
	})
	if code, _ := pgCode(err); code == pgUniqueViolation {
		return RefreshToken{}, tokenError(ErrDuplicate, t.ID, fmt.Sprintf("refresh token id %q is taken", t.ID))
	}
	if err != nil {
		return RefreshToken{}, failure("create refresh token for "+t.Principal, err)
	}
	return out, nil
}

// RotateRefreshToken uses the refresh token id, whose secret hashes to hash,
// once: it is marked used and next is stored in its family, expiring after
// next.TTL but never after the family does. It returns the new token and
// the principal as it is now (for the access token that goes with it).
//
// Refusals, all *FieldError: ErrNotFound (no such id, or the hash does not
// match), ErrRevoked, ErrExpired, ErrDisabled (the principal), and
// ErrTokenReused: the token was used before, so someone holds a copy; every
// token of the family is revoked, and that revocation is committed.
func (s *Store) RotateRefreshToken(ctx context.Context, id string, hash []byte, next NewRefreshToken) (RefreshToken, Principal, error) {
	if err := checkHash(next.Hash); err != nil {
		return RefreshToken{}, Principal{}, err
	}
	if next.ID == "" || next.TTL <= 0 {
		return RefreshToken{}, Principal{}, &FieldError{Field: "token", Value: next.ID, Err: ErrInvalid, Msg: "a refresh token needs an id and a positive lifetime"}
	}
	var (
		out     RefreshToken
		p       Principal
		refusal error // committed, then returned
	)
	err := s.inTx(ctx, false, func(tx pgx.Tx) error {
		var expired bool
		cur, stored, err := scanRefresh(tx.QueryRow(ctx, `SELECT `+refreshColumns+`, hash, expires_at <= now()
			FROM auth_refresh_tokens WHERE id = $1 FOR UPDATE`, id), &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return unknownToken(id)
		case err != nil:
			return err
		case subtle.ConstantTimeCompare(stored, hash) != 1:
			return unknownToken(id)
		case cur.RevokedAt != nil:
			return tokenError(ErrRevoked, id, fmt.Sprintf("refresh token %q has been revoked", id))
		case cur.UsedAt != nil:
			if _, err := tx.Exec(ctx, `UPDATE auth_refresh_tokens SET revoked_at = now()
				WHERE family = $1::uuid AND revoked_at IS NULL`, cur.Family); err != nil {
				return err
			}
			refusal = tokenError(ErrTokenReused, id, fmt.Sprintf(
				"refresh token %q was already used: every token of its family is revoked", id))
			return nil
		case expired:
			return tokenError(ErrExpired, id, fmt.Sprintf("refresh token %q has expired", id))
		}
		if p, err = usablePrincipal(ctx, tx, cur.Principal); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE auth_refresh_tokens SET used_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		out, _, err = scanRefresh(tx.QueryRow(ctx, `INSERT INTO auth_refresh_tokens
				(id, principal, family, parent, hash, expires_at, family_expires_at, user_agent, source_address)
			VALUES ($1, $2, $3::uuid, $4, $5,
				least(now() + $6::bigint * interval '1 microsecond', $7::timestamptz), $7::timestamptz, $8, $9)
			RETURNING `+refreshColumns+`, hash`,
			next.ID, cur.Principal, cur.Family, id, next.Hash, micros(next.TTL), cur.FamilyExpiresAt,
			next.UserAgent, next.SourceAddress))
		return err
	})
	if code, _ := pgCode(err); code == pgUniqueViolation {
		return RefreshToken{}, Principal{}, tokenError(ErrDuplicate, next.ID, fmt.Sprintf("refresh token id %q is taken", next.ID))
	}
	if err != nil {
		return RefreshToken{}, Principal{}, failure("rotate refresh token "+id, err)
	}
	if refusal != nil {
		return RefreshToken{}, Principal{}, refusal
	}
	return out, p, nil
}

// RevokeRefreshFamily revokes every token of the family of the refresh
// token id (logout), which must match hash. Revoking again is not an error.
func (s *Store) RevokeRefreshFamily(ctx context.Context, id string, hash []byte) error {
	err := s.inTx(ctx, false, func(tx pgx.Tx) error {
		var family string
		var stored []byte
		err := tx.QueryRow(ctx, `SELECT family::text, hash FROM auth_refresh_tokens WHERE id = $1`, id).Scan(&family, &stored)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return unknownToken(id)
		case err != nil:
			return err
		case subtle.ConstantTimeCompare(stored, hash) != 1:
			return unknownToken(id)
		}
		_, err = tx.Exec(ctx, `UPDATE auth_refresh_tokens SET revoked_at = now() WHERE family = $1::uuid AND revoked_at IS NULL`, family)
		return err
	})
	if err != nil {
		return failure("revoke refresh token "+id, err)
	}
	return nil
}

// RevokePrincipalRefreshTokens revokes every refresh token of principal
// ("log out everywhere") and returns how many it revoked.
func (s *Store) RevokePrincipalRefreshTokens(ctx context.Context, principal string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE auth_refresh_tokens SET revoked_at = now() WHERE principal = $1 AND revoked_at IS NULL`, principal)
	if err != nil {
		return 0, failure("revoke refresh tokens of "+principal, err)
	}
	return tag.RowsAffected(), nil
}

// DeleteExpiredRefreshTokens removes the tokens of families that have
// expired (kept until then so that a reused token is still recognised) and
// returns how many it removed.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM auth_refresh_tokens WHERE family_expires_at <= now()`)
	if err != nil {
		return 0, failure("delete expired refresh tokens", err)
	}
	return tag.RowsAffected(), nil
}

// ---------------------------------------------------------------- API tokens

//nolint:gosec // column names, not a credential
const apiTokenColumns = `t.id, t.name, t.principal, t.scopes, t.created_at, t.created_by, t.expires_at, t.revoked_at, t.last_used_at`

func apiTokenDest(t *APIToken) []any {
	return []any{&t.ID, &t.Name, &t.Principal, &t.Scopes, &t.CreatedAt, &t.CreatedBy, &t.ExpiresAt, &t.RevokedAt, &t.LastUsedAt}
}

func scanAPIToken(row pgx.Row) (APIToken, error) {
	var t APIToken
	err := row.Scan(apiTokenDest(&t)...)
	return t, err
}

// CreateAPIToken stores an API token. Its name must be unused among the
// principal's tokens that are not revoked (ErrDuplicate); the principal must
// exist (ErrNotFound) and not be disabled (ErrDisabled).
func (s *Store) CreateAPIToken(ctx context.Context, t NewAPIToken) (APIToken, error) {
	if err := checkHash(t.Hash); err != nil {
		return APIToken{}, err
	}
	switch {
	case t.ID == "":
		return APIToken{}, &FieldError{Field: "token.id", Err: ErrInvalid, Msg: "an API token needs an id"}
	case t.Name == "" || len(t.Name) > 64:
		return APIToken{}, &FieldError{Field: "token.name", Value: t.Name, Err: ErrInvalid, Msg: "an API token needs a name of 1 to 64 bytes"}
	case len(t.Scopes) == 0:
		return APIToken{}, &FieldError{Field: "token.scopes", Err: ErrInvalid, Msg: "an API token needs at least one scope"}
	case t.TTL < 0:
		return APIToken{}, &FieldError{Field: "token.ttl", Value: t.TTL.String(), Err: ErrInvalid, Msg: "an API token's lifetime cannot be negative"}
	}
	var ttl *int64
	if t.TTL > 0 {
		us := micros(t.TTL)
		ttl = &us
	}
	var out APIToken
	err := s.inTx(ctx, false, func(tx pgx.Tx) error {
		if _, err := usablePrincipal(ctx, tx, t.Principal); err != nil {
			return err
		}
		var err error
		out, err = scanAPIToken(tx.QueryRow(ctx, `INSERT INTO auth_api_tokens AS t (id, name, principal, scopes, hash, created_by, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, now() + $7::bigint * interval '1 microsecond')
			RETURNING `+apiTokenColumns, t.ID, t.Name, t.Principal, t.Scopes, t.Hash, t.CreatedBy, ttl))
		return err
	})
	if code, constraint := pgCode(err); code == pgUniqueViolation {
		if constraint == "auth_api_tokens_pkey" {
			return APIToken{}, tokenError(ErrDuplicate, t.ID, fmt.Sprintf("API token id %q is taken", t.ID))
		}
		return APIToken{}, &FieldError{Field: "token.name", Value: t.Name, Err: ErrDuplicate,
			Msg: fmt.Sprintf("principal %q already has an API token named %q", t.Principal, t.Name)}
	}
	if err != nil {
		return APIToken{}, failure("create API token "+t.Name, err)
	}
	return out, nil
}

// ListAPITokens returns the API tokens of principal ("": of everyone),
// revoked and expired ones included, oldest first.
func (s *Store) ListAPITokens(ctx context.Context, principal string) ([]APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiTokenColumns+` FROM auth_api_tokens t
		WHERE $1 = '' OR t.principal = $1 ORDER BY t.principal, t.created_at, t.id`, principal)
	if err != nil {
		return nil, failure("list API tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIToken, error) { return scanAPIToken(r) })
	if err != nil {
		return nil, failure("list API tokens", err)
	}
	return out, nil
}

// RevokeAPIToken revokes the API token of principal named name that is not
// revoked yet (ErrNotFound if there is none) and returns it.
func (s *Store) RevokeAPIToken(ctx context.Context, principal, name string) (APIToken, error) {
	t, err := scanAPIToken(s.pool.QueryRow(ctx, `UPDATE auth_api_tokens t SET revoked_at = now()
		WHERE t.principal = $1 AND t.name = $2 AND t.revoked_at IS NULL RETURNING `+apiTokenColumns, principal, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIToken{}, &FieldError{Field: "token.name", Value: name, Err: ErrNotFound,
			Msg: fmt.Sprintf("principal %q has no API token named %q that is not revoked", principal, name)}
	}
	if err != nil {
		return APIToken{}, failure("revoke API token "+name, err)
	}
	return t, nil
}

// UseAPIToken checks the API token id against hash and returns it with its
// principal. Refusals, all *FieldError: ErrNotFound (no such id, or the hash
// does not match), ErrRevoked, ErrExpired, ErrDisabled (the principal). It
// records the use in last_used_at at most once per APITokenTouchInterval.
func (s *Store) UseAPIToken(ctx context.Context, id string, hash []byte) (APIToken, Principal, error) {
	var (
		t              APIToken
		p              Principal
		stored         []byte
		expired, stale bool
	)
	dest := append(apiTokenDest(&t), &stored, &expired, &stale)
	dest = append(dest, principalDest(&p)...)
	err := s.pool.QueryRow(ctx, `SELECT `+apiTokenColumns+`, t.hash,
			coalesce(t.expires_at <= now(), false),
			coalesce(t.last_used_at < now() - $2::bigint * interval '1 microsecond', true),
			`+principalColumns+`
		FROM auth_api_tokens t JOIN auth_principals p ON p.name = t.principal
		WHERE t.id = $1`, id, micros(APITokenTouchInterval)).Scan(dest...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return APIToken{}, Principal{}, unknownToken(id)
	case err != nil:
		return APIToken{}, Principal{}, failure("use API token "+id, err)
	case subtle.ConstantTimeCompare(stored, hash) != 1:
		return APIToken{}, Principal{}, unknownToken(id)
	case t.RevokedAt != nil:
		return APIToken{}, Principal{}, tokenError(ErrRevoked, id, fmt.Sprintf("API token %q (%s) has been revoked", t.Name, id))
	case expired:
		return APIToken{}, Principal{}, tokenError(ErrExpired, id, fmt.Sprintf("API token %q (%s) has expired", t.Name, id))
	case p.Disabled:
		return APIToken{}, Principal{}, &FieldError{Field: "principal", Value: p.Name, Err: ErrDisabled,
			Msg: fmt.Sprintf("principal %q of API token %q is disabled", p.Name, t.Name)}
	}
	if len(p.Tenants) == 0 {
		p.Tenants = nil
	}
	if stale {
		err := s.pool.QueryRow(ctx, `UPDATE auth_api_tokens SET last_used_at = now() WHERE id = $1 RETURNING last_used_at`, id).
			Scan(&t.LastUsedAt)
		if err != nil {
			return APIToken{}, Principal{}, failure("use API token "+id, err)
		}
	}
	return t, p, nil
}
