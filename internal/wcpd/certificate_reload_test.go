package wcpd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/selfsigned"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// A provided certificate replaced in the spec is served at once: the site
// file names the certificate (its fingerprint), so the new one changes the
// site and nginx reloads — the same master, no restart. Applying the same
// certificate again changes nothing and reloads nothing.
func TestProvidedCertificateChangeIsServed(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	if code, body := d.do("PUT", "/api/v1/tenants/certs", tenant("certs")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	const name = "provided.acme.test"
	apply := func(certPEM, keyPEM []byte, wantCode int) {
		t.Helper()
		if code, body := d.do("PUT", "/api/v1/domains/"+name, domainManifest(name, "certs", map[string]any{
			"php": map[string]any{"enabled": false},
			"tls": map[string]any{"mode": "provided", "provided": map[string]any{
				"certificatePEM": string(certPEM), "privateKeyPEM": string(keyPEM)}}})); code != wantCode {
			t.Fatalf("apply domain: %d %s, want %d", code, body, wantCode)
		}
		d.waitReady("domains", name)
	}
	served := func() *x509.Certificate {
		t.Helper()
		//nolint:gosec // the test's own certificates, compared byte for byte
		return handshake(t, name, &tls.Config{ServerName: name, InsecureSkipVerify: true}).PeerCertificates[0]
	}

	certA, keyA := newProvided(t, name)
	apply(certA, keyA, http.StatusCreated)
	if got := served(); !sameCert(got, certA) {
		t.Fatalf("serves %s (serial %x), want certificate A", got.Subject, got.SerialNumber)
	}
	master := nginxMaster(t)
	reloads := d.metric("wcp360_nginx_reloads_total")

	certB, keyB := newProvided(t, name)
	apply(certB, keyB, http.StatusOK)
	if got := served(); !sameCert(got, certB) {
		t.Fatalf("after the change serves serial %x, want certificate B's", got.SerialNumber)
	}
	if got := d.metric("wcp360_nginx_reloads_total"); got <= reloads {
		t.Errorf("nginx reloads %d → %d: the new certificate was served without a reload?", reloads, got)
	}
	if got := nginxMaster(t); got != master {
		t.Errorf("nginx master %d → %d: restarted, not reloaded", master, got)
	}

	// The same certificate again: nothing to do, no reload.
	reloads = d.metric("wcp360_nginx_reloads_total")
	apply(certB, keyB, http.StatusOK)
	if got := d.metric("wcp360_nginx_reloads_total"); got != reloads {
		t.Errorf("applying the same certificate reloaded nginx (%d → %d)", reloads, got)
	}
}

// newProvided is a self-signed certificate and key for name, as a user
// would bring one.
func newProvided(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.New(time.Now(), 24*time.Hour, name, name)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// sameCert reports whether c is the first certificate of chainPEM.
func sameCert(c *x509.Certificate, chainPEM []byte) bool {
	b, _ := pem.Decode(chainPEM)
	return b != nil && bytes.Equal(c.Raw, b.Bytes)
}

// nginxMaster is the pid of the sandbox's nginx master.
func nginxMaster(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.HasPrefix(string(b), "nginx: master process") {
			return pid
		}
	}
	t.Fatal("no nginx master in the sandbox")
	return 0
}
