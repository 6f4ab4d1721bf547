// Package identity is first boot, logins, principals and API tokens for
// the API: it joins PAM (internal/auth/pam), the token service
// (internal/auth/token) and the store, and implements api.Identity.
//
// First boot is a state machine with one persistent bit,
// system_initialized, flipped last and atomically (store.MarkInitialized):
//
//  1. prove root: root on the local socket (SO_PEERCRED) is proof; over
//     HTTPS, root's password through PAM;
//  2. install /etc/pam.d/wcp360 (idempotent);
//  3. make the signing key (token.EnsureKeyRing: idempotent);
//  4. create the first admin, root (an upsert: idempotent);
//  5. mark the system initialized (compare-and-set: exactly one wins).
//
// A crash anywhere before 5 leaves steps that run again to the same
// result; after 5 a second first boot is refused.
package identity

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/pam"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/store"
)

// Options configure a Service.
type Options struct {
	Store *store.Store
	// PAM checks passwords (logins; first boot over HTTPS).
	PAM *pam.Authenticator
	// KeyDir holds the signing keys (token.DefaultKeyDir).
	KeyDir string
	// PAMDir is where the PAM service file goes (pam.ServiceDir).
	PAMDir string
	// Token configures the token service (its Clock is required).
	Token  token.Config
	Logger *slog.Logger
	// beforeMark, in tests, runs just before step 5: a crash there.
	beforeMark func() error
}

// Service implements api.Identity and api.Authenticator.
type Service struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // one first boot at a time in this process
	tokens *token.Service
}

// New returns a Service. The token service starts once the keys exist
// (at first boot, or at once on an initialized system).
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.PAM == nil {
		return nil, errors.New("identity: Store and PAM are required")
	}
	if opts.KeyDir == "" {
		opts.KeyDir = token.DefaultKeyDir
	}
	if opts.PAMDir == "" {
		opts.PAMDir = pam.ServiceDir
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{opts: opts, log: opts.Logger}
	keys, err := token.LoadKeyRing(opts.KeyDir)
	if err != nil && !errors.Is(err, token.ErrNoKeys) && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("identity: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done, ierr := opts.Store.Initialized(ctx)
	if ierr != nil {
		return nil, fmt.Errorf("identity: %w", ierr)
	}
	if done {
		// An initialised panel whose host lost its files (a restored
		// database, a reinstalled machine): put them back. New keys make
		// every token signed before invalid; logins work again at once.
		if keys == nil {
			if keys, _, err = token.EnsureKeyRing(opts.KeyDir, opts.Token.Clock()); err != nil {
				return nil, fmt.Errorf("identity: signing key: %w", err)
			}
			s.log.Warn("the panel is initialised but its signing keys were missing: made new ones; tokens issued before are no longer valid", "dir", opts.KeyDir)
		}
		if _, err := pam.InstallServiceFile(opts.PAMDir, pam.ServiceFileOptions{}); err != nil && !errors.Is(err, pam.ErrServiceFileNotOurs) {
			return nil, fmt.Errorf("identity: PAM service file: %w", err)
		}
	}
	if keys != nil {
		if s.tokens, err = token.New(keys, opts.Store, opts.Token); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// PrincipalsMayLogIn is wcpd's pam.Config.AllowUser: besides root and the
// admin group, the users that are enabled principals of st may log in, with
// the password of the Linux user of their name (a tenant's login). It asks
// the store, before PAM is asked.
func PrincipalsMayLogIn(st *store.Store) func(name string) bool {
	return func(name string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := st.GetPrincipal(ctx, name)
		return err == nil && !p.Disabled
	}
}

// Tokens is the token service, nil before first boot.
func (s *Service) Tokens() *token.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// Initialized reports whether first boot is done.
func (s *Service) Initialized(ctx context.Context) (bool, error) {
	return s.opts.Store.Initialized(ctx)
}

// Bootstrap is first boot.
func (s *Service) Bootstrap(ctx context.Context, req api.BootstrapRequest, peer api.Peer) (api.BootstrapResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, err := s.opts.Store.Initialized(ctx); err != nil {
		return api.BootstrapResult{}, err
	} else if done {
		return api.BootstrapResult{}, api.ErrAlreadyInitialized
	}
	// 1. Root, proven.
	if !peer.Root() {
		user := req.Username
		if user == "" {
			user = "root"
		}
		id, err := s.opts.PAM.Authenticate(ctx, user, req.Password, source(peer))
		if err != nil {
			return api.BootstrapResult{}, pamError(err)
		}
		if !id.Root {
			return api.BootstrapResult{}, fmt.Errorf("%w: first boot needs root's password", api.ErrUnauthenticated)
		}
	}
	// 2. The PAM service for later logins; an admin's own file is kept.
	if _, err := pam.InstallServiceFile(s.opts.PAMDir, pam.ServiceFileOptions{}); errors.Is(err, pam.ErrServiceFileNotOurs) {
		s.log.Warn("first boot: keeping the PAM service file an admin wrote", "dir", s.opts.PAMDir)
	} else if err != nil {
		return api.BootstrapResult{}, fmt.Errorf("first boot: PAM service file: %w", err)
	}
	// 3. The signing key.
	keys, created, err := token.EnsureKeyRing(s.opts.KeyDir, s.opts.Token.Clock())
	if err != nil {
		return api.BootstrapResult{}, fmt.Errorf("first boot: signing key: %w", err)
	}
	tokens, err := token.New(keys, s.opts.Store, s.opts.Token)
	if err != nil {
		return api.BootstrapResult{}, err
	}
	// 4. The first admin.
	if _, err := s.opts.Store.PutPrincipal(ctx, store.Principal{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
		return api.BootstrapResult{}, fmt.Errorf("first boot: first admin: %w", err)
	}
	if s.opts.beforeMark != nil {
		if err := s.opts.beforeMark(); err != nil {
			return api.BootstrapResult{}, err
		}
	}
	// 5. Done, once.
	won, err := s.opts.Store.MarkInitialized(ctx)
	if err != nil {
		return api.BootstrapResult{}, err
	}
	if !won {
		return api.BootstrapResult{}, api.ErrAlreadyInitialized
	}
	s.tokens = tokens
	s.log.Info("first boot done", "admin", "root", "keyCreated", created, "via", via(peer))
	return api.BootstrapResult{Initialized: true, Admin: "root"}, nil
}

// Authenticate implements api.Authenticator: an access token or API token.
func (s *Service) Authenticate(ctx context.Context, bearer string) (rbac.Principal, error) {
	t := s.Tokens()
	if t == nil {
		return rbac.Principal{}, fmt.Errorf("%w: the panel is not initialised", api.ErrUnauthenticated)
	}
	id, err := t.Authenticate(ctx, bearer)
	if errors.Is(err, token.ErrInvalidToken) {
		return rbac.Principal{}, fmt.Errorf("%w: %w", api.ErrUnauthenticated, err)
	}
	if err != nil {
		return rbac.Principal{}, err
	}
	return id.RBAC(), nil
}

// Login checks the password through PAM and starts a session. Root and
// members of the admin group become admin principals on their first login.
func (s *Service) Login(ctx context.Context, req api.LoginRequest, peer api.Peer, userAgent string) (api.Tokens, error) {
	t := s.Tokens()
	if t == nil {
		return api.Tokens{}, api.ErrNotInitialized
	}
	id, err := s.opts.PAM.Authenticate(ctx, req.Username, req.Password, source(peer))
	if err != nil {
		return api.Tokens{}, pamError(err)
	}
	p, err := s.opts.Store.GetPrincipal(ctx, id.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.opts.Store.PutPrincipal(ctx, store.Principal{Name: id.Name, Role: store.RoleAdmin, Source: store.SourcePAM}); err != nil {
			return api.Tokens{}, err
		}
		s.log.Info("first login of an admin", "principal", id.Name, "root", id.Root)
	case err != nil:
		return api.Tokens{}, err
	case pamAdmin(p) && !id.Root && !id.Admin:
		// An admin by the group, out of it since: no more.
		s.log.Warn("login refused: the admin principal is no longer root or in the admin group", "principal", id.Name)
		return api.Tokens{}, fmt.Errorf("%w: invalid user name or password", api.ErrUnauthenticated)
	}
	out, err := t.Login(ctx, id.Name, token.Client{UserAgent: userAgent, SourceAddress: source(peer)})
	if err != nil {
		return api.Tokens{}, tokenError(err)
	}
	return wireTokens(out), nil
}

// Refresh exchanges a refresh token for new tokens.
func (s *Service) Refresh(ctx context.Context, refresh string, peer api.Peer, userAgent string) (api.Tokens, error) {
	t := s.Tokens()
	if t == nil {
		return api.Tokens{}, api.ErrNotInitialized
	}
	out, err := t.Refresh(ctx, refresh, token.Client{UserAgent: userAgent, SourceAddress: source(peer)})
	if err != nil {
		return api.Tokens{}, tokenError(err)
	}
	// An admin by its Linux group is asked again at every refresh.
	if p, err := s.opts.Store.GetPrincipal(ctx, out.Identity.Principal); err == nil && pamAdmin(p) {
		still, err := s.opts.PAM.StillAdmin(p.Name)
		if err != nil {
			return api.Tokens{}, err
		}
		if !still {
			_ = t.Logout(ctx, out.RefreshToken)
			s.log.Warn("session ended: the admin principal is no longer root or in the admin group", "principal", p.Name)
			return api.Tokens{}, fmt.Errorf("%w: %s is no longer an admin", api.ErrUnauthenticated, p.Name)
		}
	}
	return wireTokens(out), nil
}

// Logout revokes the refresh token's session.
func (s *Service) Logout(ctx context.Context, refresh string) error {
	t := s.Tokens()
	if t == nil {
		return api.ErrNotInitialized
	}
	return tokenError(t.Logout(ctx, refresh))
}

// PutPrincipal creates or changes a principal (admins only).
func (s *Service) PutPrincipal(ctx context.Context, name string, spec api.PrincipalSpec) (api.PrincipalInfo, bool, error) {
	p := store.Principal{Name: name, Role: spec.Role, Source: store.SourceLocal, Disabled: spec.Disabled}
	switch spec.Role {
	case store.RoleTenant:
		if len(spec.Tenants) != 1 {
			return api.PrincipalInfo{}, false, api.InputError("tenants", "a tenant principal is bound to exactly one tenant")
		}
		p.Tenant = spec.Tenants[0]
	case store.RoleReseller:
		p.Tenants = spec.Tenants
	case store.RoleAdmin:
		if len(spec.Tenants) > 0 {
			return api.PrincipalInfo{}, false, api.InputError("tenants", "an admin is bound to no tenant")
		}
	default:
		return api.PrincipalInfo{}, false, api.InputError("role", fmt.Sprintf("%q is not admin, tenant or reseller", spec.Role))
	}
	old, err := s.opts.Store.GetPrincipal(ctx, name)
	created := errors.Is(err, store.ErrNotFound)
	if err != nil && !created {
		return api.PrincipalInfo{}, false, err
	}
	if !created {
		p.Source = old.Source
	}
	out, err := s.opts.Store.PutPrincipal(ctx, p)
	if err != nil {
		return api.PrincipalInfo{}, false, err
	}
	if spec.Disabled && !old.Disabled {
		if _, err := s.opts.Store.RevokePrincipalRefreshTokens(ctx, name); err != nil {
			return api.PrincipalInfo{}, false, err
		}
	}
	return principalInfo(out), created, nil
}

// ListPrincipals lists every principal.
func (s *Service) ListPrincipals(ctx context.Context) ([]api.PrincipalInfo, error) {
	ps, err := s.opts.Store.ListPrincipals(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PrincipalInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, principalInfo(p))
	}
	return out, nil
}

// DeletePrincipal deletes a principal with its sessions and tokens.
func (s *Service) DeletePrincipal(ctx context.Context, name string) error {
	if name == "root" {
		return api.InputError("name", "root is the first admin and cannot be deleted")
	}
	return s.opts.Store.DeletePrincipal(ctx, name)
}

// CreateToken makes an API token for req.Principal.
func (s *Service) CreateToken(ctx context.Context, req api.APITokenRequest, createdBy string) (api.APITokenCreated, error) {
	t := s.Tokens()
	if t == nil {
		return api.APITokenCreated{}, api.ErrNotInitialized
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return api.APITokenCreated{}, api.InputError("ttl", fmt.Sprintf("%q is not a positive duration such as 720h", req.TTL))
		}
		ttl = d
	}
	for _, sc := range req.Scopes {
		if !rbac.ValidScope(sc) {
			return api.APITokenCreated{}, api.InputError("scopes", fmt.Sprintf("unknown scope %q (known: %v)", sc, rbac.Scopes()))
		}
	}
	secret, tok, err := t.CreateAPIToken(ctx, token.APITokenRequest{Principal: req.Principal, Name: req.Name,
		Scopes: req.Scopes, TTL: ttl, CreatedBy: createdBy})
	if err != nil {
		return api.APITokenCreated{}, tokenError(err)
	}
	return api.APITokenCreated{APITokenInfo: tokenInfo(tok), Token: secret}, nil
}

// ListTokens lists the API tokens of principal ("" for all).
func (s *Service) ListTokens(ctx context.Context, principal string) ([]api.APITokenInfo, error) {
	toks, err := s.opts.Store.ListAPITokens(ctx, principal)
	if err != nil {
		return nil, err
	}
	out := make([]api.APITokenInfo, 0, len(toks))
	for _, t := range toks {
		if t.RevokedAt == nil {
			out = append(out, tokenInfo(t))
		}
	}
	return out, nil
}

// RevokeToken revokes principal's token name.
func (s *Service) RevokeToken(ctx context.Context, principal, name string) error {
	_, err := s.opts.Store.RevokeAPIToken(ctx, principal, name)
	return err
}

// RotateKeys makes a new signing key (admins: POST /api/v1/keys/rotate).
func (s *Service) RotateKeys(_ context.Context) (api.KeyRotation, error) {
	t := s.Tokens()
	if t == nil {
		return api.KeyRotation{}, api.ErrNotInitialized
	}
	kid, pruned, err := t.RotateKeys()
	if err != nil {
		return api.KeyRotation{}, err
	}
	return api.KeyRotation{KeyID: kid, Pruned: pruned}, nil
}

// pamAdmin: an admin principal made by a login (root or the admin group),
// not by an admin's `wcp principal apply`.
func pamAdmin(p store.Principal) bool {
	return p.Source == store.SourcePAM && p.Role == store.RoleAdmin
}

func principalInfo(p store.Principal) api.PrincipalInfo {
	ts := slices.Clone(p.Tenants)
	if p.Tenant != "" {
		ts = []string{p.Tenant}
	}
	return api.PrincipalInfo{Name: p.Name, Role: p.Role, Tenants: ts, Via: p.Source}
}

func tokenInfo(t store.APIToken) api.APITokenInfo {
	return api.APITokenInfo{Name: t.Name, Principal: t.Principal, Scopes: t.Scopes, CreatedAt: t.CreatedAt,
		CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

func wireTokens(t token.Tokens) api.Tokens {
	p := t.Identity.RBAC()
	return api.Tokens{TokenType: "Bearer", AccessToken: t.AccessToken, AccessTokenExpiresAt: t.AccessExpiresAt,
		RefreshToken: t.RefreshToken, RefreshTokenExpiresAt: t.RefreshExpiresAt,
		Principal: api.PrincipalInfo{Name: p.Name, Role: string(p.Role), Tenants: p.Tenants, Scopes: p.Scopes, Via: p.Via}}
}

// source is the address PAM and the rate limits see: the client's IP
// address, without the port (each connection has a port of its own, and
// failures are counted per address).
func source(p api.Peer) string {
	if p.Unix {
		return "unix"
	}
	if host, _, err := net.SplitHostPort(p.Addr); err == nil {
		return host
	}
	return p.Addr
}

func via(p api.Peer) string {
	if p.Root() {
		return "root on the local socket"
	}
	return "root's password over HTTPS from " + p.Addr
}

// pamError maps PAM's refusals to the API's.
func pamError(err error) error {
	var rl *pam.RateLimitError
	switch {
	case errors.As(err, &rl):
		return &api.RetryAfterError{After: rl.RetryAfter, Err: err}
	case errors.Is(err, pam.ErrBusy):
		return fmt.Errorf("%w: %w", api.ErrBusy, err)
	case errors.Is(err, pam.ErrBadCredentials), errors.Is(err, pam.ErrAccount):
		return fmt.Errorf("%w: %w", api.ErrUnauthenticated, err)
	}
	return err
}

// tokenError maps the token service's refusals to the API's.
func tokenError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, token.ErrInvalidToken):
		return fmt.Errorf("%w: %w", api.ErrUnauthenticated, err)
	}
	return err
}
