package identity

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/pam"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// First boot writes /etc/pam.d and /etc/wcp360/keys and checks root's
// password with real PAM: every test runs in a sandbox of its own.
func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

var (
	rootPeer = api.Peer{Unix: true, UID: 0}
	tcpPeer  = api.Peer{Addr: "192.0.2.7:50000", UID: -1}
)

func newService(t *testing.T, beforeMark func() error) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, err := pam.New(pam.Config{Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Wait)
	s, err := New(Options{Store: st, PAM: a, KeyDir: "/etc/wcp360/keys", Token: token.Config{Clock: time.Now}, beforeMark: beforeMark})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func TestFirstBootOnceAndRerunnableAfterACrash(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	crash := errors.New("power cut")
	s, st := newService(t, func() error { return crash })
	ctx := t.Context()
	if _, err := s.Bootstrap(ctx, api.BootstrapRequest{}, rootPeer); !errors.Is(err, crash) {
		t.Fatalf("bootstrap with a crash before the last step: %v", err)
	}
	// Half done: keys and the admin exist, the system is not initialised.
	if done, _ := st.Initialized(ctx); done {
		t.Fatal("initialised after a crash before the last step")
	}
	if _, err := os.Stat("/etc/wcp360/keys"); err != nil {
		t.Fatalf("keys after the crash: %v", err)
	}
	if s.Tokens() != nil {
		t.Fatal("tokens served before first boot was done")
	}

	// wcpd starts again: first boot runs again, to the end.
	s2, _ := newServiceOn(t, st)
	res, err := s2.Bootstrap(ctx, api.BootstrapRequest{}, rootPeer)
	if err != nil || !res.Initialized || res.Admin != "root" {
		t.Fatalf("bootstrap after the crash: %+v, %v", res, err)
	}
	if done, _ := st.Initialized(ctx); !done {
		t.Fatal("not initialised")
	}
	if st, err := os.Stat("/etc/pam.d/wcp360"); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("PAM service file: %v", err)
	}
	entries, _ := os.ReadDir("/etc/wcp360/keys")
	if len(entries) != 1 {
		t.Errorf("%d keys after a crashed and a whole first boot, want the one made before the crash", len(entries))
	}
	// A second first boot, however it comes, is refused.
	if _, err := s2.Bootstrap(ctx, api.BootstrapRequest{}, rootPeer); !errors.Is(err, api.ErrAlreadyInitialized) {
		t.Errorf("second bootstrap: %v, want ErrAlreadyInitialized", err)
	}
	// Tokens work now.
	if _, _, err := s2.Tokens().IssueAccessToken(store.Principal{Name: "root", Role: store.RoleAdmin}); err != nil {
		t.Errorf("issue a token after first boot: %v", err)
	}
}

func newServiceOn(t *testing.T, st *store.Store) (*Service, *store.Store) {
	t.Helper()
	a, err := pam.New(pam.Config{Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Wait)
	s, err := New(Options{Store: st, PAM: a, KeyDir: "/etc/wcp360/keys", Token: token.Config{Clock: time.Now}})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// Over HTTPS first boot needs root's password, through PAM; concurrent
// first boots: exactly one wins.
func TestFirstBootOverHTTPSNeedsRootsPassword(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	chpasswd(t, "root:s3cret-root")
	s, _ := newService(t, nil)
	ctx := t.Context()
	if _, err := s.Bootstrap(ctx, api.BootstrapRequest{Password: "wrong"}, tcpPeer); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("bootstrap with a wrong password: %v, want ErrUnauthenticated", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Bootstrap(ctx, api.BootstrapRequest{Password: "s3cret-root"}, tcpPeer) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, api.ErrAlreadyInitialized):
			t.Errorf("concurrent bootstrap: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d first boots succeeded, want 1", wins)
	}
	// Root logs in with its password now.
	toks, err := s.Login(ctx, api.LoginRequest{Username: "root", Password: "s3cret-root"}, tcpPeer, "test")
	if err != nil || toks.AccessToken == "" || toks.Principal.Role != "admin" {
		t.Fatalf("login: %+v, %v", toks, err)
	}
	if p, err := s.Authenticate(ctx, toks.AccessToken); err != nil || p.Name != "root" {
		t.Errorf("authenticate the access token: %+v, %v", p, err)
	}
	if _, err := s.Login(ctx, api.LoginRequest{Username: "root", Password: "nope"}, tcpPeer, "test"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("login with a wrong password: %v", err)
	}
}

func chpasswd(t *testing.T, line string) {
	t.Helper()
	if _, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: "/usr/sbin/chpasswd", Stdin: []byte(line + "\n")}); err != nil {
		t.Fatalf("chpasswd: %v", err)
	}
}

// An admin by the admin group who leaves it loses the panel: its next
// refresh ends the session, its next login is refused.
func TestAdminGroupLeaverLosesThePanel(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	for _, c := range [][]string{{"/usr/sbin/groupadd", "wcp360-admin"}, {"/usr/sbin/useradd", "-M", "-G", "wcp360-admin", "ada"}} {
		if _, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: c[0], Args: c[1:]}); err != nil {
			t.Fatal(err)
		}
	}
	chpasswd(t, "ada:ada-pw-123")
	st, err := store.Open(t.Context(), pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.MigrateUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, err := pam.New(pam.Config{Clock: time.Now, AdminGroup: "wcp360-admin", AllowUser: PrincipalsMayLogIn(st)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Wait)
	s, err := New(Options{Store: st, PAM: a, KeyDir: "/etc/wcp360/keys", Token: token.Config{Clock: time.Now}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.Bootstrap(ctx, api.BootstrapRequest{}, rootPeer); err != nil {
		t.Fatal(err)
	}
	toks, err := s.Login(ctx, api.LoginRequest{Username: "ada", Password: "ada-pw-123"}, tcpPeer, "test")
	if err != nil || toks.Principal.Role != "admin" {
		t.Fatalf("ada's login: %+v, %v", toks, err)
	}
	if toks, err = s.Refresh(ctx, toks.RefreshToken, tcpPeer, "test"); err != nil {
		t.Fatalf("refresh while in the group: %v", err)
	}
	if _, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: "/usr/bin/gpasswd", Args: []string{"-d", "ada", "wcp360-admin"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, toks.RefreshToken, tcpPeer, "test"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("refresh after leaving the group: %v, want ErrUnauthenticated", err)
	}
	if _, err := s.Login(ctx, api.LoginRequest{Username: "ada", Password: "ada-pw-123"}, tcpPeer, "test"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("login after leaving the group: %v, want ErrUnauthenticated", err)
	}
}
