package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/wcp360/wcp360/internal/api"
)

// DefaultCAFile is wcpd's self-signed HTTPS certificate, generated at the
// first start with api.listen (paths.configDir/tls/api.crt).
const DefaultCAFile = "/etc/wcp360/tls/api.crt"

// ErrSessionExpired is wrapped, with the API's 401, by the error of a
// request whose session could not be renewed: the refresh token expired,
// was revoked (wcp logout, a refresh token used twice) or its principal
// was disabled. A new login is needed.
var ErrSessionExpired = errors.New("the login session has expired or was revoked")

// Options configure a client made by NewWith. The zero Options is New.
type Options struct {
	// CAFile is a PEM file of the certificates an https:// server's must
	// chain to (wcpd's self-signed certificate, DefaultCAFile); "" trusts
	// the system's roots.
	CAFile string
	// Token is sent as "Authorization: Bearer <Token>" with every request
	// but login, refresh and logout: an access token or an API token.
	Token string
	// RefreshToken, when set, renews the session: a request answered 401
	// is retried once after a refresh (POST /api/v1/auth/refresh), which
	// replaces both tokens.
	RefreshToken string
	// OnRefresh is called with the new tokens after every refresh, to save
	// them: the refresh token it replaces cannot be used again. An error
	// fails the request that needed the refresh.
	OnRefresh func(api.Tokens) error
}

// NewWith returns a client for a unix socket path or an http(s):// URL,
// with a CA file and a session. It refuses to send a token in clear text
// (http:// to anything but the loopback).
func NewWith(socketOrURL string, o Options) (*Client, error) {
	var c *Client
	switch {
	case strings.HasPrefix(socketOrURL, "https://"):
		conf := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pool, err := loadCAFile(o.CAFile)
			if err != nil {
				return nil, err
			}
			conf.RootCAs = pool
		}
		c = newURLTLS(socketOrURL, conf)
	case strings.HasPrefix(socketOrURL, "http://"):
		c = newURL(socketOrURL)
		if (o.Token != "" || o.RefreshToken != "") && !loopback(c.base.Hostname()) {
			return nil, fmt.Errorf("refusing to send credentials in clear text to %s: use https://", socketOrURL)
		}
	default:
		c = newUnix(socketOrURL)
	}
	c.token, c.refresh, c.onRefresh = o.Token, o.RefreshToken, o.OnRefresh
	return c, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsUntrustedCertificate reports whether err is a failure to verify the
// server's TLS certificate (unknown authority, wrong host name, expired).
func IsUntrustedCertificate(err error) bool {
	var (
		unknown *x509.UnknownAuthorityError
		verify  *tls.CertificateVerificationError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	return errors.As(err, &unknown) || errors.As(err, &verify) || errors.As(err, &host) || errors.As(err, &invalid)
}

// Session returns the tokens the client holds now (after refreshes, the
// latest ones).
func (c *Client) Session() (token, refresh string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token, c.refresh
}

func (c *Client) bearer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func (c *Client) canRefresh() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refresh != ""
}

// renew refreshes the session after a request that carried the bearer
// token used was answered 401. When another request renewed it meanwhile
// (the token is no longer used), the new token is tried as it is.
func (c *Client) renew(ctx context.Context, used string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != used {
		return nil
	}
	_, err := c.refreshLocked(ctx)
	return err
}

// refreshLocked trades the refresh token for new tokens, keeps and reports
// them (OnRefresh). c.mu is held.
func (c *Client) refreshLocked(ctx context.Context) (api.Tokens, error) {
	var t api.Tokens
	if c.refresh == "" {
		return t, fmt.Errorf("%w: no refresh token", ErrSessionExpired)
	}
	body, err := json.Marshal(api.RefreshRequest{RefreshToken: c.refresh}) //nolint:gosec // G117: the request that must carry it
	if err != nil {
		return t, err
	}
	if _, err := c.exchange(ctx, request{method: http.MethodPost, path: "/api/v1/auth/refresh", body: body, public: true}, &t); err != nil {
		if IsUnauthorized(err) {
			return t, fmt.Errorf("%w: %w", ErrSessionExpired, err)
		}
		return t, fmt.Errorf("renew the session: %w", err)
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return t, errors.New("renew the session: the answer has no tokens")
	}
	c.token, c.refresh = t.AccessToken, t.RefreshToken
	if c.onRefresh != nil {
		if err := c.onRefresh(t); err != nil {
			return t, fmt.Errorf("the session was renewed but its new tokens could not be saved: %w", err)
		}
	}
	return t, nil
}

// BootstrapStatus asks GET /api/v1/bootstrap whether the first boot is done.
func (c *Client) BootstrapStatus(ctx context.Context) (api.BootstrapStatus, error) {
	var st api.BootstrapStatus
	err := c.do(ctx, http.MethodGet, "/api/v1/bootstrap", nil, nil, &st)
	return st, err
}

// Bootstrap runs the first boot (POST /api/v1/bootstrap): the first admin,
// the signing keys, system_initialized. Root on the unix socket sends an
// empty request; over HTTPS, root's user name and password. A system
// initialised already answers 409 (IsConflict).
func (c *Client) Bootstrap(ctx context.Context, req api.BootstrapRequest) (api.BootstrapResult, error) {
	var res api.BootstrapResult
	body, err := json.Marshal(req) //nolint:gosec // G117: the request that must carry the password
	if err != nil {
		return res, err
	}
	_, err = c.exchange(ctx, request{method: http.MethodPost, path: "/api/v1/bootstrap", body: body, public: true}, &res)
	return res, err
}

// Login checks a user name and password (POST /api/v1/auth/login) and
// starts a session: the client keeps the tokens for its next requests.
// Wrong credentials answer 401 (IsUnauthorized), too many attempts 429
// (IsRateLimited, with APIError.RetryAfter).
func (c *Client) Login(ctx context.Context, username, password string) (api.Tokens, error) {
	var t api.Tokens
	body, err := json.Marshal(api.LoginRequest{Username: username, Password: password}) //nolint:gosec // G117: the request that must carry it
	if err != nil {
		return t, err
	}
	if _, err := c.exchange(ctx, request{method: http.MethodPost, path: "/api/v1/auth/login", body: body, public: true}, &t); err != nil {
		return t, err
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return t, errors.New("login: the answer has no tokens")
	}
	c.mu.Lock()
	c.token, c.refresh = t.AccessToken, t.RefreshToken
	c.mu.Unlock()
	return t, nil
}

// Refresh renews the session now (POST /api/v1/auth/refresh), as a request
// answered 401 does, OnRefresh included.
func (c *Client) Refresh(ctx context.Context) (api.Tokens, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshLocked(ctx)
}

// Logout ends the session (POST /api/v1/auth/logout): its refresh tokens
// are revoked; an access token already issued stays valid until it
// expires. The client forgets both tokens.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	refresh := c.refresh
	c.mu.Unlock()
	if refresh == "" {
		return errors.New("logout: no session (no refresh token)")
	}
	body, err := json.Marshal(api.RefreshRequest{RefreshToken: refresh}) //nolint:gosec // G117: the request that must carry it
	if err != nil {
		return err
	}
	_, err = c.exchange(ctx, request{method: http.MethodPost, path: "/api/v1/auth/logout", body: body, public: true}, nil)
	if err == nil || IsUnauthorized(err) {
		c.mu.Lock()
		c.token, c.refresh = "", ""
		c.mu.Unlock()
	}
	return err
}

// WhoAmI returns who the client's requests act for (GET /api/v1/whoami).
func (c *Client) WhoAmI(ctx context.Context) (api.PrincipalInfo, error) {
	var p api.PrincipalInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, nil, &p)
	return p, err
}

// PutPrincipal creates or replaces a principal (PUT
// /api/v1/principals/{name}, admins only); created is true for a new one.
func (c *Client) PutPrincipal(ctx context.Context, name string, spec api.PrincipalSpec) (p api.PrincipalInfo, created bool, err error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return p, false, err
	}
	status, err := c.exchange(ctx, request{method: http.MethodPut, path: principalPath(name), body: body}, &p)
	return p, status == http.StatusCreated, err
}

// ListPrincipals lists the principals (GET /api/v1/principals, admins only).
func (c *Client) ListPrincipals(ctx context.Context) ([]api.PrincipalInfo, error) {
	var ps []api.PrincipalInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/principals", nil, nil, &ps)
	return ps, err
}

// DeletePrincipal removes a principal with its sessions and API tokens
// (DELETE /api/v1/principals/{name}, admins only).
func (c *Client) DeletePrincipal(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, principalPath(name), nil, nil, nil)
}

func principalPath(name string) string { return "/api/v1/principals/" + url.PathEscape(name) }

// ListAPITokens lists API tokens (GET /api/v1/tokens): the caller's, or
// principal's ("" : the server's default, the caller's own).
func (c *Client) ListAPITokens(ctx context.Context, principal string) ([]api.APITokenInfo, error) {
	var ts []api.APITokenInfo
	err := c.do(ctx, http.MethodGet, "/api/v1/tokens", principalQuery(principal), nil, &ts)
	return ts, err
}

// CreateAPIToken makes an API token (POST /api/v1/tokens). The answer holds
// its secret, which the server never shows again.
func (c *Client) CreateAPIToken(ctx context.Context, req api.APITokenRequest) (api.APITokenCreated, error) {
	var t api.APITokenCreated
	body, err := json.Marshal(req)
	if err != nil {
		return t, err
	}
	err = c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, body, &t)
	return t, err
}

// RevokeAPIToken revokes the API token name of principal ("": the
// caller's) (DELETE /api/v1/tokens/{name}).
func (c *Client) RevokeAPIToken(ctx context.Context, name, principal string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), principalQuery(principal), nil, nil)
}

func principalQuery(principal string) url.Values {
	if principal == "" {
		return nil
	}
	return url.Values{"principal": {principal}}
}
