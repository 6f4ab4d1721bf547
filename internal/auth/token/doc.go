// Package token issues and verifies the credentials of the WCP360 API.
//
// # Kinds
//
// Access tokens are JWTs signed with EdDSA (Ed25519), carrying a kid
// header and the claims iss, aud, sub (the principal), exp, nbf, iat, jti,
// role, tenant (role tenant), tenants (role reseller) and, when the token is
// narrowed, scopes (a login's tokens have none: the whole role). They live
// Config.AccessTTL (15 minutes) and are not stored: they cannot be revoked
// and simply expire. Verify pins the algorithm to EdDSA (so "none" and
// HS256 signed with the public key are refused before any key is looked
// up), requires exp, nbf and iat, checks iss and aud, and allows
// Config.Leeway (30 seconds) of clock skew on the times.
//
// Refresh tokens are opaque: "wcpr_<id>_<secret>", a 16-hex-digit id and
// 32 random bytes in base64url. Login makes the first of a family (one login
// session); Refresh uses it once and returns an access token and the next
// refresh token of the family. Presenting a used refresh token again means
// it was copied: the whole family is revoked and ErrRefreshReused returned
// (the OAuth 2.0 Security BCP practice). One lives Config.RefreshTTL (7
// days) and no family outlives Config.SessionTTL (30 days). Logout revokes
// the family.
//
// API tokens are opaque too: "wcp_<id>_<secret>", for automation. They are
// named (unique per principal), scoped (at least one of rbac.Scopes()),
// listed, revocable, and
// expire when their creator says so or never. They act as their principal,
// narrowed to their scopes; last use is recorded at most once a minute.
// The fixed prefixes let secret scanners find leaked tokens; the id is the
// lookup key and may be logged, the secret never is.
//
// # Storage
//
// Opaque tokens are stored by internal/store (tables auth_refresh_tokens,
// auth_api_tokens of migration 004) as the SHA-256 of their secret, never
// the secret; a presented token is found by its id and its hash compared in
// constant time. An unknown id and a wrong secret give the same error. The
// lifetimes of stored tokens are counted by the database's clock, like every
// time the store keeps; access tokens by Config.Clock.
//
// # Keys
//
// The signing keys are files in a directory (DefaultKeyDir,
// /etc/wcp360/keys, mode 0700): one PKCS#8 PEM Ed25519 private key per file,
// named "<kid>.pem", mode 0600, owned by the user wcpd runs as (root),
// written atomically. The kid is "<UTC creation time>-<8 hex digits>", so the
// ids order the keys; the newest signs. LoadKeyRing refuses, naming the
// file, keys others could read or that someone else owns, and files it
// cannot parse. EnsureKeyRing makes the directory and the first key at first
// boot and is safe to run again after a crash. Rotate adds a new signing key
// and keeps the older ones for verification until every token they signed
// has expired: a key retired (replaced) longer ago than AccessTTL + Leeway is
// pruned, and a token it signed is then refused as ErrUnknownKey.
//
// # Identity
//
// Verify, VerifyAPIToken and Authenticate return an Identity; its RBAC
// method gives the rbac.Principal the policy decides on (Via "jwt" or
// "api-token"). Role and tenants come from the access token's claims (as
// they were at the last login or refresh, at most AccessTTL ago) or, for an
// API token, from the principal's row as it is now.
//
// # Errors
//
// Every refusal matches ErrInvalidToken and exactly one of ErrMalformed,
// ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYetValid,
// ErrIssuer, ErrAudience, ErrClaims, ErrUnknownToken, ErrRevoked,
// ErrRefreshReused or ErrDisabled. Errors that are not about the token (the
// database is unavailable) do not match ErrInvalidToken.
package token
