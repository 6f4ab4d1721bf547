package wcpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	legolog "github.com/go-acme/lego/v5/log"

	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/host/acme"
	"github.com/wcp360/wcp360/internal/host/domain"
)

// acmeIssuer is the ACME client of the acme section; nil when
// acme.directory is empty (ACME off). The challenge directory is the one
// every nginx site serves.
func (d *daemonState) acmeIssuer(challengeDir string) (domain.Issuer, error) {
	a := d.cfg.ACME
	if a.Directory == "" {
		d.log.Info("acme.directory is empty: ACME is off, acme domains keep their self-signed placeholder")
		return nil, nil
	}
	hc, err := acmeHTTPClient(a)
	if err != nil {
		return nil, err
	}
	// lego logs through a global logger of its own: into wcpd's log, not
	// straight to stderr.
	legolog.SetDefault(d.log.With("component", "acme"))
	var eab *acme.EAB
	if a.EABKid != "" {
		eab = &acme.EAB{KeyID: a.EABKid, HMACKey: a.EABHMACKey}
	}
	dns, err := acmeDNS(a.DNS)
	if err != nil {
		return nil, err
	}
	c, err := acme.New(acme.Options{
		DirectoryURL: a.Directory, Email: a.Email, EAB: eab,
		StateDir: filepath.Join(d.cfg.Paths.StateDir, "acme"), ChallengeDir: challengeDir,
		HTTPClient: hc, Clock: time.Now, Logger: d.log, DNS: dns,
	})
	if err != nil {
		return nil, fmt.Errorf("acme.dns: %w", err)
	}
	if dns != nil {
		// The provider and the names of its settings; never their values.
		d.log.Info("acme: DNS-01 through "+dns.Provider, "settings", slices.Sorted(maps.Keys(dns.Env)),
			"resolvers", dns.Resolvers, "forAll", dns.ForAll)
	}
	return c, nil
}

// acmeDNS is the DNS-01 configuration of acme.dns, its settings read from
// acme.dns.env and acme.dns.envFile; nil when acme.dns.provider is empty.
func acmeDNS(c config.ACMEDNS) (*acme.DNS, error) {
	if c.Provider == "" {
		return nil, nil
	}
	env := maps.Clone(c.Env)
	if env == nil {
		env = map[string]string{}
	}
	if c.EnvFile != "" {
		more, err := acme.LoadEnvFile(c.EnvFile)
		if err != nil {
			return nil, fmt.Errorf("acme.dns.envFile: %w", err)
		}
		for k, v := range more {
			if _, both := env[k]; both {
				return nil, fmt.Errorf("acme.dns.envFile: %s is in acme.dns.env too: keep one", k)
			}
			env[k] = v
		}
	}
	return &acme.DNS{Provider: c.Provider, Env: env, Resolvers: c.Resolvers, CheckAuthoritative: c.CheckAuthoritative,
		PropagationTimeout: c.PropagationTimeout, PollingInterval: c.PollingInterval, SequenceInterval: c.SequenceInterval,
		ForAll: c.ForAll}, nil
}

// acmeHTTPClient trusts the system's roots and those of acme.caBundle.
func acmeHTTPClient(a config.ACME) (*http.Client, error) {
	if a.CABundle == "" {
		return &http.Client{Timeout: 2 * time.Minute}, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(a.CABundle)
	if err != nil {
		return nil, fmt.Errorf("acme.caBundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("acme.caBundle: " + a.CABundle + " holds no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 2 * time.Minute, Transport: tr}, nil
}
