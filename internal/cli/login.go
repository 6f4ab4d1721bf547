package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

// serverFlags are the flags of the commands that talk to an HTTPS API
// before there is a login: init --server and login.
type serverFlags struct {
	server        string
	ca            string
	passwordStdin bool
}

func (f *serverFlags) register(cmd *cobra.Command, serverUsage string) {
	cmd.Flags().StringVar(&f.server, "server", "", serverUsage)
	cmd.Flags().StringVar(&f.ca, "ca", "",
		"PEM file of the CA the server's certificate is checked against (default: "+client.DefaultCAFile+
			" when it exists, wcpd's self-signed certificate; else the system's roots)")
	cmd.Flags().BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input instead of asking")
}

// httpsServer checks a --server URL: https://HOST[:PORT], nothing else.
func httpsServer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("--server must be https://HOST:PORT (the api.listen address of wcpd), got %q", raw)
	}
	return "https://" + u.Host, nil
}

// caFile is the CA file to use: --ca (made absolute, as the stored login
// outlives the working directory), else DefaultCAFile if it exists, else
// "" (the system's roots).
func caFile(flag string) (string, error) {
	if flag != "" {
		abs, err := filepath.Abs(flag)
		if err != nil {
			return "", fmt.Errorf("--ca: %w", err)
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("--ca: %w", err)
		}
		return abs, nil
	}
	if _, err := os.Stat(client.DefaultCAFile); err == nil {
		return client.DefaultCAFile, nil
	}
	return "", nil
}

// password reads the password: from standard input (--password-stdin, up
// to the first end of line) or asked on the terminal without echo.
func (a *app) password(fromStdin bool, prompt string) (string, error) {
	var pw string
	if fromStdin {
		data, err := io.ReadAll(io.LimitReader(a.env.Stdin, 4096))
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		pw, _, _ = strings.Cut(string(data), "\n")
		pw = strings.TrimSuffix(pw, "\r")
	} else {
		var err error
		if pw, err = a.askPassword(prompt); err != nil {
			return "", err
		}
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}

func (a *app) askPassword(prompt string) (string, error) {
	if a.env.ReadPassword != nil {
		return a.env.ReadPassword(prompt)
	}
	f, ok := a.env.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) { //nolint:gosec // a descriptor fits an int
		return "", errors.New("no terminal to ask the password on: pipe it in with --password-stdin")
	}
	fmt.Fprint(a.env.Stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd())) //nolint:gosec // a descriptor fits an int
	fmt.Fprintln(a.env.Stderr)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return string(b), nil
}

// ------------------------------------------------------------------ init

func (a *app) initCommand() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Run WCP360's first boot, once: root becomes the first admin",
		Long: `Run WCP360's first boot (POST /api/v1/bootstrap), once: root becomes the
first admin principal, wcpd makes its token signing keys and marks the
system initialised. Until then wcpd serves only /healthz and the first boot.

On the machine, as root, it goes over the local socket (--socket or
` + EnvSocket + `; the stored login is not used) and needs no password. With
--server it goes over the HTTPS API and asks root's password.`,
		Example: `  wcp init                                          # as root, on the machine
  wcp init --server https://panel.example:8443 --ca api.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runInit(cmd.Context(), f) },
	}
	f.register(cmd, "run the first boot over this HTTPS API (https://HOST:PORT) with root's password")
	return cmd
}

func (a *app) runInit(ctx context.Context, f serverFlags) error {
	c := client.New(a.socket)
	var req api.BootstrapRequest
	if f.server != "" {
		server, err := httpsServer(f.server)
		if err != nil {
			return err
		}
		ca, err := caFile(f.ca)
		if err != nil {
			return err
		}
		if c, err = client.NewWith(server, client.Options{CAFile: ca}); err != nil {
			return err
		}
		pw, err := a.password(f.passwordStdin, "root's password on "+hostOf(server)+": ")
		if err != nil {
			return err
		}
		req = api.BootstrapRequest{Username: "root", Password: pw}
	}
	res, err := c.Bootstrap(ctx, req)
	switch {
	case client.IsConflict(err):
		fmt.Fprintf(a.env.Stdout, "WCP360 at %s is initialised already: nothing to do.\n", c.Address())
		return nil
	case client.IsUnauthorized(err) && f.server != "":
		return handled{fmt.Errorf("first boot refused: wrong password for root (%w)", err)}
	case err != nil:
		return fmt.Errorf("first boot: %w", err)
	}
	fmt.Fprintf(a.env.Stdout, "WCP360 at %s initialised: %s is the first admin; wcpd made its token signing keys.\n",
		c.Address(), orNone(res.Admin))
	fmt.Fprintln(a.env.Stdout, "Root on this machine's socket needs no login. To use the API from elsewhere, set api.listen in wcpd's")
	fmt.Fprintln(a.env.Stdout, "configuration and run there: wcp login --server https://HOST:PORT --ca api.crt")
	return nil
}

// hostOf is the host:port of an https:// URL, for prompts.
func hostOf(server string) string {
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		return u.Host
	}
	return server
}

// ----------------------------------------------------------------- login

func (a *app) loginCommand() *cobra.Command {
	var (
		f    serverFlags
		user string
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to wcpd's HTTPS API and store the session for the next commands",
		Long: `Log in to wcpd's HTTPS API with a user's password (checked by PAM on the
server) and store the server, the CA file and the session's tokens in
$XDG_CONFIG_HOME/wcp360/credentials.json (by default ~/.config/wcp360/;
mode 0600). Every later command uses them, renewing the access token as it
expires, unless --socket or ` + EnvSocket + ` names another address. The
session ends with wcp logout, or when it has not been used for a week.`,
		Example: `  wcp login --server https://panel.example:8443 --ca api.crt
  wcp login --server https://panel.example:8443 --user alice
  pass show panel | wcp login --server https://panel.example:8443 --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runLogin(cmd.Context(), f, user) },
	}
	f.register(cmd, "the HTTPS API, https://HOST:PORT (default: the server of the stored login)")
	cmd.Flags().StringVarP(&user, "user", "u", "root", "the user to log in as")
	return cmd
}

func (a *app) runLogin(ctx context.Context, f serverFlags, user string) error {
	path, err := a.credentialsPath()
	if err != nil {
		return err
	}
	// A previous login, to revoke once the new one is stored. One that
	// cannot be used is replaced all the same.
	prev, _, _ := a.loadCredentials()
	if f.server == "" {
		if prev == nil {
			return errors.New("--server is required: the HTTPS API of wcpd, https://HOST:PORT")
		}
		f.server = prev.Server
		if f.ca == "" {
			f.ca = prev.CA
		}
	}
	server, err := httpsServer(f.server)
	if err != nil {
		return err
	}
	ca, err := caFile(f.ca)
	if err != nil {
		return err
	}
	c, err := client.NewWith(server, client.Options{CAFile: ca})
	if err != nil {
		return err
	}
	pw, err := a.password(f.passwordStdin, fmt.Sprintf("Password for %s on %s: ", user, hostOf(server)))
	if err != nil {
		return err
	}
	toks, err := c.Login(ctx, user, pw)
	switch {
	case client.IsUnauthorized(err):
		return handled{fmt.Errorf("login failed: wrong user name or password (%w)", err)}
	case err != nil:
		return fmt.Errorf("login: %w", err)
	}
	if err := saveCredentials(path, &credentials{Server: server, CA: ca, Tokens: toks}); err != nil {
		return err
	}
	if prev != nil && prev.Tokens.RefreshToken != toks.RefreshToken {
		if old, err := client.NewWith(prev.Server, client.Options{CAFile: prev.CA, RefreshToken: prev.Tokens.RefreshToken}); err == nil {
			_ = old.Logout(ctx) // best effort: the old session ends by itself anyway
		}
	}
	fmt.Fprintf(a.env.Stdout, "Logged in to %s as %s.\n", server, describePrincipal(toks.Principal))
	fmt.Fprintf(a.env.Stdout, "The session lasts until %s and is extended as it is used; wcp logout ends it.\n",
		formatTime(toks.RefreshTokenExpiresAt))
	fmt.Fprintf(a.env.Stdout, "Credentials stored in %s.\n", path)
	return nil
}

// describePrincipal is "alice (tenant of acme)", "root (admin)".
func describePrincipal(p api.PrincipalInfo) string {
	s := p.Name + " (" + orNone(p.Role)
	if len(p.Tenants) > 0 {
		s += " of " + strings.Join(p.Tenants, ", ")
	}
	if len(p.Scopes) > 0 {
		s += "; scopes " + strings.Join(p.Scopes, ", ")
	}
	return s + ")"
}

// formatTime is a time for people, in the local zone.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// ---------------------------------------------------------------- logout

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "End the stored login: revoke its session on the server and delete the credentials",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.runLogout(cmd.Context()) },
	}
}

func (a *app) runLogout(ctx context.Context) error {
	path, err := a.credentialsPath()
	if err != nil {
		return err
	}
	// Whoever may have read the file, its session is revoked all the same:
	// no privacy check here.
	creds, err := readCredentials(path, false)
	if creds == nil && err == nil {
		fmt.Fprintln(a.env.Stdout, "Not logged in.")
		return nil
	}
	revokeErr := err // a file wcp cannot read: deleted, but only the server can end its session
	server := "the server"
	if creds != nil {
		server = creds.Server
		c, err := client.NewWith(creds.Server, client.Options{CAFile: creds.CA, RefreshToken: creds.Tokens.RefreshToken})
		if revokeErr = err; err == nil {
			revokeErr = c.Logout(ctx)
			if client.IsUnauthorized(revokeErr) {
				revokeErr = nil // expired or revoked already
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete the credentials: %w", err)
	}
	if revokeErr != nil {
		return fmt.Errorf("deleted %s, but the session could not be revoked on the server (it ends by itself within a week): %w",
			path, revokeErr)
	}
	fmt.Fprintf(a.env.Stdout, "Logged out of %s; deleted %s.\n", server, path)
	return nil
}

// ---------------------------------------------------------------- whoami

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Print who wcp's requests act as, and where they go",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			tw := newTable(a.env.Stdout)
			row(tw, "name:", p.Name)
			row(tw, "role:", orNone(p.Role))
			if len(p.Tenants) > 0 {
				row(tw, "tenants:", strings.Join(p.Tenants, ", "))
			}
			if len(p.Scopes) > 0 {
				row(tw, "scopes:", strings.Join(p.Scopes, ", "))
			}
			row(tw, "via:", orNone(p.Via))
			row(tw, "server:", c.Address())
			return tw.Flush()
		},
	}
}
