package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

type deleteOptions struct {
	files   fileFlags
	dryRun  bool
	wait    bool
	timeout time.Duration
}

func (a *app) deleteCommand() *cobra.Command {
	var o deleteOptions
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE|DIR|-)",
		Short: "Mark resources for deletion; the controller removes them from the host",
		Example: `  wcp delete domain www.acme.test
  wcp delete -f acme.yaml --wait`,
		ValidArgsFunction: a.completeKindName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDelete(cmd.Context(), args, o)
		},
	}
	o.files.register(cmd, "delete")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "check that the deletion would be accepted, delete nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until every resource is gone")
	cmd.Flags().DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "how long --wait waits")
	return cmd
}

func (a *app) runDelete(ctx context.Context, args []string, o deleteOptions) error {
	targets, err := a.deleteTargets(args, o.files)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var marked []waitTarget
	failed := 0
	for _, t := range targets {
		_, err := c.Delete(ctx, t.kind, t.name, o.dryRun)
		if stopsAll(err) {
			return err
		}
		if err != nil {
			a.printError(err, t.ref())
			failed++
			continue
		}
		suffix := ""
		if o.dryRun {
			suffix = " (dry run)"
		}
		fmt.Fprintf(a.env.Stdout, "%s deleted%s\n", t.ref(), suffix)
		marked = append(marked, t)
	}
	if o.wait && !o.dryRun && len(marked) > 0 {
		if err := a.waitGone(ctx, c, marked, o.timeout); err != nil {
			return err
		}
	}
	if failed > 0 {
		return exitCode(1)
	}
	return nil
}

// deleteTargets is KIND NAME... or the resources of the -f manifests, in
// reverse dependency order (what belongs to a tenant before the tenant).
func (a *app) deleteTargets(args []string, files fileFlags) ([]waitTarget, error) {
	if len(files.files) > 0 {
		if len(args) > 0 {
			return nil, errors.New("give either KIND NAME... or -f, not both")
		}
		ms, problems := a.loadManifests(files)
		if problems != nil {
			a.printProblems(problems)
			return nil, exitCode(1)
		}
		var out []waitTarget
		for _, m := range deletionOrder(ms) {
			out = append(out, waitTarget{kind: m.obj.GetKind(), name: m.obj.GetMeta().Name})
		}
		return out, nil
	}
	if len(args) < 2 {
		return nil, errors.New("give KIND NAME... or -f FILE")
	}
	kind, err := v1alpha1.ParseKind(args[0])
	if err != nil {
		return nil, err
	}
	out := make([]waitTarget, 0, len(args)-1)
	for _, name := range args[1:] {
		out = append(out, waitTarget{kind: kind, name: name})
	}
	return out, nil
}
