package api

import "time"

// Wire types of first boot, login and tokens (issue 5).

// BootstrapStatus answers GET /api/v1/bootstrap.
type BootstrapStatus struct {
	Initialized bool `json:"initialized"`
}

// BootstrapRequest is POST /api/v1/bootstrap: over the unix socket root
// needs neither field; over HTTPS, root's password proves root (PAM).
type BootstrapRequest struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// BootstrapResult answers a bootstrap (201).
type BootstrapResult struct {
	Initialized bool   `json:"initialized"`
	Admin       string `json:"admin"`
}

// LoginRequest is POST /api/v1/auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// RefreshRequest is POST /api/v1/auth/refresh and /api/v1/auth/logout.
type RefreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// Tokens answers a login or a refresh.
type Tokens struct {
	TokenType             string        `json:"tokenType"` // "Bearer"
	AccessToken           string        `json:"accessToken"`
	AccessTokenExpiresAt  time.Time     `json:"accessTokenExpiresAt"`
	RefreshToken          string        `json:"refreshToken"`
	RefreshTokenExpiresAt time.Time     `json:"refreshTokenExpiresAt"`
	Principal             PrincipalInfo `json:"principal"`
}

// PrincipalInfo is who a principal is (GET /api/v1/whoami, principals).
type PrincipalInfo struct {
	Name    string   `json:"name"`
	Role    string   `json:"role"`
	Tenants []string `json:"tenants,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	Via     string   `json:"via"`
}

// PrincipalSpec is PUT /api/v1/principals/{name} (admins only).
type PrincipalSpec struct {
	Role     string   `json:"role"`
	Tenants  []string `json:"tenants,omitempty"`
	Disabled bool     `json:"disabled,omitempty"`
}

// APITokenRequest is POST /api/v1/tokens.
type APITokenRequest struct { //nolint:revive // "API token" is the thing's name
	Name      string   `json:"name"`
	Principal string   `json:"principal,omitempty"` // default: the caller
	Scopes    []string `json:"scopes"`
	TTL       string   `json:"ttl,omitempty"` // a Go duration; "" never expires
}

// APITokenInfo describes an API token (never its secret).
type APITokenInfo struct { //nolint:revive // "API token" is the thing's name
	Name       string     `json:"name"`
	Principal  string     `json:"principal"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"createdAt"`
	CreatedBy  string     `json:"createdBy"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

// KeyRotation answers POST /api/v1/keys/rotate.
type KeyRotation struct {
	// KeyID signs the access tokens from now on.
	KeyID string `json:"keyId"`
	// Pruned are the keys retired long enough that no valid token can
	// carry them; the others keep verifying until their tokens expired.
	Pruned []string `json:"pruned,omitempty"`
}

// APITokenCreated answers POST /api/v1/tokens: the secret, shown once.
type APITokenCreated struct { //nolint:revive // "API token" is the thing's name
	APITokenInfo
	Token string `json:"token"`
}
