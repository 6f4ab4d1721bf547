package domain_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/domain"
)

// Every mode's certificate is named in the site (Files.Fingerprint), so a
// new certificate at the same paths is a new site file and nginx reloads:
// a provided certificate replaced in the spec, a self-signed one made
// again. Mode none has no files.
func TestFilesFingerprintEveryMode(t *testing.T) {
	w := newWorld(t)
	p := &domain.TLS{Store: w.st, Dir: t.TempDir(), Clock: time.Now}
	ctx := context.Background()
	resolve := func(name string, spec v1alpha1.DomainSpec) domain.Desired {
		t.Helper()
		row := w.domain(name, spec)
		if _, err := p.Apply(ctx, row, nil); err != nil {
			t.Fatal(err)
		}
		d, err := domain.Resolve(ctx, w.st, row)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	sum := func(pem string) string { s := sha256.Sum256([]byte(pem)); return hex.EncodeToString(s[:]) }
	provided := func(cert, key string) v1alpha1.DomainSpec {
		return v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSProvided,
			Provided: &v1alpha1.ProvidedCertificate{CertificatePEM: cert, PrivateKeyPEM: key}}}
	}

	certA, keyA := selfSignedPEM(t, "provided.test")
	certB, keyB := selfSignedPEM(t, "provided.test")
	f := p.FilesFor(resolve("provided.test", provided(certA, keyA)))
	if f == nil || !f.Trusted || f.Fingerprint != sum(certA) {
		t.Fatalf("provided A: %+v, want trusted with fingerprint %s", f, sum(certA))
	}
	f = p.FilesFor(resolve("provided.test", provided(certB, keyB)))
	if f.Fingerprint != sum(certB) {
		t.Errorf("provided B: fingerprint %s, want %s", f.Fingerprint, sum(certB))
	}

	selfSigned := v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSSelfSigned}}
	first := p.FilesFor(resolve("self.test", selfSigned))
	again := p.FilesFor(resolve("self.test", selfSigned)) // a new certificate
	if first.Trusted || first.Fingerprint == "" || again.Fingerprint == first.Fingerprint {
		t.Errorf("self-signed: %+v then %+v, want untrusted, named, and a new name for the new certificate", first, again)
	}

	if f := p.FilesFor(resolve("plain.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSNone}})); f != nil {
		t.Errorf("mode none: %+v", f)
	}
}

// A self-signed certificate close to its expiry is due work, not drift:
// it is renewed whatever the drift policy.
func TestSelfSignedExpiryIsDue(t *testing.T) {
	w := newWorld(t)
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	p := &domain.TLS{Store: w.st, Dir: t.TempDir(), Clock: func() time.Time { return now }}
	row := w.domain("acme.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSSelfSigned}})
	if _, err := p.Apply(context.Background(), row, nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(70 * 24 * time.Hour)
	if ds, err := p.Observe(context.Background(), row); err != nil || len(ds) != 1 || ds[0].Field != "certificate expiry" || !ds[0].Due {
		t.Errorf("near expiry: %+v %v, want one due difference", ds, err)
	}
}
