package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/client"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// These tests run wcp against clienttest.AuthDaemon: the API over HTTPS
// with wcpd's identity service behind the first-boot, login, token and
// principal routes: the real PAM, token service and store. It sets root's
// password and creates alice, a Linux user, so each test runs in a sandbox
// of its own (sandbox.Run). alice may log in once she is a principal.

const (
	rootPassword  = "root-secret"
	alicePassword = "alice-secret"
	accessTTL     = time.Minute
)

type authEnv struct {
	d     *clienttest.AuthDaemon
	clock *clienttest.Clock
	// wcp runs with a HOME of its own and no WCP_SOCKET: it uses the
	// stored login. root runs on the daemon's socket, as root.
	wcp, root invocation
	credsPath string
}

func startAuth(t *testing.T, opts clienttest.AuthOptions) *authEnv {
	t.Helper()
	clock := clienttest.NewClock(time.Now())
	opts.Clock = clock.Now
	opts.AccessTTL = accessTTL
	if opts.Passwords == nil {
		opts.Passwords = map[string]string{"root": rootPassword, "alice": alicePassword}
	}
	d := clienttest.StartAuth(t, opts)
	home := t.TempDir()
	return &authEnv{
		d: d, clock: clock,
		wcp:       invocation{env: map[string]string{"HOME": home}},
		root:      invocation{socket: d.Socket},
		credsPath: filepath.Join(home, ".config", "wcp360", "credentials.json"),
	}
}

// login runs wcp login as user with the password on standard input.
func (e *authEnv) login(t *testing.T, inv invocation, user, password string) result {
	t.Helper()
	inv.stdin = password + "\n"
	return inv.run(t, "login", "--server", e.d.URL, "--ca", e.d.CAFile, "--user", user, "--password-stdin")
}

func (e *authEnv) creds(t *testing.T) *credentials {
	t.Helper()
	c, err := readCredentials(e.credsPath, true)
	if err != nil || c == nil {
		t.Fatalf("stored credentials: %+v, %v", c, err)
	}
	return c
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %04o, want %04o", path, got, want)
	}
}

func wantFailure(t *testing.T, r result, stderr string) {
	t.Helper()
	if r.code == 0 || !strings.Contains(r.stderr, stderr) {
		t.Fatalf("exit %d, stderr %q; want a failure saying %q", r.code, r.stderr, stderr)
	}
}

func TestInitOnTheSocket(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{})
	r := e.root.run(t, "init")
	mustSucceed(t, r)
	wantLines(t, "wcp init", r.stdout,
		"WCP360 at "+e.d.Socket+" initialised: root is the first admin; wcpd made its token signing keys.",
		"Root on this machine's socket needs no login. To use the API from elsewhere, set api.listen in wcpd's",
		"configuration and run there: wcp login --server https://HOST:PORT --ca api.crt")
	if done, err := e.d.Store.Initialized(ctxT(t)); err != nil || !done {
		t.Fatalf("initialised = %v, %v after wcp init", done, err)
	}
	if p, err := e.d.Store.GetPrincipal(ctxT(t), "root"); err != nil || p.Role != "admin" {
		t.Fatalf("root principal = %+v, %v", p, err)
	}

	r = e.root.run(t, "init")
	mustSucceed(t, r)
	wantLines(t, "wcp init again", r.stdout, "WCP360 at "+e.d.Socket+" is initialised already: nothing to do.")
}

func TestInitOverHTTPS(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{})
	inv := e.wcp
	inv.stdin = "wrong\n"
	r := inv.run(t, "init", "--server", e.d.URL, "--ca", e.d.CAFile, "--password-stdin")
	wantFailure(t, r, "first boot refused: wrong password for root")
	if done, _ := e.d.Store.Initialized(ctxT(t)); done {
		t.Fatal("a refused first boot initialised the system")
	}

	var prompts []string
	inv.stdin = ""
	inv.password = func(prompt string) (string, error) {
		prompts = append(prompts, prompt)
		return rootPassword, nil
	}
	r = inv.run(t, "init", "--server", e.d.URL, "--ca", e.d.CAFile)
	mustSucceed(t, r)
	if want := "root's password on " + strings.TrimPrefix(e.d.URL, "https://") + ": "; len(prompts) != 1 || prompts[0] != want {
		t.Errorf("prompts %q, want [%q]", prompts, want)
	}
	if !strings.HasPrefix(r.stdout, "WCP360 at "+e.d.URL+" initialised: root is the first admin") {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestLoginRefreshLogout(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.root.run(t, "apply", "-f", "testdata/nested/a.yml"))

	r := e.login(t, e.wcp, "root", rootPassword)
	mustSucceed(t, r)
	out := lines(r.stdout)
	if len(out) != 3 || out[0] != "Logged in to "+e.d.URL+" as root (admin)." ||
		!strings.HasPrefix(out[1], "The session lasts until ") || out[2] != "Credentials stored in "+e.credsPath+"." {
		t.Fatalf("login printed %q", out)
	}
	wantMode(t, e.credsPath, 0o600)
	wantMode(t, filepath.Dir(e.credsPath), 0o700)
	first := e.creds(t)
	if first.Server != e.d.URL || first.CA != e.d.CAFile || first.Tokens.AccessToken == "" ||
		!strings.HasPrefix(first.Tokens.RefreshToken, token.RefreshTokenPrefix) {
		t.Fatalf("stored %+v", first)
	}

	// Later commands go to the stored server with the token.
	r = e.wcp.run(t, "get", "tenants", "-o", "name")
	mustSucceed(t, r)
	wantLines(t, "tenants over HTTPS", r.stdout, "tenant/alpha")
	r = e.wcp.run(t, "whoami")
	mustSucceed(t, r)
	wantLines(t, "whoami", r.stdout, "name:     root", "role:     admin", "via:      jwt", "server:   "+e.d.URL)

	// The access token expires: the next command refreshes, retries, and
	// stores the new tokens.
	e.clock.Advance(accessTTL + 5*time.Second)
	if _, err := e.d.Tokens().Authenticate(ctxT(t), first.Tokens.AccessToken); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("the first access token after its lifetime: %v, want ErrExpired", err)
	}
	r = e.wcp.run(t, "get", "tenants", "-o", "name")
	mustSucceed(t, r)
	wantLines(t, "tenants after a refresh", r.stdout, "tenant/alpha")
	second := e.creds(t)
	if second.Tokens.AccessToken == first.Tokens.AccessToken || second.Tokens.RefreshToken == first.Tokens.RefreshToken {
		t.Fatal("the refreshed tokens were not stored")
	}
	wantMode(t, e.credsPath, 0o600)
	if _, err := e.d.Tokens().Authenticate(ctxT(t), second.Tokens.AccessToken); err != nil {
		t.Fatalf("the stored access token: %v", err)
	}
	// No refresh while the access token is good.
	mustSucceed(t, e.wcp.run(t, "whoami"))
	if third := e.creds(t); third.Tokens.RefreshToken != second.Tokens.RefreshToken {
		t.Fatal("a command with a good access token refreshed")
	}

	r = e.wcp.run(t, "logout")
	mustSucceed(t, r)
	wantLines(t, "logout", r.stdout, "Logged out of "+e.d.URL+"; deleted "+e.credsPath+".")
	if _, err := os.Stat(e.credsPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials after logout: %v", err)
	}
	if _, err := e.d.Tokens().Refresh(ctxT(t), second.Tokens.RefreshToken, token.Client{}); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("refresh after logout: %v, want ErrRevoked", err)
	}
	r = e.wcp.run(t, "logout")
	mustSucceed(t, r)
	wantLines(t, "logout again", r.stdout, "Not logged in.")
}

func TestSessionEnded(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.login(t, e.wcp, "root", rootPassword))
	// The session is revoked elsewhere (another wcp logout of a copy).
	if err := e.d.Tokens().Logout(ctxT(t), e.creds(t).Tokens.RefreshToken); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, e.wcp.run(t, "whoami")) // the access token is good until it expires
	e.clock.Advance(accessTTL + 5*time.Second)
	r := e.wcp.run(t, "get", "tenants")
	wantFailure(t, r, "error: not logged in or session expired: run wcp login")
}

func TestLoginRefused(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true, MaxFailures: 2, RetryAfter: 42 * time.Second})
	// Two wrong passwords, at once: each costs PAM's failure delay.
	var wrong [2]result
	var wg sync.WaitGroup
	for i := range wrong {
		wg.Go(func() { wrong[i] = e.login(t, e.wcp, "root", "wrong") })
	}
	wg.Wait()
	for _, r := range wrong {
		wantFailure(t, r, "error: login failed: wrong user name or password (Unauthenticated: invalid user name or password)")
	}
	r := e.login(t, e.wcp, "root", rootPassword)
	wantFailure(t, r, "error: too many attempts: try again in 42s")
	// The address is locked out as well, whoever logs in from it.
	r = e.login(t, e.wcp, "alice", alicePassword)
	wantFailure(t, r, "error: too many attempts: try again in 42s")
	if _, err := os.Stat(e.credsPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused login stored credentials: %v", err)
	}

	// No terminal and no --password-stdin: wcp says what to do.
	r = e.wcp.run(t, "login", "--server", e.d.URL, "--ca", e.d.CAFile)
	wantFailure(t, r, "no terminal to ask the password on: pipe it in with --password-stdin")
	// Not https.
	r = e.wcp.run(t, "login", "--server", "http://127.0.0.1:1", "--password-stdin")
	wantFailure(t, r, "--server must be https://HOST:PORT")
	// The server's certificate, without its CA.
	inv := e.wcp
	inv.stdin = rootPassword
	r = inv.run(t, "login", "--server", e.d.URL, "--password-stdin")
	wantFailure(t, r, "the server's certificate is not trusted: give wcp login the CA with --ca")
}

func TestCredentialsOpenToOthersRefused(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.login(t, e.wcp, "root", rootPassword))
	refresh := e.creds(t).Tokens.RefreshToken
	if err := os.Chmod(e.credsPath, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.wcp.run(t, "get", "tenants")
	wantFailure(t, r, "are open to other users (mode 0644): refusing to use them")
	r = e.wcp.run(t, "whoami")
	wantFailure(t, r, "refusing to use them")

	// logout still ends that session, and deletes the file.
	mustSucceed(t, e.wcp.run(t, "logout"))
	if _, err := os.Stat(e.credsPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("credentials after logout: %v", err)
	}
	if _, err := e.d.Tokens().Refresh(ctxT(t), refresh, token.Client{}); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("refresh after logout: %v, want ErrRevoked", err)
	}
}

func TestSocketOverridesTheLogin(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.login(t, e.wcp, "root", rootPassword))
	inv := e.wcp
	inv.socket = e.d.Socket
	r := inv.run(t, "whoami")
	mustSucceed(t, r)
	wantLines(t, "whoami on the socket", r.stdout, "name:     root", "role:     admin", "via:      unix", "server:   "+e.d.Socket)
	for _, args := range [][]string{{"--socket", e.d.Socket, "whoami"}, {"whoami", "--socket", e.d.Socket}} {
		r = e.wcp.run(t, args...)
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "via:      unix") {
			t.Errorf("--socket did not win over the stored login:\n%s", r.stdout)
		}
	}
}

func TestAPITokens(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.root.run(t, "apply", "-f", "testdata/nested/a.yml"))
	mustSucceed(t, e.login(t, e.wcp, "root", rootPassword))

	r := e.wcp.run(t, "token", "create", "ci", "--scope", "read", "--ttl", "720h")
	mustSucceed(t, r)
	secret := strings.TrimSpace(r.stdout)
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(secret, token.APITokenPrefix) {
		t.Fatalf("token create printed %q on stdout, want the secret alone", r.stdout)
	}
	if !strings.Contains(r.stderr, "API token ci created for root (scopes read; expires ") ||
		!strings.Contains(r.stderr, "it is not shown again") || strings.Contains(r.stderr, secret) {
		t.Fatalf("token create stderr %q", r.stderr)
	}

	r = e.wcp.run(t, "token", "list")
	mustSucceed(t, r)
	out := lines(r.stdout)
	if len(out) != 2 || !strings.HasPrefix(out[0], "NAME ") || !strings.HasPrefix(out[1], "ci ") ||
		!strings.Contains(out[1], " in 29d ") || !strings.Contains(out[1], " never ") || strings.Contains(r.stdout, secret) {
		t.Fatalf("token list:\n%s", r.stdout)
	}

	// WCP_TOKEN replaces the stored login's tokens.
	inv := e.wcp
	inv.env = map[string]string{"HOME": e.wcp.env["HOME"], EnvToken: secret}
	r = inv.run(t, "whoami")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "via:      api-token") || !strings.Contains(r.stdout, "scopes:   read") {
		t.Errorf("whoami with WCP_TOKEN:\n%s", r.stdout)
	}
	r = inv.run(t, "delete", "tenant", "alpha")
	wantFailure(t, r, "error: tenant/alpha: Forbidden: ")

	// The token works for what its scope allows, and for nothing else.
	c, err := client.NewWith(e.d.URL, client.Options{CAFile: e.d.CAFile, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.WhoAmI(ctxT(t)); err != nil || p.Via != token.KindAPI || p.Name != "root" {
		t.Fatalf("whoami with the API token: %+v, %v", p, err)
	}
	if l, err := c.List(ctxT(t), "Tenant", client.ListOptions{}); err != nil || len(l.Items) != 1 {
		t.Fatalf("tenants with the API token: %+v, %v", l, err)
	}
	if _, err := c.Delete(ctxT(t), "Tenant", "alpha", false); !client.IsForbidden(err) {
		t.Fatalf("delete with a read token: %v, want 403", err)
	}

	r = e.wcp.run(t, "token", "create", "ci", "--scope", "read")
	wantFailure(t, r, "error: Conflict")
	r = e.wcp.run(t, "token", "create", "x", "--scope", "everything")
	wantFailure(t, r, `unknown scope "everything"`)

	r = e.wcp.run(t, "token", "revoke", "ci")
	mustSucceed(t, r)
	wantLines(t, "revoke", r.stdout, "API token ci revoked.")
	if _, err := c.WhoAmI(ctxT(t)); !client.IsUnauthorized(err) {
		t.Fatalf("whoami with a revoked token: %v, want 401", err)
	}
	r = e.wcp.run(t, "token", "revoke", "ci")
	wantFailure(t, r, "error: Not found")
}

func TestPrincipals(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.root.run(t, "apply", "-f", "testdata/site"))
	mustSucceed(t, e.root.run(t, "apply", "-f", "testdata/nested/a.yml"))

	r := e.root.run(t, "principal", "apply", "alice", "--role", "tenant", "--tenant", "acme")
	mustSucceed(t, r)
	wantLines(t, "principal apply", r.stdout, "principal/alice created")
	r = e.root.run(t, "principal", "apply", "alice", "--role", "tenant", "--tenant", "acme")
	mustSucceed(t, r)
	wantLines(t, "principal apply again", r.stdout, "principal/alice configured")
	r = e.root.run(t, "principal", "list")
	mustSucceed(t, r)
	wantLines(t, "principal list", r.stdout, "NAME    ROLE     TENANTS", "alice   tenant   acme", "root    admin    <none>")

	// alice logs in: she sees her tenant, not the others nor the principals.
	mustSucceed(t, e.login(t, e.wcp, "alice", alicePassword))
	r = e.wcp.run(t, "get", "tenants", "-o", "name")
	mustSucceed(t, r)
	wantLines(t, "alice's tenants", r.stdout, "tenant/acme")
	r = e.wcp.run(t, "principal", "list")
	wantFailure(t, r, "error: Forbidden: ")
	r = e.wcp.run(t, "get", "tenant", "alpha")
	wantFailure(t, r, "error: Not found")
	r = e.wcp.run(t, "whoami")
	mustSucceed(t, r)
	wantLines(t, "alice's whoami", r.stdout, "name:      alice", "role:      tenant", "tenants:   acme", "via:       jwt", "server:    "+e.d.URL)

	r = e.root.run(t, "principal", "delete", "alice")
	mustSucceed(t, r)
	wantLines(t, "principal delete", r.stdout, "principal/alice deleted")
	r = e.root.run(t, "principal", "delete", "alice")
	wantFailure(t, r, "error: Not found")
}

// The access token is refreshed once however many requests find it expired.
func TestRefreshedTokensAreSavedOnce(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	e := startAuth(t, clienttest.AuthOptions{Initialized: true})
	mustSucceed(t, e.login(t, e.wcp, "root", rootPassword))
	e.clock.Advance(accessTTL + 5*time.Second)
	a := newApp(Env{Getenv: func(k string) string { return e.wcp.env[k] }})
	c, err := a.client()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := c.WhoAmI(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	access, refresh := c.Session()
	if got := e.creds(t).Tokens; got.AccessToken != access || got.RefreshToken != refresh {
		t.Fatal("the stored tokens are not the client's")
	}
	if _, err := e.d.Tokens().Refresh(ctxT(t), refresh, token.Client{}); err != nil {
		t.Fatalf("the stored refresh token: %v (a second refresh would have revoked the session)", err)
	}
}

func TestExplain(t *testing.T) {
	unauthorized := &client.APIError{Status: 401, Problem: api.Problem{Title: "Unauthenticated", Detail: "token has expired"}}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"401", unauthorized, "not logged in or session expired: run wcp login (Unauthenticated: token has expired)"},
		{"session", fmt.Errorf("%w: %w", client.ErrSessionExpired, unauthorized),
			"not logged in or session expired: run wcp login (the login session has expired or was revoked: Unauthenticated: token has expired)"},
		{"handled", handled{fmt.Errorf("login failed: wrong user name or password (%w)", unauthorized)},
			"login failed: wrong user name or password (Unauthenticated: token has expired)"},
		{"429", &client.APIError{Status: 429, RetryAfter: 90 * time.Second, Problem: api.Problem{Title: "Too many requests"}},
			"too many attempts: try again in 90s (Too many requests)"},
		{"429 without Retry-After", &client.APIError{Status: 429, Problem: api.Problem{Title: "Too many requests"}},
			"too many attempts: try again later (Too many requests)"},
		{"busy", &client.APIError{Status: 503, RetryAfter: time.Second, Problem: api.Problem{Title: "Busy", Detail: "busy"}},
			"Busy: busy (try again in 1s)"},
		{"403", &client.APIError{Status: 403, Problem: api.Problem{Title: "Forbidden", Detail: "system:read needs an admin"}},
			"Forbidden: system:read needs an admin"},
		{"socket of root", fmt.Errorf("%w at /run/wcp360/wcpd.sock: %w", client.ErrUnreachable,
			&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}),
			"wcpd is not running or not reachable at /run/wcp360/wcpd.sock: dial unix: connect: permission denied\n" +
				"the local socket is root's: as another user, log in to the HTTPS API first (wcp login --server https://HOST:PORT)"},
	} {
		if got := explain(tc.err).Error(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
