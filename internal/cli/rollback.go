package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

type rollbackOptions struct {
	revision int64
	dryRun   bool
	wait     bool
	timeout  time.Duration
}

func (a *app) rollbackCommand() *cobra.Command {
	var o rollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback KIND NAME --to-revision N",
		Short: "Apply the spec of an earlier revision again, as a new generation",
		Long: `Rollback re-applies the spec of revision N (the numbers "wcp describe KIND NAME"
lists under Revisions) as a new generation, recorded as a new revision. Labels
and annotations stay as they are. Rolling back to a revision whose spec is the
current one changes nothing. The old spec is validated again and must still
fit: a hostname another domain serves now is refused, as an apply would be.`,
		Example: `  wcp describe domain www.acme.test
  wcp rollback domain www.acme.test --to-revision 2 --dry-run
  wcp rollback domain www.acme.test --to-revision 2 --wait`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeKindName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRollback(cmd.Context(), args[0], args[1], o)
		},
	}
	cmd.Flags().Int64Var(&o.revision, "to-revision", 0, "the revision number to go back to (see wcp describe)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "ask the server what would change, change nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until the resource is Ready at the new generation")
	cmd.Flags().DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "how long --wait waits")
	_ = cmd.MarkFlagRequired("to-revision")                                // only fails for a flag that does not exist
	_ = cmd.RegisterFlagCompletionFunc("to-revision", a.completeRevisions) // likewise
	return cmd
}

func (a *app) runRollback(ctx context.Context, kindArg, name string, o rollbackOptions) error {
	kind, err := v1alpha1.ParseKind(kindArg)
	if err != nil {
		return err
	}
	if o.revision < 1 {
		return fmt.Errorf("--to-revision must be a revision number (1, 2, ...; see wcp describe %s %s), got %d",
			kindArg, name, o.revision)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.Rollback(ctx, kind, name, o.revision, o.dryRun)
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return err
	case err != nil:
		a.printError(err, ref(kind, name))
		return exitCode(1)
	}
	a.printRollback(ref(kind, name), o.revision, resp)
	if o.wait && !o.dryRun {
		return a.waitReady(ctx, c, []waitTarget{{kind: kind, name: name, generation: appliedGeneration(resp)}}, o.timeout)
	}
	return nil
}

// printRollback prints what a rollback did (or, dry run, would do) and every
// field it changed.
func (a *app) printRollback(r string, revision int64, resp api.ApplyResponse) {
	switch {
	case resp.Outcome == api.OutcomeUnchanged && resp.DryRun:
		fmt.Fprintf(a.env.Stdout, "%s unchanged (dry run; revision %d is the current spec)\n", r, revision)
	case resp.Outcome == api.OutcomeUnchanged:
		fmt.Fprintf(a.env.Stdout, "%s unchanged (revision %d is the current spec)\n", r, revision)
	case resp.DryRun:
		fmt.Fprintf(a.env.Stdout, "%s rolled back to revision %d (dry run; would be generation %d)\n", r, revision, appliedGeneration(resp))
	default:
		fmt.Fprintf(a.env.Stdout, "%s rolled back to revision %d (generation %d)\n", r, revision, appliedGeneration(resp))
	}
	for _, ch := range resp.Changes {
		fmt.Fprintln(a.env.Stdout, "  "+formatChange(ch))
	}
}

// completeRevisions offers the revision numbers of KIND NAME for --to-revision.
func (a *app) completeRevisions(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) != 2 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	kind, err := v1alpha1.ParseKind(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	revs, err := c.Revisions(cmd.Context(), kind, args[1])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]string, 0, len(revs))
	for _, r := range revs {
		out = append(out, strconv.FormatInt(r.Number, 10)+"\tgeneration "+strconv.FormatInt(r.Generation, 10)+", "+orDash(r.Actor))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}
