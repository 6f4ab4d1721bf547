package wcpd

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/sandbox"
)

// The HTTPS API: a self-signed certificate generated at the first start,
// HTTP/2, and nothing but the public routes without a token.
func TestHTTPSAPIWantsATokenOverTCP(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "api:\n", "api:\n  listen: "+addr+"\n", 1)
	})

	const cert, key = "/etc/wcp360/tls/api.crt", "/etc/wcp360/tls/api.key"
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key %s: %v, want mode 0600", key, err)
	}
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", cert)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}
	type answer struct {
		StatusCode    int
		Status, Proto string
		Header        http.Header
	}
	get := func(path string) (answer, string) {
		t.Helper()
		resp, err := c.Get(fmt.Sprintf("https://%s%s", addr, path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Status, resp.Proto, resp.Header}, string(b)
	}
	if resp, body := get("/healthz"); resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Errorf("GET /healthz over HTTPS: %s %s %s, want 200 over HTTP/2", resp.Proto, resp.Status, body)
	}
	for _, path := range []string{"/api/v1/tenants", "/metrics", "/debug/pprof/"} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s without a token: %s %s, want 401 with WWW-Authenticate: Bearer", path, resp.Status, body)
		}
	}
	// Root on the local socket needs no token.
	if code, b := d.do("GET", "/api/v1/tenants", nil); code != http.StatusOK {
		t.Errorf("root on the socket: %d %s", code, b)
	}
}
