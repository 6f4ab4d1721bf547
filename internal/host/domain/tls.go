package domain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
	"github.com/wcp360/wcp360/internal/host/selfsigned"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// TLS is the part that puts the certificate nginx serves for a domain in
// place: until the CA's certificate lands (the ACME part), modes acme and selfsigned get a
// self-signed certificate for all the domain's names (so the HTTPS site and
// nginx's configuration stay valid), mode provided gets the spec's
// certificate after checking it, mode none gets none.
type TLS struct {
	Store Store
	// Dir holds Dir/<domain>/fullchain.pem and privkey.pem (root, 0600).
	Dir   string
	Clock func() time.Time
}

// Renewal margin of the self-signed placeholder.
const selfSignedLifetime, selfSignedRenewBefore = 90 * 24 * time.Hour, 30 * 24 * time.Hour

// Name names the part in events.
func (p *TLS) Name() string { return "tls" }

// ConditionType is the part's condition.
func (p *TLS) ConditionType() string { return "TLS" }

// Files are a domain's certificate files and whether browsers trust them.
type Files struct {
	CertFile, KeyFile string
	Trusted           bool
	// Fingerprint names the certificate in place, in every mode: a new
	// certificate lands at the same paths (an ACME renewal, a provided
	// certificate replaced, a placeholder made again), and the site file
	// must change for nginx to reload and serve it. "" while there is none.
	Fingerprint string
}

// FilesFor is where the certificate of d lives (nil for mode none). In
// mode acme the files are trusted once the CA's certificate replaced the
// placeholder.
func (p *TLS) FilesFor(d Desired) *Files {
	f := &Files{CertFile: p.certPath(d.Domain), KeyFile: p.keyPath(d.Domain)}
	switch d.Spec.TLS.Mode {
	case v1alpha1.TLSNone:
		return nil
	case v1alpha1.TLSProvided:
		f.Trusted = true
		f.Fingerprint = p.fingerprint(d.Domain)
	case v1alpha1.TLSACME:
		if c, err := p.current(d.Domain); err == nil {
			f.Trusted, f.Fingerprint = c.issued(), c.fingerprint
		}
	case v1alpha1.TLSSelfSigned:
		f.Fingerprint = p.fingerprint(d.Domain)
	}
	return f
}

// fingerprint is the SHA-256 of the domain's chain file, hex; "" when it
// cannot be read (the TLS part reports that).
func (p *TLS) fingerprint(domain string) string {
	b, err := os.ReadFile(p.certPath(domain))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// onDisk is the certificate in place for a domain.
type onDisk struct {
	leaf        *x509.Certificate
	fingerprint string // SHA-256 of the chain file, hex
}

// issued reports whether the certificate is a CA's, not self-signed.
func (c onDisk) issued() bool { return !bytes.Equal(c.leaf.RawIssuer, c.leaf.RawSubject) }

// current reads and checks the certificate and key in place.
func (p *TLS) current(domain string) (onDisk, error) {
	certPEM, err := os.ReadFile(p.certPath(domain))
	if err != nil {
		return onDisk{}, err
	}
	keyPEM, err := os.ReadFile(p.keyPath(domain))
	if err != nil {
		return onDisk{}, err
	}
	leaf, err := parseCert(certPEM, keyPEM)
	if err != nil {
		return onDisk{}, err
	}
	sum := sha256.Sum256(certPEM)
	return onDisk{leaf: leaf, fingerprint: hex.EncodeToString(sum[:])}, nil
}

func (p *TLS) certPath(domain string) string { return filepath.Join(p.Dir, domain, "fullchain.pem") }
func (p *TLS) keyPath(domain string) string  { return filepath.Join(p.Dir, domain, "privkey.pem") }

// Observe checks the files are there and fit the spec.
func (p *TLS) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return nil, err
	}
	if d.Spec.TLS.Mode == v1alpha1.TLSNone {
		return nil, nil
	}
	certPEM, err1 := os.ReadFile(p.certPath(d.Domain))
	keyPEM, err2 := os.ReadFile(p.keyPath(d.Domain))
	if err1 != nil || err2 != nil {
		for _, err := range []error{err1, err2} {
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
		return []host.Difference{{Field: "certificate", Want: "present", Have: "absent"}}, nil
	}
	if d.Spec.TLS.Mode == v1alpha1.TLSProvided {
		pr := d.Spec.TLS.Provided
		if pr == nil || !bytes.Equal(certPEM, []byte(pr.CertificatePEM)) || !bytes.Equal(keyPEM, []byte(pr.PrivateKeyPEM)) {
			return []host.Difference{{Field: "certificate", Want: "the provided certificate", Have: "another"}}, nil
		}
		return nil, nil
	}
	cert, err := parseCert(certPEM, keyPEM)
	if err == nil && d.Spec.TLS.Mode == v1alpha1.TLSACME && !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		// The CA's certificate: the ACME part renews it (for new names
		// too); it stays in place until it has expired. Expiry is work that
		// falls due with time, not drift.
		if p.Clock().After(cert.NotAfter) {
			return []host.Difference{{Field: "certificate", Want: "a valid certificate (the placeholder until the CA issues one)",
				Have: "the CA's, expired on " + cert.NotAfter.Format(time.DateOnly), Due: true}}, nil
		}
		return nil, nil
	}
	switch {
	case err != nil:
		return []host.Difference{{Field: "certificate", Want: "a valid self-signed certificate", Have: err.Error()}}, nil //nolint:nilerr // an unusable file is a difference, not a failure to observe
	case !coversAll(cert, d.ServerNames):
		return []host.Difference{{Field: "certificate names", Want: fmt.Sprint(d.ServerNames), Have: fmt.Sprint(cert.DNSNames)}}, nil
	case cert.NotAfter.Before(p.Clock().Add(selfSignedRenewBefore)):
		return []host.Difference{{Field: "certificate expiry", Want: "after " + p.Clock().Add(selfSignedRenewBefore).Format(time.DateOnly),
			Have: cert.NotAfter.Format(time.DateOnly), Due: true}}, nil
	}
	return nil, nil
}

// Apply writes the certificate and key.
func (p *TLS) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return "", err
	}
	var certPEM, keyPEM []byte
	if d.Spec.TLS.Mode == v1alpha1.TLSProvided {
		pr := d.Spec.TLS.Provided
		if pr == nil {
			return "", reconcile.Terminal(errors.New("spec.tls.provided is missing"))
		}
		cert, err := parseCert([]byte(pr.CertificatePEM), []byte(pr.PrivateKeyPEM))
		if err != nil {
			return "", reconcile.Terminal(fmt.Errorf("spec.tls.provided: %w", err))
		}
		if !coversAll(cert, d.ServerNames) {
			return "", reconcile.Terminal(fmt.Errorf("spec.tls.provided: the certificate names %v do not cover %v", cert.DNSNames, d.ServerNames))
		}
		if p.Clock().After(cert.NotAfter) {
			return "", reconcile.Terminal(fmt.Errorf("spec.tls.provided: the certificate expired on %s", cert.NotAfter.Format(time.DateOnly)))
		}
		certPEM, keyPEM = []byte(pr.CertificatePEM), []byte(pr.PrivateKeyPEM)
	} else if certPEM, keyPEM, err = selfsigned.New(p.Clock(), selfSignedLifetime, d.ServerNames[0], d.ServerNames...); err != nil {
		return "", err
	}
	dir := filepath.Join(p.Dir, d.Domain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// Key first: nginx never sees a new certificate with an old key for long.
	if err := atomicfile.Write(p.keyPath(d.Domain), keyPEM, 0o600, -1, -1); err != nil {
		return "", err
	}
	return "", atomicfile.Write(p.certPath(d.Domain), certPEM, 0o600, -1, -1)
}

// Remove deletes the domain's certificate files.
func (p *TLS) Remove(_ context.Context, row store.Resource) error {
	return os.RemoveAll(filepath.Join(p.Dir, row.Name))
}

func parseCert(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	return x509.ParseCertificate(pair.Certificate[0])
}

func coversAll(cert *x509.Certificate, names []string) bool {
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}
