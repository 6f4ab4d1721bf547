package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

// Exit statuses of diff, as kubectl diff has them.
const (
	diffNone    = 0
	diffFound   = 1
	diffTrouble = 2
)

func (a *app) diffCommand() *cobra.Command {
	var files fileFlags
	cmd := &cobra.Command{
		Use:   "diff -f FILE|DIR|-",
		Short: "Show what apply would change (a server-side dry run)",
		Long: `Diff asks wcpd to dry-run the apply of every manifest and prints the
field-level changes per resource. For a resource that exists, it also shows
how the host differs from its stored spec right now (drift: "~ host shell:
want /usr/sbin/nologin, have /bin/bash"), which the next reconcile corrects
or, under driftPolicy report, leaves. Exit status: 0 no differences,
1 differences, 2 or more on an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runDiff(cmd.Context(), files) },
	}
	files.register(cmd, "diff")
	return cmd
}

func (a *app) runDiff(ctx context.Context, files fileFlags) error {
	ms, problems := a.loadManifests(files)
	if problems != nil {
		a.printProblems(problems)
		return exitCode(diffTrouble)
	}
	c, err := a.client()
	if err != nil {
		return withCode(diffTrouble, err)
	}
	found, failed := false, false
	newTenants := map[string]bool{}
	for _, m := range dependencyOrder(ms) {
		resp, err := c.Apply(ctx, m.obj, true)
		switch {
		case stopsAll(err):
			return withCode(diffTrouble, err)
		case needsNewTenant(err, m.obj, newTenants):
			r := objRef(m.obj)
			fmt.Fprintf(a.env.Stdout, "--- %s (live)\n+++ %s (applied)\n+ (new resource; not checked: tenant %s is new too)\n",
				r, r, m.obj.TenantName())
			found = true
		case err != nil:
			a.printError(err, objRef(m.obj))
			failed = true
		default:
			noteNewTenant(m.obj, resp, newTenants)
			found = a.printDiff(m.obj, resp) || found
			if resp.Outcome != api.OutcomeCreated {
				drift, err := a.printHostDrift(ctx, c, m.obj)
				found = found || drift
				failed = failed || err != nil
			}
		}
	}
	switch {
	case failed:
		return exitCode(diffTrouble)
	case found:
		return exitCode(diffFound)
	}
	return nil
}

// printDiff prints one resource's differences and reports whether it had any.
func (a *app) printDiff(obj v1alpha1.Object, resp api.ApplyResponse) bool {
	if resp.Outcome == api.OutcomeUnchanged {
		return false
	}
	r := objRef(obj)
	fmt.Fprintf(a.env.Stdout, "--- %s (live)\n+++ %s (applied)\n", r, r)
	if resp.Outcome == api.OutcomeCreated {
		fmt.Fprintln(a.env.Stdout, "+ (new resource)")
		return true
	}
	for _, line := range changeLines(resp) {
		fmt.Fprintln(a.env.Stdout, line)
	}
	return true
}

// printHostDrift prints how the host differs from the stored spec of an
// existing resource. A kind the daemon has no host steps for has nothing to
// show.
func (a *app) printHostDrift(ctx context.Context, c *client.Client, obj v1alpha1.Object) (bool, error) {
	r := objRef(obj)
	rep, err := c.Drift(ctx, obj.GetKind(), obj.GetMeta().Name)
	switch {
	case client.IsNotImplemented(err):
		return false, nil
	case err != nil:
		a.printError(fmt.Errorf("could not observe the host: %w", err), r)
		return false, err
	case len(rep.Differences) == 0:
		return false, nil
	}
	fmt.Fprintf(a.env.Stdout, "--- %s (host)\n+++ %s (stored spec)\n", r, r)
	for _, d := range rep.Differences {
		fmt.Fprintf(a.env.Stdout, "~ host %s\n", d)
	}
	return true, nil
}

// changeLines renders the changes of a configured resource. When the
// server reports it configured without a field change, only labels or
// annotations changed, and it says so rather than show nothing.
func changeLines(resp api.ApplyResponse) []string {
	if len(resp.Changes) == 0 {
		return []string{"~ metadata: labels or annotations changed"}
	}
	out := make([]string, 0, len(resp.Changes))
	for _, ch := range resp.Changes {
		out = append(out, formatChange(ch))
	}
	return out
}

// noteNewTenant remembers a Tenant that a dry run would create.
func noteNewTenant(obj v1alpha1.Object, resp api.ApplyResponse, newTenants map[string]bool) {
	if obj.GetKind() == v1alpha1.KindTenant && resp.Outcome == api.OutcomeCreated {
		newTenants[obj.GetMeta().Name] = true
	}
}

// needsNewTenant reports whether a dry run was refused only because the
// resource's Tenant does not exist yet, while the same input creates it: a
// dry run of each resource alone cannot see the others.
func needsNewTenant(err error, obj v1alpha1.Object, newTenants map[string]bool) bool {
	var ae *client.APIError
	if obj.GetKind() == v1alpha1.KindTenant || !newTenants[obj.TenantName()] ||
		!errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		return false
	}
	for _, fe := range ae.Problem.Errors {
		if fe.Field != "spec.tenant" {
			return false
		}
	}
	return len(ae.Problem.Errors) > 0
}
