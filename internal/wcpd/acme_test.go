package wcpd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// A domain with tls mode acme gets its certificate from pebble over
// HTTP-01 through the nginx wcpd manages: HTTPS then serves the issued
// chain (verified against pebble's root) with HTTP/2, HTTP redirects to
// HTTPS, and the status describes the certificate. A domain whose
// challenge pebble cannot reach keeps its self-signed placeholder, says
// why in its TLS condition and status, and is not redirected.
func TestDomainACMEThroughPebble(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{Hosts: map[string]string{
		"shop.acme.test": "127.0.0.1", "www.shop.acme.test": "127.0.0.1",
	}}) {
		return
	}
	p := pebble.Start(t, pebble.Options{})
	bundle := filepath.Join(t.TempDir(), "pebble-https-ca.pem")
	if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "acme:\n  directory: \"\"\n",
			"acme:\n  directory: "+pebble.DirectoryURL+"\n  email: admin@acme.test\n  caBundle: "+bundle+"\n", 1)
	})
	if code, body := d.do("PUT", "/api/v1/tenants/shop", tenant("shop")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	start := time.Now()
	if code, body := d.do("PUT", "/api/v1/domains/shop.acme.test", domainManifest("shop.acme.test", "shop", map[string]any{
		"aliases": []string{"www.shop.acme.test"}, "php": map[string]any{"enabled": false},
		"tls": map[string]any{"mode": "acme"}})); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	st := d.waitReady("domains", "shop.acme.test")
	t.Logf("apply → Ready with the issued certificate: %s", time.Since(start).Round(time.Millisecond))

	names := []string{"shop.acme.test", "www.shop.acme.test"}
	ts := st.TLS
	switch {
	case ts == nil:
		t.Fatalf("no TLS status: %+v", st)
	case !ts.Trusted || ts.Mode != v1alpha1.TLSACME || !strings.Contains(ts.Issuer, "Pebble"),
		!slices.Equal(slices.Sorted(slices.Values(ts.Names)), names),
		ts.NotAfter == nil || ts.RenewAt == nil || !ts.RenewAt.Before(*ts.NotAfter) || !ts.RenewAt.After(time.Now()),
		ts.LastError != "":
		b, _ := json.Marshal(ts)
		t.Errorf("TLS status %s", b)
	}
	if c := condition(st, "TLS"); c == nil || c.Status != v1alpha1.ConditionTrue || c.Reason != "Issued" {
		t.Errorf("TLS condition %+v", c)
	}
	for _, f := range []string{"fullchain.pem", "privkey.pem"} {
		if fi, err := os.Stat(filepath.Join(d.dir, "certs", "shop.acme.test", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", f, fi, err)
		}
	}

	// HTTPS with the issued chain and HTTP/2, for both names.
	for _, n := range names {
		state := handshake(t, n, &tls.Config{ServerName: n, RootCAs: p.Roots(t), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
		if state.NegotiatedProtocol != "h2" {
			t.Errorf("%s: ALPN %q, want h2", n, state.NegotiatedProtocol)
		}
	}
	// HTTP redirects to HTTPS.
	if code, loc := getNoRedirect(t, "shop.acme.test", "/x?y=1"); code != http.StatusMovedPermanently || loc != "https://shop.acme.test/x?y=1" {
		t.Errorf("HTTP: %d to %q, want 301 to https://shop.acme.test/x?y=1", code, loc)
	}

	// A name pebble cannot resolve: the order fails, the placeholder serves.
	if code, body := d.do("PUT", "/api/v1/domains/lost.acme.test", domainManifest("lost.acme.test", "shop", map[string]any{
		"php": map[string]any{"enabled": false}})); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	var lost v1alpha1.Status
	eventually(t, d, "lost.acme.test's TLS condition names the CA's problem", func() (bool, string) {
		_, b := d.do("GET", "/api/v1/domains/lost.acme.test", nil)
		var obj struct {
			Status v1alpha1.Status `json:"status"`
		}
		_ = json.Unmarshal(b, &obj)
		lost = obj.Status
		c := condition(lost, "TLS")
		return c != nil && c.Status == v1alpha1.ConditionFalse && strings.Contains(c.Message, "acme: obtain lost.acme.test") &&
			lost.TLS != nil && lost.TLS.LastError != "", string(b)
	})
	t.Logf("TLS condition of the failed order: %s", condition(lost, "TLS").Message)
	if lost.TLS.Trusted || lost.TLS.LastErrorTime == nil {
		t.Errorf("TLS status of the failed order: %+v", lost.TLS)
	}
	state := handshake(t, "lost.acme.test", &tls.Config{ServerName: "lost.acme.test", InsecureSkipVerify: true}) //nolint:gosec // the placeholder is self-signed
	if leaf := state.PeerCertificates[0]; leaf.Issuer.String() != leaf.Subject.String() || !slices.Contains(leaf.DNSNames, "lost.acme.test") {
		t.Errorf("lost.acme.test serves %s issued by %s, want its self-signed placeholder", leaf.Subject, leaf.Issuer)
	}
	if code, _ := getNoRedirect(t, "lost.acme.test", "/"); code == http.StatusMovedPermanently {
		t.Error("lost.acme.test redirects HTTP to HTTPS without a trusted certificate")
	}
}

// handshake connects to the sandbox's nginx on 127.0.0.1:443.
func handshake(t *testing.T, name string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", "127.0.0.1:443")
	if err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
			c := ve.UnverifiedCertificates[0]
			t.Fatalf("%s: %v (served %v issued by %s)", name, err, c.DNSNames, c.Issuer)
		}
		t.Fatalf("%s: %v", name, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState()
}

// getNoRedirect fetches http://127.0.0.1path with the Host header host and
// returns the status and Location.
func getNoRedirect(t *testing.T, host, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:80")
		}}}
	resp, err := c.Get("http://" + host + path)
	if err != nil {
		t.Fatalf("GET http://%s%s: %v", host, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}
