package domain_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/domain"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// world is a real store holding one converged tenant whose home is a temp dir.
type world struct {
	t    *testing.T
	st   *store.Store
	home string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, st: st, home: t.TempDir()}
	res, err := st.Apply(ctx, store.ApplyRequest{Kind: v1alpha1.KindTenant, Name: "acme", Spec: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(v1alpha1.Status{Account: &v1alpha1.AccountStatus{User: "acme", UID: 20000, GID: 20000, Home: w.home, Shell: "/usr/sbin/nologin"}})
	if _, err := st.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: res.Resource.UID, Status: status, ObservedGeneration: 1}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) domain(name string, spec v1alpha1.DomainSpec) store.Resource {
	w.t.Helper()
	spec.Tenant = "acme"
	b, _ := json.Marshal(spec)
	res, err := w.st.Apply(w.t.Context(), store.ApplyRequest{Kind: v1alpha1.KindDomain, Name: name, Tenant: "acme",
		Hostnames: append([]string{name}, spec.Aliases...), Spec: b})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Resource
}

func TestDocRootCreatedAndSymlinkRefused(t *testing.T) {
	w := newWorld(t)
	p := &domain.DocRoot{Store: w.st}
	ctx := context.Background()
	row := w.domain("acme.test", v1alpha1.DomainSpec{})
	ds, err := p.Observe(ctx, row)
	if err != nil || len(ds) != 1 || ds[0].Field != "documentRoot" {
		t.Fatalf("observe before: %v %v", ds, err)
	}
	if _, err := p.Apply(ctx, row, ds); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(w.home, "domains", "acme.test", "public")
	fi, err := os.Stat(pub)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Fatalf("document root: %v %v", fi, err)
	}
	if ds, err := p.Observe(ctx, row); err != nil || len(ds) != 0 {
		t.Fatalf("observe after: %v %v", ds, err)
	}
	// The tenant owns domains/: a symlink there is refused, not followed.
	victim := t.TempDir()
	row2 := w.domain("evil.test", v1alpha1.DomainSpec{})
	if err := os.Symlink(victim, filepath.Join(w.home, "domains", "evil.test")); err != nil {
		t.Fatal(err)
	}
	ds, err = p.Observe(ctx, row2)
	if err != nil || len(ds) == 0 {
		t.Fatalf("observe through a symlink: %v %v", ds, err)
	}
	if _, err := p.Apply(ctx, row2, ds); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("apply through a symlink: %v", err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("created %v through the symlink", ents)
	}
}

func TestTLSSelfSignedAndProvided(t *testing.T) {
	w := newWorld(t)
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	p := &domain.TLS{Store: w.st, Dir: t.TempDir(), Clock: func() time.Time { return now }}
	ctx := context.Background()
	row := w.domain("acme.test", v1alpha1.DomainSpec{Aliases: []string{"www.acme.test"}})
	ds, _ := p.Observe(ctx, row)
	if len(ds) != 1 {
		t.Fatalf("before: %v", ds)
	}
	if _, err := p.Apply(ctx, row, ds); err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(p.Dir, "acme.test")
	pair, err := tls.LoadX509KeyPair(filepath.Join(files, "fullchain.pem"), filepath.Join(files, "privkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(files, "privkey.pem")); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode())
	}
	_ = pair
	if ds, err := p.Observe(ctx, row); err != nil || len(ds) != 0 {
		t.Fatalf("after: %v %v", ds, err)
	}
	// A new alias needs a new certificate; so does one close to expiry.
	row = w.domain("acme.test", v1alpha1.DomainSpec{Aliases: []string{"www.acme.test", "shop.acme.test"}})
	if ds, _ := p.Observe(ctx, row); len(ds) != 1 || ds[0].Field != "certificate names" {
		t.Errorf("new alias: %v", ds)
	}
	if _, err := p.Apply(ctx, row, nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(70 * 24 * time.Hour)
	if ds, _ := p.Observe(ctx, row); len(ds) != 1 || ds[0].Field != "certificate expiry" {
		t.Errorf("near expiry: %v", ds)
	}

	// Provided: a certificate that does not cover the names is refused.
	other, key := selfSignedPEM(t, "other.test")
	row = w.domain("acme.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSProvided,
		Provided: &v1alpha1.ProvidedCertificate{CertificatePEM: other, PrivateKeyPEM: key}}})
	if _, err := p.Apply(ctx, row, nil); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "do not cover") {
		t.Errorf("wrong names: %v", err)
	}
	_, otherKey := selfSignedPEM(t, "acme.test")
	good, _ := selfSignedPEM(t, "acme.test")
	row = w.domain("acme.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSProvided,
		Provided: &v1alpha1.ProvidedCertificate{CertificatePEM: good, PrivateKeyPEM: otherKey}}})
	if _, err := p.Apply(ctx, row, nil); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "certificate and key") {
		t.Errorf("mismatched key: %v", err)
	}
	// An expired one is refused; the same one before it expired is served.
	good, goodKey := selfSignedPEM(t, "acme.test")
	row = w.domain("acme.test", v1alpha1.DomainSpec{TLS: v1alpha1.DomainTLS{Mode: v1alpha1.TLSProvided,
		Provided: &v1alpha1.ProvidedCertificate{CertificatePEM: good, PrivateKeyPEM: goodKey}}})
	now = time.Now()
	if _, err := p.Apply(ctx, row, nil); err != nil {
		t.Errorf("a good provided certificate: %v", err)
	}
	now = now.Add(2 * 365 * 24 * time.Hour)
	if _, err := p.Apply(ctx, row, nil); !reconcile.IsTerminal(err) || !strings.Contains(err.Error(), "expired on") {
		t.Errorf("expired: %v", err)
	}
}

// selfSignedPEM makes a certificate for name through the TLS part itself,
// in a scratch world.
func selfSignedPEM(t *testing.T, name string) (cert, key string) {
	t.Helper()
	w := newWorld(t)
	p := &domain.TLS{Store: w.st, Dir: t.TempDir(), Clock: time.Now}
	row := w.domain(name, v1alpha1.DomainSpec{})
	if _, err := p.Apply(context.Background(), row, nil); err != nil {
		t.Fatal(err)
	}
	c, _ := os.ReadFile(filepath.Join(p.Dir, name, "fullchain.pem"))
	k, _ := os.ReadFile(filepath.Join(p.Dir, name, "privkey.pem"))
	return string(c), string(k)
}
