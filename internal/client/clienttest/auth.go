package clienttest

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// AuthOptions configure StartAuth.
type AuthOptions struct {
	// Passwords are the accounts the stand-in for PAM accepts (user name →
	// password). Logins need a principal of that name as well.
	Passwords map[string]string
	// Clock stamps and checks access tokens (time.Now when nil): tests
	// move it to expire them.
	Clock func() time.Time
	// AccessTTL is the access tokens' lifetime (token.DefaultAccessTTL when 0).
	AccessTTL time.Duration
	// Initialized runs the first boot at the start: root is an admin.
	Initialized bool
	// MaxFailures is how many failed logins of one user are answered 401
	// before every further attempt is answered 429 (5 when 0).
	MaxFailures int
	// RetryAfter is the Retry-After of a 429 (one minute when 0).
	RetryAfter time.Duration
}

// AuthDaemon is the API with first boot, logins, principals and tokens:
// the api package's handler (its routes, guards and error answers) over an
// api.Identity that is internal/auth/identity's with PAM faked
// (AuthOptions.Passwords): the real token.Service over the real store. It
// is served on a unix socket (root there is an admin, no token) and over
// HTTPS.
type AuthDaemon struct {
	// Socket is the unix socket path.
	Socket string
	// URL is the HTTPS API ("https://127.0.0.1:port"); CAFile holds the
	// certificate it presents.
	URL    string
	CAFile string
	Store  *store.Store
	Tokens *token.Service

	opts     AuthOptions
	mu       sync.Mutex
	failures map[string]int // failed logins per user
}

// StartAuth runs an AuthDaemon for tb; everything is stopped and dropped
// when tb ends.
func StartAuth(tb testing.TB, opts AuthOptions) *AuthDaemon {
	tb.Helper()
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 5
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, pgtest.New(tb), store.Options{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	ring, _, err := token.EnsureKeyRing(filepath.Join(tb.TempDir(), "keys"), opts.Clock())
	if err != nil {
		tb.Fatalf("key ring: %v", err)
	}
	svc, err := token.New(ring, st, token.Config{Clock: opts.Clock, AccessTTL: opts.AccessTTL, Leeway: time.Second})
	if err != nil {
		tb.Fatalf("token service: %v", err)
	}
	d := &AuthDaemon{Socket: socketPath(tb), Store: st, Tokens: svc, opts: opts, failures: map[string]int{}}
	if opts.Initialized {
		if _, err := d.Bootstrap(ctx, api.BootstrapRequest{}, api.Peer{Unix: true, UID: 0}); err != nil {
			tb.Fatalf("bootstrap: %v", err)
		}
	}
	h := api.NewServer(api.Options{Store: st, Logger: testLogger(tb), Node: Node, Version: "test",
		Auth: d, Identity: d, Clock: opts.Clock}).Handler()

	l, err := net.Listen("unix", d.Socket)
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	unix := httptest.NewUnstartedServer(h)
	_ = unix.Listener.Close()
	unix.Listener = l
	unix.Config.ConnContext = api.ConnContext
	unix.Start()
	tb.Cleanup(unix.Close)

	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.Config.ConnContext = api.ConnContext
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	tlsSrv.StartTLS()
	tb.Cleanup(tlsSrv.Close)
	d.URL = tlsSrv.URL
	d.CAFile = filepath.Join(tb.TempDir(), "api.crt")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(d.CAFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return d
}

// Clock is a time source the tests move (AuthOptions.Clock).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// The rest implements api.Identity and api.Authenticator as
// internal/auth/identity does, with AuthOptions.Passwords for PAM.

// Initialized implements api.Identity.
func (d *AuthDaemon) Initialized(ctx context.Context) (bool, error) { return d.Store.Initialized(ctx) }

// Bootstrap implements api.Identity: root proven (on the socket, or by
// its password), root made the first admin, the system marked initialised.
func (d *AuthDaemon) Bootstrap(ctx context.Context, req api.BootstrapRequest, peer api.Peer) (api.BootstrapResult, error) {
	if done, err := d.Store.Initialized(ctx); err != nil {
		return api.BootstrapResult{}, err
	} else if done {
		return api.BootstrapResult{}, api.ErrAlreadyInitialized
	}
	if !peer.Root() {
		user := req.Username
		if user == "" {
			user = "root"
		}
		if user != "root" || !d.passwordOK(user, req.Password) {
			return api.BootstrapResult{}, fmt.Errorf("%w: first boot needs root's password", api.ErrUnauthenticated)
		}
	}
	if _, err := d.Store.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
		return api.BootstrapResult{}, err
	}
	won, err := d.Store.MarkInitialized(ctx)
	if err != nil {
		return api.BootstrapResult{}, err
	}
	if !won {
		return api.BootstrapResult{}, api.ErrAlreadyInitialized
	}
	return api.BootstrapResult{Initialized: true, Admin: "root"}, nil
}

func (d *AuthDaemon) passwordOK(user, password string) bool {
	want, ok := d.opts.Passwords[user]
	return ok && want != "" && want == password
}

// Authenticate implements api.Authenticator.
func (d *AuthDaemon) Authenticate(ctx context.Context, bearer string) (rbac.Principal, error) {
	id, err := d.Tokens.Authenticate(ctx, bearer)
	if err != nil {
		return rbac.Principal{}, tokenError(err)
	}
	return id.RBAC(), nil
}

// Login implements api.Identity: the password, with a limit of failed
// attempts per user (429 and Retry-After once reached).
func (d *AuthDaemon) Login(ctx context.Context, req api.LoginRequest, peer api.Peer, userAgent string) (api.Tokens, error) {
	d.mu.Lock()
	failed := d.failures[req.Username]
	d.mu.Unlock()
	if failed >= d.opts.MaxFailures {
		return api.Tokens{}, &api.RetryAfterError{After: d.opts.RetryAfter, Err: errors.New("too many failed logins")}
	}
	if !d.passwordOK(req.Username, req.Password) {
		d.mu.Lock()
		d.failures[req.Username]++
		d.mu.Unlock()
		return api.Tokens{}, fmt.Errorf("%w: wrong user name or password", api.ErrUnauthenticated)
	}
	t, err := d.Tokens.Login(ctx, req.Username, token.Client{UserAgent: userAgent, SourceAddress: peer.Addr})
	if errors.Is(err, store.ErrNotFound) {
		return api.Tokens{}, fmt.Errorf("%w: %s is no principal", api.ErrUnauthenticated, req.Username)
	}
	return wireTokens(t, err)
}

// Refresh implements api.Identity.
func (d *AuthDaemon) Refresh(ctx context.Context, refresh string, peer api.Peer, userAgent string) (api.Tokens, error) {
	return wireTokens(d.Tokens.Refresh(ctx, refresh, token.Client{UserAgent: userAgent, SourceAddress: peer.Addr}))
}

// Logout implements api.Identity.
func (d *AuthDaemon) Logout(ctx context.Context, refresh string) error {
	return tokenError(d.Tokens.Logout(ctx, refresh))
}

func wireTokens(t token.Tokens, err error) (api.Tokens, error) {
	if err != nil {
		return api.Tokens{}, tokenError(err)
	}
	return api.Tokens{TokenType: "Bearer",
		AccessToken: t.AccessToken, AccessTokenExpiresAt: t.AccessExpiresAt,
		RefreshToken: t.RefreshToken, RefreshTokenExpiresAt: t.RefreshExpiresAt,
		Principal: info(t.Identity.RBAC())}, nil
}

func tokenError(err error) error {
	if errors.Is(err, token.ErrInvalidToken) {
		return fmt.Errorf("%w: %w", api.ErrUnauthenticated, err)
	}
	return err
}

func info(p rbac.Principal) api.PrincipalInfo {
	return api.PrincipalInfo{Name: p.Name, Role: string(p.Role), Tenants: p.Tenants, Scopes: p.Scopes, Via: p.Via}
}

func storedInfo(p store.Principal) api.PrincipalInfo {
	ts := slices.Clone(p.Tenants)
	if p.Tenant != "" {
		ts = []string{p.Tenant}
	}
	return api.PrincipalInfo{Name: p.Name, Role: p.Role, Tenants: ts, Via: p.Source}
}

// PutPrincipal implements api.Identity.
func (d *AuthDaemon) PutPrincipal(ctx context.Context, name string, spec api.PrincipalSpec) (api.PrincipalInfo, bool, error) {
	p := store.Principal{Name: name, Role: spec.Role, Source: store.SourcePAM, Disabled: spec.Disabled}
	switch spec.Role {
	case store.RoleTenant:
		if len(spec.Tenants) != 1 {
			return api.PrincipalInfo{}, false, api.InputError("tenants", "a tenant principal is bound to exactly one tenant")
		}
		p.Tenant = spec.Tenants[0]
	case store.RoleReseller:
		p.Tenants = spec.Tenants
	case store.RoleAdmin:
	default:
		return api.PrincipalInfo{}, false, api.InputError("role", fmt.Sprintf("%q is not admin, tenant or reseller", spec.Role))
	}
	_, err := d.Store.GetPrincipal(ctx, name)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return api.PrincipalInfo{}, false, err
	}
	out, err := d.Store.PutPrincipal(ctx, p)
	if err != nil {
		return api.PrincipalInfo{}, false, err
	}
	return storedInfo(out), created, nil
}

// ListPrincipals implements api.Identity.
func (d *AuthDaemon) ListPrincipals(ctx context.Context) ([]api.PrincipalInfo, error) {
	ps, err := d.Store.ListPrincipals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PrincipalInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, storedInfo(p))
	}
	return out, nil
}

// DeletePrincipal implements api.Identity.
func (d *AuthDaemon) DeletePrincipal(ctx context.Context, name string) error {
	return d.Store.DeletePrincipal(ctx, name)
}

// CreateToken implements api.Identity.
func (d *AuthDaemon) CreateToken(ctx context.Context, req api.APITokenRequest, createdBy string) (api.APITokenCreated, error) {
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			return api.APITokenCreated{}, api.InputError("ttl", fmt.Sprintf("%q is not a positive duration such as 720h", req.TTL))
		}
	}
	for _, sc := range req.Scopes {
		if !rbac.ValidScope(sc) {
			return api.APITokenCreated{}, api.InputError("scopes", fmt.Sprintf("unknown scope %q", sc))
		}
	}
	secret, t, err := d.Tokens.CreateAPIToken(ctx, token.APITokenRequest{Principal: req.Principal, Name: req.Name,
		Scopes: req.Scopes, TTL: ttl, CreatedBy: createdBy})
	if err != nil {
		return api.APITokenCreated{}, tokenError(err)
	}
	return api.APITokenCreated{APITokenInfo: tokenInfo(t), Token: secret}, nil
}

// ListTokens implements api.Identity: the tokens not revoked.
func (d *AuthDaemon) ListTokens(ctx context.Context, principal string) ([]api.APITokenInfo, error) {
	ts, err := d.Tokens.ListAPITokens(ctx, principal)
	if err != nil {
		return nil, err
	}
	out := make([]api.APITokenInfo, 0, len(ts))
	for _, t := range ts {
		if t.RevokedAt == nil {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

func tokenInfo(t store.APIToken) api.APITokenInfo {
	return api.APITokenInfo{Name: t.Name, Principal: t.Principal, Scopes: t.Scopes, CreatedAt: t.CreatedAt,
		CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

// RevokeToken implements api.Identity.
func (d *AuthDaemon) RevokeToken(ctx context.Context, principal, name string) error {
	_, err := d.Tokens.RevokeAPIToken(ctx, principal, name)
	return err
}

// RotateKeys implements api.Identity.
func (d *AuthDaemon) RotateKeys(_ context.Context) (api.KeyRotation, error) {
	kid, pruned, err := d.Tokens.RotateKeys()
	return api.KeyRotation{KeyID: kid, Pruned: pruned}, err
}
