// Package cli is the wcp command line: kubectl-like apply, get, describe,
// delete, diff, rollback, reconcile and validate of WCP360 manifests against
// wcpd's REST API, and the first boot, login, API tokens and principals.
//
// Run builds a fresh command tree for every call and reads nothing global,
// so tests call it with buffers and an injected environment.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/internal/client"
)

// EnvSocket names the environment variable that overrides the default socket.
const EnvSocket = "WCP_SOCKET"

// EnvToken names the environment variable holding a bearer token for
// automation (an API token): sent instead of the stored login's tokens,
// never refreshed.
const EnvToken = "WCP_TOKEN"

// Env is everything the command line takes from its process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
	// Now is the clock used for ages and timeouts shown to the user.
	Now func() time.Time
	// PollMin and PollMax bound the interval of --wait polling; zero means 250ms and 1s.
	PollMin, PollMax time.Duration
	// ReadPassword asks for a password without echoing it, showing prompt;
	// nil reads it from Stdin when that is a terminal.
	ReadPassword func(prompt string) (string, error)
}

// Run runs wcp with args (without the program name) and returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunEnv(ctx, args, Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv, Now: time.Now})
}

// RunEnv is Run with an explicit environment.
func RunEnv(ctx context.Context, args []string, env Env) int {
	a := newApp(env)
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	err := root.ExecuteContext(ctx)
	return a.exitStatus(err)
}

// app is the state of one Run: the environment and the global flags.
type app struct {
	env    Env
	socket string
	// socketSet: --socket was given or WCP_SOCKET is set; the stored login
	// is not used.
	socketSet func() bool
}

func newApp(env Env) *app {
	if env.Stdin == nil {
		env.Stdin = eofReader{}
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.PollMin <= 0 {
		env.PollMin = 250 * time.Millisecond
	}
	if env.PollMax < env.PollMin {
		env.PollMax = max(time.Second, env.PollMin)
	}
	return &app{env: env}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// client returns the client commands talk to wcpd with (commands that do
// not talk to wcpd never call it); the first of these wins:
//
//  1. --socket or WCP_SOCKET: that address, without the stored login;
//  2. the login wcp login stored: its HTTPS server and tokens, renewed as
//     needed (and saved again);
//  3. the default socket, where root needs no login.
//
// WCP_TOKEN, when set, is the bearer token instead of the stored login's.
func (a *app) client() (*client.Client, error) {
	bearer := a.env.Getenv(EnvToken)
	if a.socketSet != nil && a.socketSet() {
		return addressClient(a.socket, bearer)
	}
	creds, path, err := a.loadCredentials()
	switch {
	case errors.Is(err, errNoConfigDir):
		return addressClient(a.socket, bearer)
	case err != nil:
		return nil, err
	case creds == nil:
		return addressClient(a.socket, bearer)
	case bearer != "":
		return client.NewWith(creds.Server, client.Options{CAFile: creds.CA, Token: bearer})
	}
	return sessionClient(path, creds)
}

// addressClient is a client for a socket or URL given without a login:
// an https:// server's certificate is checked against DefaultCAFile when
// it exists, else the system's roots (SSL_CERT_FILE).
func addressClient(addr, bearer string) (*client.Client, error) {
	if bearer == "" && !strings.HasPrefix(addr, "https://") {
		return client.New(addr), nil
	}
	var o client.Options
	if strings.HasPrefix(addr, "https://") {
		ca, err := caFile("")
		if err != nil {
			return nil, err
		}
		o.CAFile = ca
	}
	o.Token = bearer
	return client.NewWith(addr, o)
}

func (a *app) defaultSocket() string {
	if s := a.env.Getenv(EnvSocket); s != "" {
		return s
	}
	return client.DefaultSocket
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "wcp",
		Short: "wcp controls WCP360: apply, inspect and delete tenants, domains and databases",
		Long: `wcp controls WCP360: apply, inspect and delete tenants, domains and databases.

Where wcp sends its requests (the first that applies wins):
  1. --socket, or the ` + EnvSocket + ` environment variable: that unix socket (or
     http(s):// URL), without the stored login;
  2. the login stored by wcp login ($XDG_CONFIG_HOME/wcp360/credentials.json,
     by default ~/.config/wcp360/credentials.json): its HTTPS server, with its
     tokens, renewed as they expire;
  3. the local socket ` + client.DefaultSocket + `, where root needs no login.
` + EnvToken + `, when set, is sent as the bearer token (an API token, for automation)
instead of the stored login's tokens.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.socket, "socket", a.defaultSocket(),
		"wcpd API address: a unix socket path or an http(s):// URL (env "+EnvSocket+"); ignores the stored login")
	a.socketSet = func() bool {
		return root.PersistentFlags().Changed("socket") || a.env.Getenv(EnvSocket) != ""
	}
	root.AddCommand(
		a.initCommand(),
		a.loginCommand(),
		a.logoutCommand(),
		a.whoamiCommand(),
		a.tokenCommand(),
		a.principalCommand(),
		a.applyCommand(),
		a.getCommand(),
		a.describeCommand(),
		a.deleteCommand(),
		a.rollbackCommand(),
		a.reconcileCommand(),
		a.diffCommand(),
		a.validateCommand(),
		a.metricsCommand(),
		a.versionCommand(),
	)
	return root
}

// exitError carries an exit status. A nil err means the problem was already
// printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitCode ends the command with code after its problems were printed.
func exitCode(code int) error { return &exitError{code: code} }

// withCode ends the command with code and prints err.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// exitStatus prints err (unless it was printed already) and maps it to a status.
func (a *app) exitStatus(err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		a.printError(err, "")
	}
	return code
}

// stopsAll reports whether err ends a command that works through several
// resources: wcpd is unreachable, or refuses the credentials (401) or
// its certificate is not trusted, so that every next request would fail
// the same way.
func stopsAll(err error) bool {
	return errors.Is(err, client.ErrUnreachable) || client.IsUnauthorized(err) || client.IsUntrustedCertificate(err)
}
