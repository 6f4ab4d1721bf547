package wcpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
	c, err := acme.New(acme.Options{
		DirectoryURL: a.Directory, Email: a.Email, EAB: eab,
		StateDir: filepath.Join(d.cfg.Paths.StateDir, "acme"), ChallengeDir: challengeDir,
		HTTPClient: hc, Clock: time.Now, Logger: d.log,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
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
