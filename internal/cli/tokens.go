package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/auth/rbac"
)

// ----------------------------------------------------------------- token

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens for automation",
		Long: `API tokens are long-lived bearer tokens for scripts and CI: named, scoped,
revocable. A token acts as its principal (by default, you), narrowed to its
scopes. Send it as "Authorization: Bearer <token>" to the HTTPS API.

Scopes: ` + strings.Join(rbac.Scopes(), ", ") + `.`,
	}
	cmd.AddCommand(a.tokenCreateCommand(), a.tokenListCommand(), a.tokenRevokeCommand())
	return cmd
}

func (a *app) tokenCreateCommand() *cobra.Command {
	var (
		req    api.APITokenRequest
		ttl    time.Duration
		scopes []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --scope SCOPE [--scope SCOPE...]",
		Short: "Create an API token; its secret is printed once, on standard output",
		Example: `  wcp token create ci --scope domains:write --ttl 720h
  TOKEN=$(wcp token create backup --scope read --principal backup)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name, req.Scopes = args[0], scopes
			if ttl < 0 {
				return fmt.Errorf("--ttl must be positive, got %s", ttl)
			}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			return a.runTokenCreate(cmd.Context(), req)
		},
	}
	cmd.Flags().StringArrayVar(&scopes, "scope", nil, "what the token may do (repeatable): "+strings.Join(rbac.Scopes(), ", "))
	cmd.Flags().StringVar(&req.Principal, "principal", "", "whom the token acts as (default: you; others' need admin)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h (default: until revoked)")
	_ = cmd.MarkFlagRequired("scope")
	_ = cmd.RegisterFlagCompletionFunc("scope", cobra.FixedCompletions(rbac.Scopes(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) runTokenCreate(ctx context.Context, req api.APITokenRequest) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	t, err := c.CreateAPIToken(ctx, req)
	if err != nil {
		return err
	}
	expires := "never expires"
	if t.ExpiresAt != nil {
		expires = "expires " + formatTime(*t.ExpiresAt)
	}
	// The secret alone on standard output, so that $(wcp token create ...)
	// captures it; the rest on standard error.
	fmt.Fprintf(a.env.Stderr, "API token %s created for %s (scopes %s; %s).\n",
		t.Name, t.Principal, strings.Join(t.Scopes, ", "), expires)
	fmt.Fprintln(a.env.Stdout, t.Token)
	fmt.Fprintln(a.env.Stderr, "Store it now: it is not shown again (wcp token revoke "+t.Name+" ends it).")
	return nil
}

func (a *app) tokenListCommand() *cobra.Command {
	var principal string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.ListAPITokens(cmd.Context(), principal)
			if err != nil {
				return err
			}
			if len(ts) == 0 {
				fmt.Fprintln(a.env.Stderr, "No API tokens.")
				return nil
			}
			tw := newTable(a.env.Stdout)
			row(tw, "NAME", "PRINCIPAL", "SCOPES", "AGE", "EXPIRES", "LAST USED", "CREATED BY")
			for _, t := range ts {
				row(tw, t.Name, t.Principal, strings.Join(t.Scopes, ","), a.age(&t.CreatedAt),
					a.until(t.ExpiresAt), a.since(t.LastUsedAt), orNone(t.CreatedBy))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&principal, "principal", "", "list this principal's tokens (default: yours; others' need admin)")
	return cmd
}

// until is "in 29d", "expired" or "never".
func (a *app) until(t *time.Time) string {
	if t == nil {
		return "never"
	}
	d := t.Sub(a.env.Now())
	if d <= 0 {
		return "expired"
	}
	return "in " + humanAge(d)
}

// since is "5m ago" or "never".
func (a *app) since(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return a.age(t) + " ago"
}

func (a *app) tokenRevokeCommand() *cobra.Command {
	var principal string
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API token: it is refused from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeAPIToken(cmd.Context(), args[0], principal); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "API token %s revoked.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&principal, "principal", "", "the token's principal (default: you; others' need admin)")
	return cmd
}

// ------------------------------------------------------------- principal

func (a *app) principalCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "principal",
		Short: "Manage who may log in and what they may do (admins only)",
		Long: `A principal is someone who may log in (a local user, its password checked
by PAM) or own API tokens. Roles: admin (everything), tenant (one tenant's
domains and databases, its status but not its limits), reseller (the
tenants it owns).`,
	}
	cmd.AddCommand(a.principalApplyCommand(), a.principalListCommand(), a.principalDeleteCommand())
	return cmd
}

func (a *app) principalApplyCommand() *cobra.Command {
	var spec api.PrincipalSpec
	cmd := &cobra.Command{
		Use:   "apply NAME --role ROLE [--tenant TENANT...]",
		Short: "Create or update a principal",
		Example: `  wcp principal apply alice --role tenant --tenant acme
  wcp principal apply bob --role reseller --tenant acme --tenant globex
  wcp principal apply alice --role tenant --tenant acme --disabled`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			_, created, err := c.PutPrincipal(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			outcome := "configured"
			if created {
				outcome = "created"
			}
			fmt.Fprintf(a.env.Stdout, "principal/%s %s\n", args[0], outcome)
			return nil
		},
	}
	cmd.Flags().StringVar(&spec.Role, "role", "", "admin, tenant or reseller")
	cmd.Flags().StringArrayVar(&spec.Tenants, "tenant", nil, "the tenant of a tenant principal, the tenants of a reseller (repeatable)")
	cmd.Flags().BoolVar(&spec.Disabled, "disabled", false, "refuse its logins, sessions and API tokens")
	_ = cmd.MarkFlagRequired("role")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(
		[]string{string(rbac.RoleAdmin), string(rbac.RoleTenant), string(rbac.RoleReseller)}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) principalListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the principals",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ps, err := c.ListPrincipals(cmd.Context())
			if err != nil {
				return err
			}
			tw := newTable(a.env.Stdout)
			row(tw, "NAME", "ROLE", "TENANTS")
			for _, p := range ps {
				row(tw, p.Name, p.Role, orNone(strings.Join(p.Tenants, ",")))
			}
			return tw.Flush()
		},
	}
}

func (a *app) principalDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a principal with its sessions and API tokens",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeletePrincipal(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "principal/%s deleted\n", args[0])
			return nil
		},
	}
}
