package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/lego"

	"github.com/wcp360/wcp360/internal/version"
)

// Defaults of Options.
const (
	DefaultStateDir = "/var/lib/wcp360/acme"
	// DefaultChallengeDir is internal/host/nginx's DefaultACMEDir.
	DefaultChallengeDir = "/var/lib/wcp360/acme/challenges"
	// DirectoryLetsEncrypt and DirectoryLetsEncryptStaging are Let's
	// Encrypt's directories.
	DirectoryLetsEncrypt        = "https://acme-v02.api.letsencrypt.org/directory"
	DirectoryLetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// EAB is an external account binding: the key id and base64url-encoded
// HMAC key the CA hands out for its account.
type EAB struct {
	KeyID   string
	HMACKey string
}

// Options configure a Client.
type Options struct {
	// DirectoryURL is the CA's ACME directory (required).
	DirectoryURL string
	// Email is the account's contact address (optional).
	Email string
	// EAB binds the new account to the CA's external account; nil for none.
	EAB *EAB
	// StateDir holds the accounts (DefaultStateDir).
	StateDir string
	// ChallengeDir is where nginx serves /.well-known/acme-challenge/ from
	// (DefaultChallengeDir).
	ChallengeDir string
	// HTTPClient talks to the CA; nil: system roots, two-minute timeout.
	HTTPClient *http.Client
	// Clock stamps the account file; nil: time.Now.
	Clock func() time.Time
	// Logger gets one line per registration and issuance; nil: discarded.
	Logger *slog.Logger
	// DNS turns DNS-01 on (wildcard names need it); nil: HTTP-01 only.
	DNS *DNS
}

// Client obtains certificates from one ACME directory with one account.
// It is safe for concurrent use.
type Client struct {
	opts  Options
	store accountStore
	dns   challenge.Provider // nil without Options.DNS

	mu   sync.Mutex
	lego *legoClients // nil until the account is ready
}

// legoClients share the account: auto solves HTTP-01, and DNS-01 where
// the CA offers nothing else (wildcards) or Options.DNS.ForAll says so;
// dns solves DNS-01 only (nil without Options.DNS).
type legoClients struct {
	auto, dns *lego.Client
}

// New checks opts and returns a Client; nothing is sent to the CA before
// the first Obtain.
func New(opts Options) (*Client, error) {
	if opts.DirectoryURL == "" {
		return nil, errors.New("acme: Options.DirectoryURL is required")
	}
	if opts.EAB != nil && (opts.EAB.KeyID == "" || opts.EAB.HMACKey == "") {
		return nil, errors.New("acme: Options.EAB needs both KeyID and HMACKey")
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.ChallengeDir == "" {
		opts.ChallengeDir = DefaultChallengeDir
	}
	if !filepath.IsAbs(opts.StateDir) || !filepath.IsAbs(opts.ChallengeDir) {
		return nil, errors.New("acme: StateDir and ChallengeDir must be absolute")
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if opts.Clock == nil {
		opts.Clock = time.Now //nolint:forbidigo // the default of the injected clock
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, store: newAccountStore(opts.StateDir, opts.DirectoryURL)}
	if opts.DNS != nil {
		if err := checkResolvers(opts.DNS.Resolvers); err != nil {
			return nil, fmt.Errorf("acme: DNS: %w", err)
		}
		p, err := newDNSProvider(opts.DNS)
		if err != nil {
			return nil, err
		}
		c.dns = p
		if len(opts.DNS.Resolvers) > 0 {
			// lego keeps one resolver for the process (its providers
			// find zones through it too); wcpd has one Client.
			dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: opts.DNS.Resolvers}))
		}
	}
	return c, nil
}

// DNS01 reports whether the client can prove control over DNS-01.
func (c *Client) DNS01() bool { return c.dns != nil }

// Challenge is how ObtainWith proves control of the names.
type Challenge int

// Challenges.
const (
	// ChallengeAuto: HTTP-01, and DNS-01 for wildcards (for every name
	// with DNS.ForAll).
	ChallengeAuto Challenge = iota
	// ChallengeDNS01: DNS-01 for every name.
	ChallengeDNS01
)

// Certificate is an issued certificate.
type Certificate struct {
	// ChainPEM is the leaf then its issuers, as nginx's ssl_certificate wants.
	ChainPEM []byte
	// KeyPEM is the leaf's private key (ECDSA P-256).
	KeyPEM []byte
	// Leaf is the parsed leaf.
	Leaf *x509.Certificate
	// URL is the certificate's URL at the CA.
	URL string
}

// AccountURL is the account's URL at the CA, registering it first if
// needed.
func (c *Client) AccountURL(ctx context.Context) (string, error) {
	if _, err := c.client(ctx); err != nil {
		return "", err
	}
	a, err := c.store.load()
	if err != nil {
		return "", err
	}
	return a.URL, nil
}

// Obtain is ObtainWith(ChallengeAuto).
func (c *Client) Obtain(ctx context.Context, names []string) (*Certificate, error) {
	return c.ObtainWith(ctx, names, ChallengeAuto)
}

// ObtainWith orders a certificate for names (the first is the common
// name), proves control of each with ch and returns the certificate and
// its new key. Errors from the CA are *Error; a name that needs DNS-01
// (a wildcard) without Options.DNS is ErrNoDNS01.
func (c *Client) ObtainWith(ctx context.Context, names []string, ch Challenge) (*Certificate, error) {
	if len(names) == 0 {
		return nil, errors.New("acme: no names to obtain a certificate for")
	}
	if c.dns == nil && (ch == ChallengeDNS01 || slices.ContainsFunc(names, IsWildcard)) {
		return nil, ErrNoDNS01
	}
	start := c.opts.Clock()
	res, err := c.obtain(ctx, names, ch)
	var e *Error
	if errors.As(err, &e) && e.Problem != nil && e.Problem.Type == ProblemAccountDoesNotExist {
		// The CA forgot the account (a reset staging CA, a test CA that
		// restarted): register again, once.
		c.opts.Logger.Warn("acme: the CA does not know the account; registering again", "directory", c.opts.DirectoryURL)
		if err := c.forgetAccount(); err != nil {
			return nil, err
		}
		res, err = c.obtain(ctx, names, ch)
	}
	if err != nil {
		return nil, err
	}
	certs, err := certcrypto.ParsePEMBundle(res.Certificate)
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate for %v: %w", names, err)
	}
	c.opts.Logger.Info("acme: certificate issued", "names", names, "notAfter", certs[0].NotAfter,
		"issuer", certs[0].Issuer.String(), "took", c.opts.Clock().Sub(start).Round(time.Millisecond))
	return &Certificate{ChainPEM: res.Certificate, KeyPEM: res.PrivateKey, Leaf: certs[0], URL: res.CertURL}, nil
}

// ErrNoDNS01 means names need DNS-01 and no DNS provider is configured.
var ErrNoDNS01 = errors.New("acme: these names need DNS-01 and no DNS provider is configured (acme.dns)")

// IsWildcard reports whether name is a wildcard (*.example.com): only
// DNS-01 proves control of one.
func IsWildcard(name string) bool { return strings.HasPrefix(name, "*.") }

func (c *Client) obtain(ctx context.Context, names []string, ch Challenge) (*certificate.Resource, error) {
	lcs, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	lc := lcs.auto
	if ch == ChallengeDNS01 {
		lc = lcs.dns
	}
	res, err := lc.Certificate.Obtain(ctx, certificate.ObtainRequest{
		Domains: names, KeyType: certcrypto.EC256, Bundle: true, EnableCommonName: true,
	})
	if err != nil {
		return nil, wrap("obtain", names, err)
	}
	return res, nil
}

// client is the lego clients of the registered account.
func (c *Client) client(ctx context.Context) (*legoClients, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lego != nil {
		return c.lego, nil
	}
	key, err := c.store.key()
	if err != nil {
		return nil, err
	}
	acct, err := c.store.load()
	if err != nil {
		return nil, err
	}
	u := &user{email: c.opts.Email, key: key}
	if acct.URL != "" {
		u.reg = &acme.ExtendedAccount{Location: acct.URL}
	}
	lc, err := c.newLego(u)
	if err != nil {
		return nil, err
	}
	if u.reg == nil {
		var reg *acme.ExtendedAccount
		if c.opts.EAB != nil {
			reg, err = lc.Registration.RegisterWithExternalAccountBinding(ctx, registerEAB(c.opts.EAB))
		} else {
			reg, err = lc.Registration.Register(ctx, registerPlain())
		}
		if err != nil {
			return nil, wrap("register", nil, err)
		}
		a := account{Directory: c.opts.DirectoryURL, Email: c.opts.Email, URL: reg.Location, Registered: c.opts.Clock().UTC()}
		if err := c.store.save(a); err != nil {
			return nil, err
		}
		c.opts.Logger.Info("acme: account registered", "directory", c.opts.DirectoryURL, "account", reg.Location)
		u.reg = reg
	}
	lcs := &legoClients{auto: lc}
	if err := c.setSolvers(lcs, u); err != nil {
		return nil, err
	}
	c.lego = lcs
	return lcs, nil
}

func (c *Client) newLego(u *user) (*lego.Client, error) {
	cfg := lego.NewConfig(u)
	cfg.CADirURL = c.opts.DirectoryURL
	cfg.HTTPClient = c.opts.HTTPClient
	cfg.UserAgent = "wcp360/" + version.Version
	lc, err := lego.NewClient(cfg)
	if err != nil {
		return nil, wrap("directory", nil, err)
	}
	return lc, nil
}

// setSolvers gives lcs.auto HTTP-01 (unless DNS.ForAll) and DNS-01 (with
// a DNS provider: lego prefers HTTP-01 where the CA offers both), and
// makes lcs.dns, DNS-01 only, over u's (registered) account.
func (c *Client) setSolvers(lcs *legoClients, u *user) error {
	if c.dns == nil || !c.opts.DNS.ForAll {
		if err := lcs.auto.Challenge.SetHTTP01Provider(&webroot{dir: c.opts.ChallengeDir}); err != nil {
			return err
		}
	}
	if c.dns == nil {
		return nil
	}
	var opts []dns01.ChallengeOption
	if !c.opts.DNS.CheckAuthoritative {
		opts = append(opts, dns01.DisableAuthoritativeNssPropagationRequirement())
	}
	if err := lcs.auto.Challenge.SetDNS01Provider(c.dns, opts...); err != nil {
		return err
	}
	var err error
	if lcs.dns, err = c.newLego(u); err != nil {
		return err
	}
	return lcs.dns.Challenge.SetDNS01Provider(c.dns, opts...)
}

// forgetAccount drops the registration (keeping the key) so the next call
// registers again.
func (c *Client) forgetAccount() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lego = nil
	return c.store.forget()
}
