package wcpd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// httpsAPI is wcpd's HTTPS API as a client sees it.
type httpsAPI struct {
	t    *testing.T
	addr string
	c    *http.Client
}

// startHTTPS starts an initialised daemon with the HTTPS API on a free
// loopback port and returns both.
func startHTTPS(t *testing.T) (*daemonUnderTest, *httpsAPI) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	d := startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "api:\n", "api:\n  listen: "+addr+"\n", 1)
	})
	pemBytes, err := os.ReadFile("/etc/wcp360/tls/api.crt")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	return d, &httpsAPI{t: t, addr: addr, c: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}}}}
}

// call sends one request with the bearer token ("" for none).
func (h *httpsAPI) call(bearer, method, path string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+h.addr+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mustToken creates an API token as root on the socket and returns its secret.
func mustToken(d *daemonUnderTest, principal, name string, scopes ...string) string {
	d.t.Helper()
	code, b := d.do("POST", "/api/v1/tokens", api.APITokenRequest{Name: name, Principal: principal, Scopes: scopes})
	if code != http.StatusCreated {
		d.t.Fatalf("token %s for %s: %d %s", name, principal, code, b)
	}
	var out api.APITokenCreated
	if err := json.Unmarshal(b, &out); err != nil || !strings.HasPrefix(out.Token, "wcp_") {
		d.t.Fatalf("token %s: %s (%v)", name, b, err)
	}
	return out.Token
}

// The authorisation matrix: every route of the API × {anonymous, tenant
// A, tenant B, admin, an API token with a narrow scope} → the expected
// answer, over HTTPS with real tokens. Tenant A never sees or changes
// tenant B's resources, through lists, list filters and events included.
func TestAuthorizationMatrix(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d, h := startHTTPS(t)
	for _, tn := range []string{"a", "b"} {
		if code, b := d.do("PUT", "/api/v1/tenants/"+tn, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant",
			"metadata": map[string]any{"name": tn}, "spec": map[string]any{"limits": map[string]any{"memoryMax": "1Gi"}}}); code != http.StatusCreated {
			t.Fatalf("tenant %s: %d %s", tn, code, b)
		}
		if code, b := d.do("PUT", "/api/v1/domains/"+tn+".test", domainManifest(tn+".test", tn, nil)); code != http.StatusCreated {
			t.Fatalf("domain %s.test: %d %s", tn, code, b)
		}
		if code, b := d.do("PUT", "/api/v1/principals/user-"+tn, api.PrincipalSpec{Role: "tenant", Tenants: []string{tn}}); code != http.StatusCreated {
			t.Fatalf("principal user-%s: %d %s", tn, code, b)
		}
	}
	// A second admin, whose automation token may only read domains.
	if code, b := d.do("PUT", "/api/v1/principals/ops", api.PrincipalSpec{Role: "admin"}); code != http.StatusCreated {
		t.Fatalf("principal ops: %d %s", code, b)
	}
	d.waitReady("domains", "a.test")
	// Root's password, for the admin's login over HTTPS.
	if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "/usr/sbin/chpasswd", Stdin: []byte("root:matrix-root-pw\n")}); err != nil {
		t.Fatal(err)
	}
	code, b := h.call("", "POST", "/api/v1/auth/login", api.LoginRequest{Username: "root", Password: "matrix-root-pw"})
	if code != http.StatusOK {
		t.Fatalf("root login over HTTPS: %d %s", code, b)
	}
	var toks api.Tokens
	if err := json.Unmarshal(b, &toks); err != nil || toks.TokenType != "Bearer" || toks.Principal.Role != "admin" {
		t.Fatalf("login answer %s (%v)", b, err)
	}
	who := map[string]string{
		"anonymous": "",
		"tenantA":   mustToken(d, "user-a", "automation", "write"),
		"tenantB":   mustToken(d, "user-b", "automation", "write"),
		"admin":     toks.AccessToken,
		"narrow":    mustToken(d, "ops", "read-domains", "domains:read"),
	}
	order := []string{"anonymous", "tenantA", "tenantB", "admin", "narrow"}

	domA := domainManifest("a.test", "a", nil)
	type row struct {
		route, method, path string
		body                any
		want                [5]int // anonymous, tenantA, tenantB, admin, narrow
	}
	const (
		ok, created, accepted, nocontent = http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNoContent
		unauth, forbidden, notfound      = http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound
	)
	rows := []row{
		{"GET /healthz", "GET", "/healthz", nil, [5]int{ok, ok, ok, ok, ok}},
		{"GET /openapi.json", "GET", "/openapi.json", nil, [5]int{ok, ok, ok, ok, ok}},
		{"GET /api/v1/openapi.json", "GET", "/api/v1/openapi.json", nil, [5]int{ok, ok, ok, ok, ok}},
		{"GET /metrics", "GET", "/metrics", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"GET /debug/pprof/", "GET", "/debug/pprof/", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"GET /debug/pprof/profile", "GET", "/debug/pprof/profile?seconds=1", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"GET /debug/pprof/trace", "GET", "/debug/pprof/trace?seconds=1", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"GET /api/v1/{plural}", "GET", "/api/v1/domains", nil, [5]int{unauth, ok, ok, ok, ok}},
		{"GET /api/v1/{plural}", "GET", "/api/v1/tenants", nil, [5]int{unauth, ok, ok, ok, forbidden}},
		{"GET /api/v1/{plural}/{name}", "GET", "/api/v1/domains/a.test", nil, [5]int{unauth, ok, notfound, ok, ok}},
		{"GET /api/v1/{plural}/{name}", "GET", "/api/v1/tenants/a", nil, [5]int{unauth, ok, notfound, ok, forbidden}},
		{"PUT /api/v1/{plural}/{name}", "PUT", "/api/v1/domains/a.test", domA, [5]int{unauth, ok, notfound, ok, forbidden}},
		// Created by tenant B; the admin's apply after it changes nothing.
		{"PUT /api/v1/{plural}/{name}", "PUT", "/api/v1/domains/new.test", domainManifest("new.test", "b", nil), [5]int{unauth, forbidden, created, ok, forbidden}},
		// A tenant principal may not write any Tenant: refused before the object is looked at.
		{"PUT /api/v1/{plural}/{name}", "PUT", "/api/v1/tenants/a", tenant("a"), [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"DELETE /api/v1/{plural}/{name}", "DELETE", "/api/v1/domains/a.test?dryRun=true", nil, [5]int{unauth, accepted, notfound, accepted, forbidden}},
		{"GET /api/v1/{plural}/{name}/status", "GET", "/api/v1/domains/a.test/status", nil, [5]int{unauth, ok, notfound, ok, ok}},
		{"GET /api/v1/{plural}/{name}/events", "GET", "/api/v1/domains/a.test/events", nil, [5]int{unauth, ok, notfound, ok, ok}},
		{"GET /api/v1/{plural}/{name}/revisions", "GET", "/api/v1/domains/a.test/revisions", nil, [5]int{unauth, ok, notfound, ok, ok}},
		{"POST /api/v1/{plural}/{name}/rollback", "POST", "/api/v1/domains/a.test/rollback?dryRun=true", map[string]any{"revision": 1}, [5]int{unauth, ok, notfound, ok, forbidden}},
		{"GET /api/v1/{plural}/{name}/drift", "GET", "/api/v1/domains/a.test/drift", nil, [5]int{unauth, ok, notfound, ok, ok}},
		{"POST /api/v1/{plural}/{name}/reconcile", "POST", "/api/v1/domains/a.test/reconcile", nil, [5]int{unauth, accepted, notfound, accepted, forbidden}},
		{"GET /api/v1/bootstrap", "GET", "/api/v1/bootstrap", nil, [5]int{ok, ok, ok, ok, ok}},
		{"POST /api/v1/bootstrap", "POST", "/api/v1/bootstrap", map[string]any{}, [5]int{http.StatusConflict, http.StatusConflict, http.StatusConflict, http.StatusConflict, http.StatusConflict}},
		{"POST /api/v1/auth/login", "POST", "/api/v1/auth/login", api.LoginRequest{Username: "root", Password: "wrong"}, [5]int{unauth, unauth, unauth, unauth, unauth}},
		{"POST /api/v1/auth/refresh", "POST", "/api/v1/auth/refresh", api.RefreshRequest{RefreshToken: "wcpr_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, [5]int{unauth, unauth, unauth, unauth, unauth}},
		{"POST /api/v1/auth/logout", "POST", "/api/v1/auth/logout", api.RefreshRequest{RefreshToken: "garbage"}, [5]int{unauth, unauth, unauth, unauth, unauth}},
		{"GET /api/v1/whoami", "GET", "/api/v1/whoami", nil, [5]int{unauth, ok, ok, ok, ok}},
		{"GET /api/v1/tokens", "GET", "/api/v1/tokens", nil, [5]int{unauth, ok, ok, ok, ok}},
		{"GET /api/v1/tokens", "GET", "/api/v1/tokens?principal=user-b", nil, [5]int{unauth, forbidden, ok, ok, forbidden}},
		{"POST /api/v1/tokens", "POST", "/api/v1/tokens", api.APITokenRequest{Name: "mine", Scopes: []string{"domains:read"}}, [5]int{unauth, created, created, created, created}},
		// user-b's own token first; the admin's second one of the same name conflicts.
		{"POST /api/v1/tokens", "POST", "/api/v1/tokens", api.APITokenRequest{Name: "theirs", Principal: "user-b", Scopes: []string{"read"}}, [5]int{unauth, forbidden, created, http.StatusConflict, forbidden}},
		{"DELETE /api/v1/tokens/{name}", "DELETE", "/api/v1/tokens/mine", nil, [5]int{unauth, nocontent, nocontent, nocontent, nocontent}},
		{"GET /api/v1/principals", "GET", "/api/v1/principals", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		{"PUT /api/v1/principals/{name}", "PUT", "/api/v1/principals/user-c", api.PrincipalSpec{Role: "tenant", Tenants: []string{"a"}}, [5]int{unauth, forbidden, forbidden, created, forbidden}},
		{"DELETE /api/v1/principals/{name}", "DELETE", "/api/v1/principals/user-c", nil, [5]int{unauth, forbidden, forbidden, nocontent, forbidden}},
		{"POST /api/v1/keys/rotate", "POST", "/api/v1/keys/rotate", nil, [5]int{unauth, forbidden, forbidden, ok, forbidden}},
		// After the rotation the admin's access token, signed by the previous key, still works.
		{"GET /api/v1/whoami", "GET", "/api/v1/whoami", nil, [5]int{unauth, ok, ok, ok, ok}},
	}
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.route] = true
		for i, p := range order {
			if code, body := h.call(who[p], r.method, r.path, r.body); code != r.want[i] {
				t.Errorf("%s %s as %s: %d, want %d: %s", r.method, r.path, p, code, r.want[i], body)
			}
		}
	}
	// Every route the API has is in the matrix.
	for _, rt := range api.NewServer(api.Options{}).Routes() {
		if !covered[rt.Pattern] {
			t.Errorf("route %s is not in the authorisation matrix", rt.Pattern)
		}
	}

	// What tenant A sees: its own only, without its limits.
	list := func(bearer, path string) []string {
		t.Helper()
		code, b := h.call(bearer, "GET", path, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		var l struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
				Spec     map[string]any        `json:"spec"`
			} `json:"items"`
		}
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, it := range l.Items {
			names = append(names, it.Metadata.Name)
			if _, ok := it.Spec["limits"]; ok && bearer == who["tenantA"] {
				t.Errorf("tenant A sees the limits of %s", it.Metadata.Name)
			}
		}
		slices.Sort(names)
		return names
	}
	if got := list(who["tenantA"], "/api/v1/domains"); !slices.Equal(got, []string{"a.test"}) {
		t.Errorf("tenant A lists domains %v, want only a.test", got)
	}
	if got := list(who["tenantA"], "/api/v1/domains?tenant=b"); len(got) != 0 {
		t.Errorf("tenant A lists tenant b's domains through the filter: %v", got)
	}
	if got := list(who["tenantA"], "/api/v1/tenants"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("tenant A lists tenants %v, want only a", got)
	}
	if got := list(who["admin"], "/api/v1/domains"); !slices.Equal(got, []string{"a.test", "b.test", "new.test"}) {
		t.Errorf("admin lists %v", got)
	}
	if code, b := h.call(who["tenantA"], "GET", "/api/v1/domains/b.test/events", nil); code != http.StatusNotFound || strings.Contains(string(b), "b.test\",") {
		t.Errorf("tenant A reads tenant B's events: %d %s", code, b)
	}
	// Writes are recorded with who made them.
	_, b = d.do("GET", "/api/v1/domains/new.test/revisions", nil)
	if !strings.Contains(string(b), `"actor":"user-b@api-token"`) {
		t.Errorf("revision of new.test does not name its author: %s", b)
	}
}

// A tenant's principal logs in with the password of the Linux user of its
// name (PAM); a user without a principal gets the same refusal as a wrong
// password.
func TestTenantPrincipalLogsInWithItsPassword(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d, h := startHTTPS(t)
	if code, b := d.do("PUT", "/api/v1/tenants/a", tenant("a")); code != http.StatusCreated {
		t.Fatalf("tenant a: %d %s", code, b)
	}
	if code, b := d.do("PUT", "/api/v1/principals/anna", api.PrincipalSpec{Role: "tenant", Tenants: []string{"a"}}); code != http.StatusCreated {
		t.Fatalf("principal anna: %d %s", code, b)
	}
	for _, u := range []string{"anna", "stranger"} {
		if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "/usr/sbin/useradd", Args: []string{"-M", u}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: "/usr/sbin/chpasswd", Stdin: []byte("anna:anna-pw-1\nstranger:stranger-pw-1\n")}); err != nil {
		t.Fatal(err)
	}
	code, b := h.call("", "POST", "/api/v1/auth/login", api.LoginRequest{Username: "anna", Password: "anna-pw-1"})
	if code != http.StatusOK {
		t.Fatalf("anna's login: %d %s", code, b)
	}
	var toks api.Tokens
	if err := json.Unmarshal(b, &toks); err != nil || toks.Principal.Role != "tenant" || !slices.Equal(toks.Principal.Tenants, []string{"a"}) {
		t.Fatalf("anna's tokens: %s (%v)", b, err)
	}
	if code, b := h.call(toks.AccessToken, "GET", "/api/v1/tenants/a", nil); code != http.StatusOK {
		t.Errorf("anna reads her tenant: %d %s", code, b)
	}
	if code, b := h.call(toks.AccessToken, "GET", "/metrics", nil); code != http.StatusForbidden {
		t.Errorf("anna reads the metrics: %d %s", code, b)
	}
	// A real user with the right password, but no principal: as a wrong password.
	code, stranger := h.call("", "POST", "/api/v1/auth/login", api.LoginRequest{Username: "stranger", Password: "stranger-pw-1"})
	_, wrong := h.call("", "POST", "/api/v1/auth/login", api.LoginRequest{Username: "anna", Password: "not-it"})
	if code != http.StatusUnauthorized || string(stranger) != string(wrong) {
		t.Errorf("stranger's login: %d %s; a wrong password: %s", code, stranger, wrong)
	}
}
