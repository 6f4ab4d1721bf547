package domain_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/acme"
	"github.com/wcp360/wcp360/internal/host/domain"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// fakeCA is an issuer whose orders fail with the CA's problem; with dns
// it says DNS-01 is configured.
type fakeCA struct {
	dns    bool
	orders atomic.Int32
	last   acme.Challenge
}

func (f *fakeCA) Obtain(ctx context.Context, names []string) (*acme.Certificate, error) {
	return f.ObtainWith(ctx, names, acme.ChallengeAuto)
}

func (f *fakeCA) ObtainWith(_ context.Context, names []string, ch acme.Challenge) (*acme.Certificate, error) {
	f.orders.Add(1)
	f.last = ch
	return nil, &acme.Error{Op: "obtain", Names: names, Err: errors.New("403"),
		Problem: &acme.Problem{Type: acme.ProblemUnauthorized, Detail: "Incorrect TXT record found at _acme-challenge." + names[0]}}
}

func (f *fakeCA) RenewalInfo(context.Context, *x509.Certificate) (*acme.Window, error) {
	return nil, acme.ErrNoARI
}

func (f *fakeCA) DNS01() bool { return f.dns }

// plainCA has no DNS-01 at all (an Issuer, not a DNSIssuer).
type plainCA struct{ ca fakeCA }

func (p *plainCA) Obtain(ctx context.Context, names []string) (*acme.Certificate, error) {
	return p.ca.Obtain(ctx, names)
}

func (p *plainCA) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*acme.Window, error) {
	return p.ca.RenewalInfo(ctx, leaf)
}

func acmePart(w *world, client domain.Issuer, clock *time.Time) *domain.ACME {
	now := func() time.Time { return *clock }
	return &domain.ACME{Store: w.st, TLS: &domain.TLS{Store: w.st, Dir: filepath.Join(w.home, "certs"), Clock: now}, Client: client, Clock: now}
}

// status is what the controller writes after the ACME part failed: the
// stored status with the part's report.
func (w *world) failedStatus(p *domain.ACME, row store.Resource, err error) store.Resource {
	w.t.Helper()
	var st v1alpha1.Status
	if len(row.Status) > 0 {
		if err := json.Unmarshal(row.Status, &st); err != nil {
			w.t.Fatal(err)
		}
	}
	p.ReportFailure(w.t.Context(), row, &st, err)
	b, _ := json.Marshal(st)
	row, uerr := w.st.UpdateStatus(w.t.Context(), store.StatusUpdate{Kind: v1alpha1.KindDomain, Name: row.Name, UID: row.UID, Status: b,
		ObservedGeneration: row.ObservedGeneration})
	if uerr != nil {
		w.t.Fatal(uerr)
	}
	return row
}

// The retry backoff after a failed order lives in status.tls: a wcpd that
// restarts (a new ACME part) reads it back, and its first look sends no
// order before the backoff has passed; the next failure doubles it.
func TestACMEBackoffSurvivesRestart(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	row := w.domain("shop.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSACME, Challenge: v1alpha1.ChallengeHTTP01}})

	ca := &fakeCA{}
	p := acmePart(w, ca, &clock)
	_, err := p.Apply(ctx, row, nil)
	var we *reconcile.WaitingError
	if !errors.As(err, &we) || we.After != time.Minute || ca.orders.Load() != 1 {
		t.Fatalf("first order: %v (%d orders), want a wait of 1m", err, ca.orders.Load())
	}
	row = w.failedStatus(p, row, err)
	ts := tlsStatus(t, row)
	failedAt := clock
	if ts.Failures != 1 || ts.NextRetry == nil || !ts.NextRetry.Equal(clock.Add(time.Minute)) ||
		ts.LastErrorTime == nil || !ts.LastErrorTime.Equal(failedAt) || !strings.Contains(ts.LastError, "Incorrect TXT record") {
		t.Fatalf("status.tls after the failure: %+v", ts)
	}

	// wcpd restarts 30 s later: a new part, nothing in memory.
	clock = clock.Add(30 * time.Second)
	ca2 := &fakeCA{}
	p2 := acmePart(w, ca2, &clock)
	_, err = p2.Apply(ctx, row, nil)
	if !errors.As(err, &we) || we.After != 30*time.Second || ca2.orders.Load() != 0 {
		t.Fatalf("after the restart: %v (%d orders), want to wait the 30 s left and send nothing", err, ca2.orders.Load())
	}
	if !strings.Contains(err.Error(), "Incorrect TXT record") {
		t.Errorf("the wait does not say why: %v", err)
	}
	row = w.failedStatus(p2, row, err)
	if ts2 := tlsStatus(t, row); ts2.Failures != 1 || !ts2.NextRetry.Equal(*ts.NextRetry) || !ts2.LastErrorTime.Equal(failedAt) || ts2.LastError != ts.LastError {
		t.Errorf("status.tls while waiting: %+v, want it unchanged from %+v", ts2, ts)
	}
	if _, ok := p2.FailedEvent(err); ok {
		t.Error("a wait for the backoff is a Failed event")
	}

	// The backoff has passed: the next order goes, fails, waits 2 min.
	clock = clock.Add(31 * time.Second)
	_, err = p2.Apply(ctx, row, nil)
	if !errors.As(err, &we) || we.After != 2*time.Minute || ca2.orders.Load() != 1 {
		t.Fatalf("after the backoff: %v (%d orders), want an order and a wait of 2m", err, ca2.orders.Load())
	}
	row = w.failedStatus(p2, row, err)
	if ts := tlsStatus(t, row); ts.Failures != 2 || !ts.NextRetry.Equal(clock.Add(2*time.Minute)) || !ts.LastErrorTime.Equal(clock) {
		t.Errorf("status.tls after the second failure: %+v", ts)
	}
}

func tlsStatus(t *testing.T, row store.Resource) *v1alpha1.TLSStatus {
	t.Helper()
	var st v1alpha1.Status
	if err := json.Unmarshal(row.Status, &st); err != nil {
		t.Fatal(err)
	}
	if st.TLS == nil {
		t.Fatalf("no status.tls in %s", row.Status)
	}
	return st.TLS
}

// A wildcard name, or spec.tls.challenge dns-01, needs DNS-01: without a
// DNS provider the domain keeps its placeholder and its TLS condition
// says to configure acme.dns; with one, the order goes over DNS-01.
func TestACMENeedsDNS01(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	row := w.domain("wild.test", v1alpha1.DomainSpec{Aliases: []string{"*.wild.test"},
		TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSACME, Challenge: v1alpha1.ChallengeDNS01}})

	if _, ok := domain.Issuer(&plainCA{}).(domain.DNSIssuer); ok {
		t.Fatal("plainCA is a DNSIssuer")
	}
	for _, client := range []domain.Issuer{&plainCA{}, &fakeCA{dns: false}} {
		p := acmePart(w, client, &clock)
		if ds, err := p.Observe(ctx, row); err != nil || len(ds) != 0 {
			t.Errorf("%T: Observe = %v, %v; want nothing to do without DNS-01", client, ds, err)
		}
		var st v1alpha1.Status
		if err := p.ReportStatus(ctx, row, &st); err != nil {
			t.Fatal(err)
		}
		c, _ := conditions.Get(st.Conditions, "TLS")
		if c.Status != v1alpha1.ConditionFalse || c.Reason != "ChallengeUnsupported" || !strings.Contains(c.Message, "configure acme.dns") {
			t.Errorf("%T: TLS condition %+v", client, c)
		}
	}

	ca := &fakeCA{dns: true}
	p := acmePart(w, ca, &clock)
	ds, err := p.Observe(ctx, row)
	if err != nil || len(ds) != 1 || ds[0].Field != "certificate" {
		t.Fatalf("Observe with DNS-01: %v, %v", ds, err)
	}
	if _, err := p.Apply(ctx, row, ds); err == nil || ca.orders.Load() != 1 || ca.last != acme.ChallengeDNS01 {
		t.Errorf("Apply: %v, %d orders over %v; want one over DNS-01", err, ca.orders.Load(), ca.last)
	}
}

// An order the CA refused is a Failed event with the CA's problem; a
// certificate that lands is Issued, or Renewed when it was a renewal,
// with its issuer, names and expiry.
func TestACMEEvents(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	row := w.domain("shop.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSACME}})
	p := acmePart(w, &fakeCA{}, &clock)

	_, err := p.Apply(ctx, row, nil)
	e, ok := p.FailedEvent(err)
	if !ok || e.Reason != domain.ReasonFailed || !strings.Contains(e.Message, "unauthorized: Incorrect TXT record found at _acme-challenge.shop.test") ||
		!strings.Contains(e.Message, "next order in 1m") {
		t.Errorf("FailedEvent(%v) = %+v, %v", err, e, ok)
	}
	if _, ok := p.FailedEvent(errors.New("nginx: reload failed")); ok {
		t.Error("a failure of the host is a Failed event")
	}
	if _, ok := p.AppliedEvent(ctx, row, []host.Difference{{Field: "certificate"}}); ok {
		t.Error("an Issued event without a certificate of the CA")
	}

	notAfter := writeIssued(t, filepath.Join(w.home, "certs", "shop.test"), "shop.test")
	e, ok = p.AppliedEvent(ctx, row, []host.Difference{{Field: "certificate", Due: true}})
	want := "issued by CN=Test CA R1,O=WCP360 Tests for shop.test, valid until " + notAfter.Format(time.RFC3339)
	if !ok || e.Reason != domain.ReasonIssued || e.Message != want {
		t.Errorf("AppliedEvent = %+v, %v; want Issued %q", e, ok, want)
	}
	e, ok = p.AppliedEvent(ctx, row, []host.Difference{{Field: "certificate renewal", Due: true}})
	if !ok || e.Reason != domain.ReasonRenewed || !strings.HasPrefix(e.Message, "renewed by CN=Test CA R1") {
		t.Errorf("AppliedEvent of a renewal = %+v, %v", e, ok)
	}
	var _ controllers.EventNamer = p
}

// writeIssued writes a certificate for name issued by a test CA (not
// self-signed) and its key into dir, as the ACME part lands them.
func writeIssued(t *testing.T, dir, name string) time.Time {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA R1", Organization: []string{"WCP360 Tests"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	notAfter := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(filepath.Join(dir, "fullchain.pem"), chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatal(err)
	}
	return notAfter
}
