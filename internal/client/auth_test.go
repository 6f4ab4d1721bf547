package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/client"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/sandbox"
)

const rootPassword = "root-secret"

// startAuth runs an AuthDaemon whose access tokens live a minute by clock,
// root's password rootPassword. Its tests run in a sandbox (sandbox.Run):
// it sets root's password with the real chpasswd, checked by the real PAM.
func startAuth(t *testing.T) (*clienttest.AuthDaemon, *clienttest.Clock) {
	t.Helper()
	clock := clienttest.NewClock(time.Now())
	d := clienttest.StartAuth(t, clienttest.AuthOptions{Initialized: true, Clock: clock.Now, AccessTTL: time.Minute,
		Passwords: map[string]string{"root": rootPassword}})
	return d, clock
}

func TestLoginRefreshLogout(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ctx := testContext(t)
	d, clock := startAuth(t)
	var saved []api.Tokens
	var mu sync.Mutex
	c, err := client.NewWith(d.URL, client.Options{CAFile: d.CAFile, OnRefresh: func(t api.Tokens) error {
		mu.Lock()
		saved = append(saved, t)
		mu.Unlock()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhoAmI(ctx); !client.IsUnauthorized(err) {
		t.Fatalf("whoami before login: %v, want 401", err)
	}
	var ae *client.APIError
	if _, err := c.Login(ctx, "root", "wrong"); !client.IsUnauthorized(err) || !errors.As(err, &ae) ||
		ae.Problem.Title != "Unauthenticated" || ae.Problem.Detail != "invalid user name or password" {
		t.Fatalf("login with a wrong password: %v, want 401 saying no more than \"invalid user name or password\"", err)
	}
	toks, err := c.Login(ctx, "root", rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	if toks.TokenType != "Bearer" || toks.Principal.Name != "root" || toks.Principal.Role != "admin" ||
		!toks.AccessTokenExpiresAt.Equal(clock.Now().Truncate(time.Second).Add(time.Minute)) {
		t.Fatalf("login answered %+v", toks)
	}
	if p, err := c.WhoAmI(ctx); err != nil || p.Name != "root" || p.Via != token.KindAccess {
		t.Fatalf("whoami = %+v, %v", p, err)
	}

	// Expired: eight requests at once find it out; one refresh serves them all.
	clock.Advance(time.Minute + 5*time.Second)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			if _, err := c.WhoAmI(ctx); err != nil {
				t.Error(err)
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	access, refresh := c.Session()
	if failed.Load() > 0 || len(saved) != 1 || saved[0].AccessToken != access || saved[0].RefreshToken != refresh {
		t.Fatalf("%d refreshes saved (want 1), %d failures", len(saved), failed.Load())
	}
	if access == toks.AccessToken || refresh == toks.RefreshToken {
		t.Fatal("the session was not renewed")
	}

	// An explicit refresh is saved as well.
	if _, err := c.Refresh(ctx); err != nil || len(saved) != 2 {
		t.Fatalf("refresh: %v, %d saved", err, len(saved))
	}
	_, refresh = c.Session()
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if a, r := c.Session(); a != "" || r != "" {
		t.Fatal("the client kept its tokens after logout")
	}
	if _, err := d.Tokens().Refresh(ctx, refresh, token.Client{}); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("refresh after logout: %v, want ErrRevoked", err)
	}
}

func TestSessionExpired(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ctx := testContext(t)
	d, clock := startAuth(t)
	login, err := client.NewWith(d.URL, client.Options{CAFile: d.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := login.Login(ctx, "root", rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Tokens().Logout(ctx, toks.RefreshToken); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	saves := 0
	c, err := client.NewWith(d.URL, client.Options{CAFile: d.CAFile, Token: toks.AccessToken, RefreshToken: toks.RefreshToken,
		OnRefresh: func(api.Tokens) error { saves++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WhoAmI(ctx)
	if !errors.Is(err, client.ErrSessionExpired) || !client.IsUnauthorized(err) || saves != 0 {
		t.Fatalf("whoami with a revoked session: %v (%d saves), want ErrSessionExpired and 401", err, saves)
	}

	// A refresh that cannot be saved fails the request.
	toks, err = login.Login(ctx, "root", rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	c, err = client.NewWith(d.URL, client.Options{CAFile: d.CAFile, Token: toks.AccessToken, RefreshToken: toks.RefreshToken,
		OnRefresh: func(api.Tokens) error { return os.ErrPermission }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WhoAmI(ctx); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("whoami with a refresh that cannot be saved: %v", err)
	}
}

func TestAPITokenRoutes(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ctx := testContext(t)
	d, _ := startAuth(t)
	root := client.New(d.Socket) // root on the socket: no token
	created, err := root.CreateAPIToken(ctx, api.APITokenRequest{Name: "ci", Scopes: []string{"read"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "ci" || created.Principal != "root" || created.ExpiresAt == nil || !strings.HasPrefix(created.Token, token.APITokenPrefix) {
		t.Fatalf("created %+v", created)
	}
	c, err := client.NewWith(d.URL, client.Options{CAFile: d.CAFile, Token: created.Token})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.WhoAmI(ctx); err != nil || p.Via != token.KindAPI || len(p.Scopes) != 1 {
		t.Fatalf("whoami with the API token: %+v, %v", p, err)
	}
	if _, err := c.ListPrincipals(ctx); !client.IsForbidden(err) {
		t.Fatalf("principals with a read token: %v, want 403", err)
	}
	list, err := root.ListAPITokens(ctx, "")
	if err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Fatalf("tokens = %+v, %v", list, err)
	}
	if err := root.RevokeAPIToken(ctx, "ci", "root"); err != nil {
		t.Fatal(err)
	}
	_, err = c.WhoAmI(ctx)
	if !client.IsUnauthorized(err) || errors.Is(err, client.ErrSessionExpired) {
		t.Fatalf("whoami with a revoked API token: %v, want a plain 401", err)
	}
	// The detail says why, without repeating the title.
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Problem.Detail == "" ||
		strings.HasPrefix(strings.ToLower(ae.Problem.Detail), "unauthenticated") {
		t.Errorf("the 401's detail: %+v", ae)
	}

	p, created2, err := root.PutPrincipal(ctx, "bot", api.PrincipalSpec{Role: "admin"})
	if err != nil || !created2 || p.Name != "bot" {
		t.Fatalf("put principal: %+v, %v, %v", p, created2, err)
	}
	if _, created2, err = root.PutPrincipal(ctx, "bot", api.PrincipalSpec{Role: "admin", Disabled: true}); err != nil || created2 {
		t.Fatalf("put principal again: %v, %v", created2, err)
	}
	if err := root.DeletePrincipal(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	if err := root.DeletePrincipal(ctx, "bot"); !client.IsNotFound(err) {
		t.Fatalf("delete a deleted principal: %v, want 404", err)
	}
}

func TestBootstrap(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	ctx := testContext(t)
	d := clienttest.StartAuth(t, clienttest.AuthOptions{})
	c := client.New(d.Socket)
	if st, err := c.BootstrapStatus(ctx); err != nil || st.Initialized {
		t.Fatalf("status before: %+v, %v", st, err)
	}
	res, err := c.Bootstrap(ctx, api.BootstrapRequest{})
	if err != nil || !res.Initialized || res.Admin != "root" {
		t.Fatalf("bootstrap: %+v, %v", res, err)
	}
	if _, err := c.Bootstrap(ctx, api.BootstrapRequest{}); !client.IsConflict(err) {
		t.Fatalf("second bootstrap: %v, want 409", err)
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"30", 30 * time.Second},
		{date.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"", 0},
		{"soon", 0},
		{"-5", 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Date", date.Format(http.TimeFormat))
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"title":"Too many requests","status":429,"detail":"too many failed logins"}`))
		}))
		_, err := client.New(srv.URL).Login(testContext(t), "root", "x")
		srv.Close()
		var ae *client.APIError
		if !client.IsRateLimited(err) || !errors.As(err, &ae) || ae.RetryAfter != tc.want || ae.Problem.Detail != "too many failed logins" {
			t.Errorf("Retry-After %q: %v (%+v), want 429 after %v", tc.header, err, ae, tc.want)
		}
	}
}

func TestNewWith(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	if _, err := client.NewWith("http://panel.example:8080", client.Options{Token: "x"}); err == nil {
		t.Error("a token over plain http to another host was accepted")
	}
	if _, err := client.NewWith("http://127.0.0.1:8080", client.Options{Token: "x"}); err != nil {
		t.Errorf("a token over http to the loopback: %v", err)
	}
	dir := t.TempDir()
	if _, err := client.NewWith("https://127.0.0.1:1", client.Options{CAFile: filepath.Join(dir, "missing.crt")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: %v", err)
	}
	junk := filepath.Join(dir, "junk.crt")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewWith("https://127.0.0.1:1", client.Options{CAFile: junk}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without a certificate: %v", err)
	}

	// Without the CA, wcpd's self-signed certificate is not trusted.
	d, _ := startAuth(t)
	_, err := client.New(d.URL).Health(testContext(t))
	if !client.IsUntrustedCertificate(err) {
		t.Errorf("health without the CA: %v, want an untrusted certificate", err)
	}
	c, err := client.NewWith(d.URL, client.Options{CAFile: d.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(testContext(t)); err != nil || h.Status == "" {
		t.Errorf("health with the CA: %+v, %v", h, err)
	}
}
