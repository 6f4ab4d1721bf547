package clienttest

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/identity"
	"github.com/wcp360/wcp360/internal/auth/pam"
	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// AdminGroup is the Linux group whose members log in as admins
// (pam.Config.AdminGroup, wcpd's auth.adminGroup); StartAuth creates it.
const AdminGroup = "wcp360-admin"

// AuthOptions configure StartAuth.
type AuthOptions struct {
	// Passwords are the Linux accounts StartAuth prepares in the sandbox
	// (user name → password): root gets its password; any other user is
	// created first (useradd, no home, no shell, in no group of the
	// panel's). Who may log in is wcpd's policy: root, the members of
	// AdminGroup, and the users that are enabled principals (a tenant's
	// login with its Linux user's password).
	Passwords map[string]string
	// Clock stamps and checks access tokens (time.Now when nil): tests
	// move it to expire them.
	Clock func() time.Time
	// AccessTTL is the access tokens' lifetime (token.DefaultAccessTTL when 0).
	AccessTTL time.Duration
	// Initialized runs the first boot at the start, as root on the socket:
	// root is an admin.
	Initialized bool
	// MaxFailures is how many failed logins of one user (or from one
	// address) PAM is asked about before every further attempt is answered
	// 429 (pam.Limits.MaxFailures; 5 when 0). A wrong password costs PAM's
	// failure delay, 1 to 3 seconds: keep them few.
	MaxFailures int
	// RetryAfter is the lockout, the Retry-After of the first 429
	// (pam.Limits.Lockout; one minute when 0).
	RetryAfter time.Duration
}

// AuthDaemon is the API with first boot, logins, principals and tokens: the
// api package's handler over wcpd's own identity.Service, with the real PAM
// (pam_unix against the sandbox's /etc/shadow), the real token service and
// the real store. It is served on a unix socket (root there is an admin, no
// token) and over HTTPS.
//
// It changes the host (users, passwords, /etc/pam.d/wcp360), so it runs
// only in a sandbox: a test that uses it starts with
//
//	if sandbox.Run(t) {
//		return
//	}
//
// and its package's TestMain uses sandbox.MainFunc.
type AuthDaemon struct {
	// Socket is the unix socket path.
	Socket string
	// URL is the HTTPS API ("https://127.0.0.1:port"); CAFile holds the
	// certificate it presents.
	URL    string
	CAFile string
	Store  *store.Store
	// Identity is the daemon's identity service.
	Identity *identity.Service
}

// Tokens is the daemon's token service, nil before first boot.
func (d *AuthDaemon) Tokens() *token.Service { return d.Identity.Tokens() }

// StartAuth runs an AuthDaemon for tb; everything is stopped and dropped
// when tb ends. It refuses to run outside a sandbox.
func StartAuth(tb testing.TB, opts AuthOptions) *AuthDaemon {
	tb.Helper()
	if !sandbox.Inside() {
		tb.Fatal("clienttest.StartAuth creates Linux users and sets passwords: it runs only in a sandbox; " +
			"start the test with `if sandbox.Run(t) { return }` (and TestMain with sandbox.MainFunc)")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	prepareAccounts(tb, opts.Passwords)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, pgtest.New(tb), store.Options{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	logger := testLogger(tb)
	auth, err := pam.New(pam.Config{Logger: logger, AdminGroup: AdminGroup, AllowUser: identity.PrincipalsMayLogIn(st),
		Limits: pam.Limits{MaxFailures: opts.MaxFailures, Lockout: opts.RetryAfter}})
	if err != nil {
		tb.Fatalf("PAM: %v", err)
	}
	tb.Cleanup(auth.Wait)
	id, err := identity.New(identity.Options{Store: st, PAM: auth, KeyDir: filepath.Join(tb.TempDir(), "keys"),
		Token: token.Config{Clock: opts.Clock, AccessTTL: opts.AccessTTL, Leeway: time.Second}, Logger: logger})
	if err != nil {
		tb.Fatalf("identity: %v", err)
	}
	d := &AuthDaemon{Socket: socketPath(tb), Store: st, Identity: id}
	if opts.Initialized {
		if _, err := id.Bootstrap(ctx, api.BootstrapRequest{}, api.Peer{Unix: true, UID: 0}); err != nil {
			tb.Fatalf("bootstrap: %v", err)
		}
	}
	h := api.NewServer(api.Options{Store: st, Logger: logger, Node: Node, Version: "test",
		Auth: id, Identity: id, Clock: opts.Clock}).Handler()

	serveUnix(tb, d.Socket, h)

	tlsSrv := httptest.NewUnstartedServer(h)
	tlsSrv.Config.ConnContext = api.ConnContext
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	tlsSrv.StartTLS()
	tb.Cleanup(tlsSrv.Close)
	d.URL = tlsSrv.URL
	d.CAFile = filepath.Join(tb.TempDir(), "api.crt")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(d.CAFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return d
}

// prepareAccounts creates AdminGroup and the users of passwords that do not
// exist yet, then sets every password: idempotent.
func prepareAccounts(tb testing.TB, passwords map[string]string) {
	tb.Helper()
	if _, err := user.LookupGroup(AdminGroup); err != nil {
		shadowUtil(tb, "groupadd", "", "--system", AdminGroup)
	}
	names := make([]string, 0, len(passwords))
	for name := range passwords {
		names = append(names, name)
	}
	sort.Strings(names)
	var lines strings.Builder
	for _, name := range names {
		if _, err := user.Lookup(name); err != nil {
			shadowUtil(tb, "useradd", "", "--no-create-home", "--shell", "/usr/sbin/nologin", name)
		}
		fmt.Fprintf(&lines, "%s:%s\n", name, passwords[name])
	}
	if lines.Len() > 0 {
		shadowUtil(tb, "chpasswd", lines.String())
	}
}

// shadowUtil runs one of shadow-utils' programs; a missing one makes the
// environment unfit (sandbox.Unavailable: a failure under CI).
func shadowUtil(tb testing.TB, prog, stdin string, args ...string) {
	tb.Helper()
	path, err := cmdrun.LookPath(prog, "/usr/sbin", "/sbin")
	if err != nil {
		sandbox.Unavailable(tb, err.Error())
	}
	c := cmdrun.Cmd{Path: path, Args: args, Timeout: 30 * time.Second}
	if stdin != "" {
		c.Stdin = []byte(stdin)
	}
	if _, err := cmdrun.Run(context.Background(), c); err != nil {
		tb.Fatalf("clienttest: %v", err)
	}
}

// Clock is a time source the tests move (AuthOptions.Clock).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
