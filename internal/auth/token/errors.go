package token

import "errors"

// ErrInvalidToken is matched (errors.Is) by every refusal of this package:
// a caller that only needs "401 or not" tests for it. The errors below tell
// the refusals apart. Anything else (a database that cannot be reached, a
// key directory that cannot be read) is not a refusal and does not match.
var ErrInvalidToken = errors.New("invalid token")

// Refusals. Each returned error wraps exactly one of them with details.
var (
	// ErrMalformed: not a token of the expected shape (JWT segments, base64,
	// JSON; or an opaque token's prefix, id or secret).
	ErrMalformed error = &refusal{"malformed token"}
	// ErrAlgorithm: a JWT whose alg is not EdDSA ("none", HS256, RS256...).
	ErrAlgorithm error = &refusal{"token signing algorithm is not allowed (only EdDSA is)"}
	// ErrUnknownKey: a JWT without a kid, or whose kid is not in the key ring
	// (never ours, or pruned).
	ErrUnknownKey error = &refusal{"token was signed by an unknown key"}
	// ErrSignature: the signature does not match the header and payload.
	ErrSignature error = &refusal{"token signature is invalid"}
	// ErrExpired: past exp (JWT), expires_at (refresh and API tokens).
	ErrExpired error = &refusal{"token has expired"}
	// ErrNotYetValid: a JWT before its nbf, or issued in the future.
	ErrNotYetValid error = &refusal{"token is not valid yet"}
	// ErrIssuer: a JWT from another issuer.
	ErrIssuer error = &refusal{"token was issued by someone else"}
	// ErrAudience: a JWT meant for another audience.
	ErrAudience error = &refusal{"token is meant for another audience"}
	// ErrClaims: a JWT missing a required claim (exp, nbf, iat, sub, jti,
	// role) or with a claim this package does not know how to honour.
	ErrClaims error = &refusal{"token claims are missing or invalid"}
	// ErrUnknownToken: an opaque token whose id is not stored or whose
	// secret does not match (the two are not told apart).
	ErrUnknownToken error = &refusal{"token is not known"}
	// ErrRevoked: a revoked refresh or API token.
	ErrRevoked error = &refusal{"token has been revoked"}
	// ErrRefreshReused: a refresh token presented after it was used. Its
	// whole family (the login session) is revoked when this is returned.
	ErrRefreshReused error = &refusal{"refresh token was already used: its session has been revoked"}
	// ErrDisabled: the principal is disabled.
	ErrDisabled error = &refusal{"principal is disabled"}
)

// refusal is a sentinel that also matches ErrInvalidToken.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// Is makes every refusal match ErrInvalidToken.
func (r *refusal) Is(target error) bool { return target == ErrInvalidToken }
