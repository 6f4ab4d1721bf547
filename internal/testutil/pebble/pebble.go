// Package pebble runs Debian's pebble (/usr/bin/pebble), the ACME test
// server, for tests in a sandbox: a CA and a 127.0.0.1/localhost server
// certificate made at test time for its HTTPS, PEBBLE_VA_NOSLEEP=1, no
// rejected nonces or reused authorizations (every test validates through
// nginx), and HTTP-01 validated on port 80 of the names' addresses (map
// them to 127.0.0.1 with sandbox.Options.Hosts).
package pebble

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// Where pebble listens, and the EAB key it knows.
const (
	Bin          = "/usr/bin/pebble"
	DirectoryURL = "https://127.0.0.1:14000/dir"
	MgmtURL      = "https://127.0.0.1:15000"
	EABKeyID     = "kid-1"
	EABHMACKey   = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
)

// Options configure a pebble.
type Options struct {
	// EAB makes pebble require external account binding (EABKeyID).
	EAB bool
	// Validity is the lifetime of the certificates pebble issues, in
	// whole seconds (pebble's certificateValidityPeriod); 0: pebble's
	// default (5 years).
	Validity time.Duration
	// DNSServer is the DNS server (host:port) pebble resolves every name
	// with, for HTTP-01 and DNS-01 alike (ChallTestSrv.DNSAddr); "": the
	// system's resolver.
	DNSServer string
}

// Pebble is a running pebble.
type Pebble struct {
	// Client trusts pebble's HTTPS certificate, and adds "Retry-After: 1"
	// to pebble's answers that have none (see RetryAfterHint).
	Client *http.Client
	// CAPEM is the CA of pebble's HTTPS certificate (not of the
	// certificates pebble issues: see Roots).
	CAPEM     []byte
	conf      string
	dnsServer string
	stop      func()
	rootPool  *x509.CertPool
	rootPEM   []byte
}

// Start starts pebble on 127.0.0.1:14000 (ACME) and :15000 (management),
// validating HTTP-01 on port 80; t.Cleanup stops it.
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		sandbox.Unavailable(t, "pebble is not installed (apt-get install pebble; hack/install-deps.sh)")
	}
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := serverCert(t)
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
		"certificate": filepath.Join(dir, "cert.pem"), "privateKey": filepath.Join(dir, "key.pem"),
		"httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "",
		"externalAccountBindingRequired": opts.EAB,
		"externalAccountMACKeys":         map[string]string{EABKeyID: EABHMACKey},
		"certificateValidityPeriod":      int64(opts.Validity / time.Second),
	}}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pebble{conf: filepath.Join(dir, "pebble.json"), CAPEM: caPEM, dnsServer: opts.DNSServer}
	if err := os.WriteFile(p.conf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p.Client = &http.Client{Timeout: time.Minute, Transport: RetryAfterHint{&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *Pebble) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	args := []string{"-config", p.conf}
	if p.dnsServer != "" {
		args = append(args, "-dnsserver", p.dnsServer)
	}
	proc, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: Bin, Args: args,
		// No random 0-15 s sleep before validating; no rejected nonces or
		// reused authorizations, so every test validates through nginx.
		Env: []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}}, out)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p.stop = func() {
		cancel()
		_ = proc.Wait()
		if t.Failed() {
			t.Logf("pebble's output:\n%s", out.String())
		}
	}
	p.rootPool, p.rootPEM = nil, nil
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := p.Client.Get(DirectoryURL)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops pebble and starts a new one: a CA that forgot every
// account and has a new root.
func (p *Pebble) Restart(t testing.TB) {
	t.Helper()
	p.stop()
	p.start(t)
	t.Cleanup(p.stop)
}

// RootPEM is the root of the certificates pebble issues, from its
// management endpoint.
func (p *Pebble) RootPEM(t testing.TB) []byte {
	t.Helper()
	if p.rootPEM != nil {
		return p.rootPEM
	}
	resp, err := p.Client.Get(MgmtURL + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble's root: %s, %v", resp.Status, err)
	}
	p.rootPEM = b
	return b
}

// Roots is a pool of RootPEM.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	if p.rootPool != nil {
		return p.rootPool
	}
	pool := x509.NewCertPool()
	if b := p.RootPEM(t); !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble's root: no certificate in %q", b)
	}
	p.rootPool = pool
	return pool
}

// NewAccountPath is the path of the directory's newAccount URL.
func (p *Pebble) NewAccountPath(t testing.TB) string {
	t.Helper()
	resp, err := p.Client.Get(DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var dir struct {
		NewAccount string `json:"newAccount"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, dir.NewAccount, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req.URL.Path
}

// serverCert makes a CA and, signed by it, a certificate for localhost
// and 127.0.0.1 (pebble's HTTPS).
func serverCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wcp360 test CA for pebble"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// RetryAfterHint adds "Retry-After: 1" to the CA's responses that have
// none. Pebble 2.4 answers a challenge's POST "pending" without one (its
// validation, with PEBBLE_VA_NOSLEEP, finishes a millisecond later), and
// lego then polls after 5 s (2.5-7.5 s with its jitter); with the hint it
// polls after about a second. WCP_ACME_TEST_NO_HINT=1 turns it off, to
// measure lego's own pace.
type RetryAfterHint struct{ Base http.RoundTripper }

// RoundTrip sends r through Base and adds the hint.
func (h RetryAfterHint) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.Base.RoundTrip(r)
	if err == nil && resp.Header.Get("Retry-After") == "" && os.Getenv("WCP_ACME_TEST_NO_HINT") != "1" {
		resp.Header.Set("Retry-After", "1")
	}
	return resp, err
}
