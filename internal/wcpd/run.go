// Package wcpd is the daemon's command line: serve, config, migrate, version.
// cmd/wcpd is a thin main around Run.
package wcpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/internal/config"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // runtime failure: database unreachable, socket in use...
	ExitUsage   = 2 // bad flags or bad configuration
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error   { return &exitError{code: ExitUsage, err: err} }
func failureErr(err error) error { return &exitError{code: ExitFailure, err: err} }

// Env is the process environment, injectable for tests.
type Env struct {
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	// Signals delivers SIGHUP/SIGTERM/SIGINT to serve; nil means the process's own.
	Signals <-chan os.Signal
}

// Run runs the wcpd command line and returns the exit status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunEnv(ctx, args, stdin, Env{Environ: os.Environ(), Stdout: stdout, Stderr: stderr})
}

// RunEnv is Run with an explicit environment.
func RunEnv(ctx context.Context, args []string, _ io.Reader, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(env.Stderr, "wcpd:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitUsage // cobra's own errors are usage errors
}

type globalFlags struct {
	configPath string
}

func newRoot(env Env) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "wcpd",
		Short:         "WCP360 daemon: stores desired state and reconciles the host to it",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "",
		"configuration file (default /etc/wcp360/wcpd.yaml, or $WCP_CONFIG; optional unless given)")
	root.AddCommand(newServeCmd(g, env), newConfigCmd(g, env), newMigrateCmd(g, env), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "wcpd", version.Version)
		},
	})
	return root
}

// loadConfig loads the configuration named by --config, $WCP_CONFIG or the default path.
func (g *globalFlags) loadConfig(env Env) (config.Config, error) {
	path, required := g.configPath, g.configPath != ""
	if path == "" {
		if p := lookupEnv(env.Environ, "WCP_CONFIG"); p != "" {
			path, required = p, true
		}
	}
	cfg, err := config.Load(config.LoadOptions{Path: path, Required: required, Environ: env.Environ})
	if err != nil {
		return cfg, usageErr(fmt.Errorf("invalid configuration: %w", err))
	}
	return cfg, nil
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

func newConfigCmd(g *globalFlags, env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check or show the effective configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "validate",
		Short: "Check the configuration file and WCP_* environment; exit 2 naming each bad key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.loadConfig(env); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration is valid")
			return nil
		},
	}, &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (defaults, file, environment) as YAML",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(env)
			if err != nil {
				return err
			}
			b, err := cfg.YAML()
			if err != nil {
				return failureErr(err)
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	})
	return cmd
}

func newMigrateCmd(g *globalFlags, env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Apply, revert or show database migrations"}
	withStore := func(ctx context.Context, f func(*store.Store) error) error {
		cfg, err := g.loadConfig(env)
		if err != nil {
			return err
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := f(st); err != nil {
			return failureErr(err)
		}
		return nil
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (under an advisory lock)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), func(st *store.Store) error {
				if err := st.MigrateUp(cmd.Context()); err != nil {
					return err
				}
				return printMigrations(cmd, st)
			})
		},
	}, &cobra.Command{
		Use:   "down [STEPS]",
		Short: "Revert the last STEPS migrations (default 1; 'all' for every one)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			steps := 1
			if len(args) == 1 {
				if args[0] == "all" {
					steps = 0
				} else {
					n, err := strconv.Atoi(args[0])
					if err != nil || n < 1 {
						return usageErr(fmt.Errorf("STEPS must be a positive number or 'all', got %q", args[0]))
					}
					steps = n
				}
			}
			return withStore(cmd.Context(), func(st *store.Store) error {
				if err := st.MigrateDown(cmd.Context(), steps); err != nil {
					return err
				}
				return printMigrations(cmd, st)
			})
		},
	}, &cobra.Command{
		Use:   "status",
		Short: "List migrations and whether each is applied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), func(st *store.Store) error { return printMigrations(cmd, st) })
		},
	})
	return cmd
}

func printMigrations(cmd *cobra.Command, st *store.Store) error {
	states, err := st.MigrationStatus(cmd.Context())
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%-8s %-32s %s\n", "VERSION", "NAME", "APPLIED")
	for _, s := range states {
		applied := "no"
		if s.Applied && s.AppliedAt != nil {
			applied = s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%03d      %-32s %s\n", s.Version, s.Name, applied)
	}
	return nil
}

func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{
		MaxConns: int32(cfg.Database.MaxConns), ConnectTimeout: cfg.Database.ConnectTimeout, //nolint:gosec // validated range
	})
	if err != nil {
		return nil, failureErr(fmt.Errorf("database %s: %w", config.RedactURL(cfg.Database.URL), err))
	}
	return st, nil
}
