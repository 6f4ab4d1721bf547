package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
)

// defaultWaitTimeout bounds --wait unless --timeout says otherwise.
const defaultWaitTimeout = 5 * time.Minute

type applyOptions struct {
	files   fileFlags
	dryRun  bool
	wait    bool
	timeout time.Duration
}

func (a *app) applyCommand() *cobra.Command {
	var o applyOptions
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update resources from manifests",
		Long: `Apply decodes and validates every manifest first; if any document is wrong,
it prints every problem and sends nothing. Then it applies Tenants, Domains and
Databases in that order and prints what happened to each.`,
		Example: `  wcp apply -f acme.yaml
  wcp apply -f manifests/ --wait
  cat site.yaml | wcp apply -f - --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runApply(cmd.Context(), o) },
	}
	o.files.register(cmd, "apply")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "ask the server what would change, change nothing")
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until every applied resource is Ready")
	cmd.Flags().DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "how long --wait waits")
	return cmd
}

func (a *app) runApply(ctx context.Context, o applyOptions) error {
	ms, problems := a.loadManifests(o.files)
	if problems != nil {
		a.printProblems(problems)
		return exitCode(1)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	targets, failed, err := a.applyAll(ctx, c, dependencyOrder(ms), o.dryRun)
	if err != nil {
		return err
	}
	if failed > 0 {
		fmt.Fprintf(a.env.Stderr, "%d of %d resources failed to apply\n", failed, len(ms))
	}
	if o.wait && !o.dryRun && len(targets) > 0 {
		if err := a.waitReady(ctx, c, targets, o.timeout); err != nil {
			return err
		}
	}
	if failed > 0 {
		return exitCode(1)
	}
	return nil
}

// applyAll applies ms in order, going on after a refused one; it stops only
// when wcpd cannot be reached or refuses the credentials (stopsAll). It returns what to wait for and how many failed.
func (a *app) applyAll(ctx context.Context, c *client.Client, ms []manifest, dryRun bool) ([]waitTarget, int, error) {
	var targets []waitTarget
	failed := 0
	newTenants := map[string]bool{} // dry run: tenants that would be created
	for _, m := range ms {
		resp, err := a.applyOne(ctx, c, m.obj, dryRun)
		switch {
		case stopsAll(err):
			return nil, 0, err
		case dryRun && needsNewTenant(err, m.obj, newTenants):
			fmt.Fprintf(a.env.Stdout, "%s created (dry run; not checked: tenant %s is new too)\n", objRef(m.obj), m.obj.TenantName())
		case err != nil:
			a.printError(err, objRef(m.obj))
			failed++
		default:
			noteNewTenant(m.obj, resp, newTenants)
			targets = append(targets, waitTarget{kind: m.obj.GetKind(), name: m.obj.GetMeta().Name, generation: appliedGeneration(resp)})
		}
	}
	return targets, failed, nil
}

// applyOne applies one object and prints the outcome; with dry run, also the
// changes the server reported for an existing resource.
func (a *app) applyOne(ctx context.Context, c *client.Client, obj v1alpha1.Object, dryRun bool) (api.ApplyResponse, error) {
	resp, err := c.Apply(ctx, obj, dryRun)
	if err != nil {
		return resp, err
	}
	suffix := ""
	if dryRun || resp.DryRun {
		suffix = " (dry run)"
	}
	fmt.Fprintf(a.env.Stdout, "%s %s%s\n", objRef(obj), resp.Outcome, suffix)
	if dryRun && resp.Outcome == api.OutcomeConfigured {
		for _, line := range changeLines(resp) {
			fmt.Fprintln(a.env.Stdout, "  "+line)
		}
	}
	return resp, nil
}

// appliedGeneration is the generation the apply left the resource at.
func appliedGeneration(resp api.ApplyResponse) int64 { return resourceGeneration(resp.Object) }

// resourceGeneration is metadata.generation of a resource the server sent
// (0 when it cannot be read: wait for the current one).
func resourceGeneration(obj json.RawMessage) int64 {
	var head struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
	}
	if len(obj) == 0 || json.Unmarshal(obj, &head) != nil {
		return 0
	}
	return head.Metadata.Generation
}
