package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

const nginxHTTPPort = "80"

var testHosts = map[string]string{"a.acme.test": "127.0.0.1", "b.acme.test": "127.0.0.1", "c.acme.test": "127.0.0.1"}

func TestDefaultChallengeDirIsNginxs(t *testing.T) {
	if DefaultChallengeDir != nginx.DefaultACMEDir {
		t.Fatalf("DefaultChallengeDir %s, nginx serves %s", DefaultChallengeDir, nginx.DefaultACMEDir)
	}
}

// TestObtainThroughNginx: pebble validates HTTP-01 through a real nginx
// serving the default challenge directory; the chain verifies against
// pebble's root and names both names; the account is registered once and
// reused by a second Client over the same state directory.
func TestObtainThroughNginx(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{Hosts: testHosts}) {
		return
	}
	p := pebble.Start(t, pebble.Options{})
	startTestNginx(t, true)
	counter := &countingTransport{base: p.Client.Transport, path: p.NewAccountPath(t)}
	hc := &http.Client{Transport: counter, Timeout: time.Minute}
	c := newTestClient(t, hc, nil)

	names := []string{"a.acme.test", "b.acme.test"}
	start := time.Now()
	cert, err := c.Obtain(t.Context(), names)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first issuance (account registration included): %s", took)
	checkCert(t, p, cert, names)
	if n := counter.count.Load(); n != 1 {
		t.Errorf("%d newAccount requests, want 1", n)
	}
	checkMode(t, DefaultStateDir, 0o755)
	acctDir := filepath.Dir(c.store.keyPath())
	checkMode(t, acctDir, 0o700)
	checkMode(t, c.store.keyPath(), 0o600)
	checkMode(t, c.store.jsonPath(), 0o600)
	checkEmpty(t, DefaultChallengeDir)
	url1, err := c.AccountURL(t.Context())
	if err != nil || url1 == "" {
		t.Fatalf("AccountURL: %q, %v", url1, err)
	}
	key1, _ := os.ReadFile(c.store.keyPath())

	// The same Client again, then a new Client (wcpd restarted): no new
	// registration, the same account.
	start = time.Now()
	if cert, err = c.Obtain(t.Context(), names[:1]); err != nil {
		t.Fatal(err)
	}
	t.Logf("second issuance (same client): %s", time.Since(start))
	checkCert(t, p, cert, names[:1])
	c2 := newTestClient(t, hc, nil)
	start = time.Now()
	if cert, err = c2.Obtain(t.Context(), []string{"c.acme.test"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("third issuance (new client, stored account): %s", time.Since(start))
	checkCert(t, p, cert, []string{"c.acme.test"})
	if n := counter.count.Load(); n != 1 {
		t.Errorf("%d newAccount requests after reuse, want 1", n)
	}
	if url2, _ := c2.AccountURL(t.Context()); url2 != url1 {
		t.Errorf("account URL %s, then %s", url1, url2)
	}
	if key2, _ := os.ReadFile(c.store.keyPath()); !bytes.Equal(key1, key2) {
		t.Error("the account key changed")
	}

	// Written out: root 0600, key first, and a pair tls accepts.
	dir := "/etc/ssl/wcp360-test"
	if err := WriteFiles(filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"), cert); err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(dir, "fullchain.pem"), 0o600)
	checkMode(t, filepath.Join(dir, "privkey.pem"), 0o600)
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")); err != nil {
		t.Error(err)
	}

	// The CA forgets the account (pebble restarts): registered again, once.
	p.Restart(t)
	if cert, err = c2.Obtain(t.Context(), names[:1]); err != nil {
		t.Fatal(err)
	}
	checkCert(t, p, cert, names[:1])
	if n := counter.count.Load(); n != 2 {
		t.Errorf("%d newAccount requests after the CA forgot the account, want 2", n)
	}
	if url3, _ := c2.AccountURL(t.Context()); url3 == url1 {
		t.Errorf("account URL unchanged after re-registration: %s", url3)
	}

	// Pebble 2.4 has no renewalInfo endpoint.
	if _, err := c2.RenewalInfo(t.Context(), cert.Leaf); !errors.Is(err, ErrNoARI) {
		t.Errorf("RenewalInfo: %v, want ErrNoARI", err)
	}
}

// TestObtainFailsWhenChallengeNotServed: nginx does not serve the
// challenge directory, pebble's validation gets a 404 and the error
// carries pebble's problem; the token files are removed.
func TestObtainFailsWhenChallengeNotServed(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{Hosts: testHosts}) {
		return
	}
	p := pebble.Start(t, pebble.Options{})
	startTestNginx(t, false)
	c := newTestClient(t, p.Client, nil)
	start := time.Now()
	_, err := c.Obtain(t.Context(), []string{"a.acme.test"})
	t.Logf("failed issuance took %s: %v", time.Since(start), err)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Obtain: %v (%T), want *Error", err, err)
	}
	if e.Op != "obtain" || e.Problem == nil || e.Problem.Type != ProblemUnauthorized || !strings.Contains(e.Problem.Detail, "404") {
		t.Errorf("error %+v, problem %+v: want pebble's unauthorized problem about a 404", e, e.Problem)
	}
	checkEmpty(t, DefaultChallengeDir)
}

// TestExternalAccountBinding: a CA that requires EAB refuses a plain
// registration with its problem, and accepts a bound one.
func TestExternalAccountBinding(t *testing.T) {
	if sandbox.RunWith(t, sandbox.Options{Hosts: testHosts}) {
		return
	}
	p := pebble.Start(t, pebble.Options{EAB: true})
	startTestNginx(t, true)
	_, err := newTestClient(t, p.Client, nil).Obtain(t.Context(), []string{"a.acme.test"})
	var e *Error
	if !errors.As(err, &e) || e.Op != "register" || e.Problem == nil || e.Problem.Type != ProblemExternalAccount {
		t.Fatalf("Obtain without EAB: %v, want a register error with %s", err, ProblemExternalAccount)
	}
	cert, err := newTestClient(t, p.Client, &EAB{KeyID: pebble.EABKeyID, HMACKey: pebble.EABHMACKey}).Obtain(t.Context(), []string{"a.acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, p, cert, []string{"a.acme.test"})
}

func newTestClient(t *testing.T, hc *http.Client, eab *EAB) *Client {
	t.Helper()
	c, err := New(Options{DirectoryURL: pebble.DirectoryURL, Email: "admin@acme.test", EAB: eab, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkCert(t *testing.T, p *pebble.Pebble, cert *Certificate, names []string) {
	t.Helper()
	certs, err := parseChain(cert.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !certs[0].Equal(cert.Leaf) {
		t.Error("Leaf is not the chain's first certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: p.Roots(t), Intermediates: inter}); err != nil {
		t.Errorf("chain does not verify against pebble's root: %v", err)
	}
	if got := slices.Sorted(slices.Values(cert.Leaf.DNSNames)); !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Errorf("names %v, want %v", got, names)
	}
	if _, err := tls.X509KeyPair(cert.ChainPEM, cert.KeyPEM); err != nil {
		t.Errorf("key does not match: %v", err)
	}
}

func parseChain(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		return nil, fmt.Errorf("chain of %d certificates, want leaf and issuer", len(certs))
	}
	return certs, nil
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

func checkEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
	}
	if len(entries) != 0 {
		t.Errorf("%s holds %d files, want none", dir, len(entries))
	}
}

// countingTransport counts POSTs to one path (the CA's newAccount).
type countingTransport struct {
	base  http.RoundTripper
	path  string
	count atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == c.path {
		c.count.Add(1)
	}
	return c.base.RoundTrip(r)
}

// startTestNginx runs nginx on 127.0.0.1:80 with one server that serves
// /.well-known/acme-challenge/ from DefaultChallengeDir the way
// internal/host/nginx's sites do (or, without acme, does not).
func startTestNginx(t *testing.T, acme bool) {
	t.Helper()
	bin, err := cmdrun.LookPath("nginx", "/usr/sbin")
	if err != nil {
		sandbox.Unavailable(t, "nginx is not installed")
	}
	if err := os.MkdirAll(DefaultChallengeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	location := `location ^~ /.well-known/acme-challenge/ {
            alias "` + DefaultChallengeDir + `/";
            default_type text/plain;
        }`
	if !acme {
		location = ""
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:%[2]s;
        server_name _;
        %[3]s
        location / { return 404; }
    }
}
`, dir, nginxHTTPPort, location)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	proc, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: bin, Args: []string{"-e", dir + "/error.log", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")}}, out)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// TERM, not the context's KILL: the master stops its workers,
		// which hold the output pipe.
		_ = proc.Signal(syscall.SIGTERM)
		_ = proc.Wait()
		cancel()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+nginxHTTPPort); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/error.log")
			t.Fatalf("nginx did not listen: %s%s", out.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
