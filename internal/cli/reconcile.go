package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/client"
)

type reconcileOptions struct {
	wait    bool
	timeout time.Duration
}

func (a *app) reconcileCommand() *cobra.Command {
	var o reconcileOptions
	cmd := &cobra.Command{
		Use:   "reconcile KIND NAME",
		Short: "Ask wcpd to reconcile a resource now, ahead of its resync",
		Long: `Reconcile asks the resource's controller to converge it now, as it would on a
change or at the next resync: it looks at the host, corrects drift (or only
reports it, where the tenant's driftPolicy says report) and retries a failed
step without waiting out its backoff. The spec is not touched and no new
generation is made. Use it after fixing by hand what stalled a resource, or to
have drift found now ("wcp describe" shows it live under "Host (live)").

With --wait, wcp waits until the resource is Ready or Stalled. A Stalled
condition from before the request counts only once the controller has failed
again since. A resource that was Ready and is still in sync leaves no trace of
the reconcile, so --wait returns at once for it.`,
		Example: `  wcp describe tenant acme          # Host (live): shell: want /usr/sbin/nologin, have /bin/bash
  wcp reconcile tenant acme --wait`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: a.completeKindName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runReconcile(cmd.Context(), args[0], args[1], o)
		},
	}
	cmd.Flags().BoolVar(&o.wait, "wait", false, "wait until the resource is Ready or Stalled")
	cmd.Flags().DurationVar(&o.timeout, "timeout", defaultWaitTimeout, "how long --wait waits")
	return cmd
}

func (a *app) runReconcile(ctx context.Context, kindArg, name string, o reconcileOptions) error {
	kind, err := v1alpha1.ParseKind(kindArg)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.Reconcile(ctx, kind, name)
	switch {
	case errors.Is(err, client.ErrUnreachable):
		return err
	case err != nil:
		a.printError(err, ref(kind, name))
		return exitCode(1)
	}
	fmt.Fprintf(a.env.Stdout, "%s reconcile requested\n", ref(kind, name))
	if !o.wait {
		return nil
	}
	t := waitTarget{kind: kind, name: name, generation: resourceGeneration(resp.Object)}
	return a.waitFor(ctx, []waitTarget{t}, o.timeout, "Ready", func(ctx context.Context, t waitTarget) observation {
		return lookReconciled(ctx, c, t, resp.RequestedAt)
	})
}

// lookReconciled judges a resource after a reconcile request made at
// requested (the daemon's clock): as a wait for Ready does, except that a
// Stalled condition from before the request is not the answer until the
// controller has failed again since (it then records a Warning event).
func lookReconciled(ctx context.Context, c *client.Client, t waitTarget, requested time.Time) observation {
	obs, head := lookReady(ctx, c, t)
	if obs.phase != phaseFailed || head == nil {
		return obs
	}
	stalled := currentCondition(&head.Status, v1alpha1.ConditionStalled, t.generation)
	if stalled == nil || stalled.Status != v1alpha1.ConditionTrue || !stalled.LastTransitionTime.Before(requested) {
		return obs
	}
	if failedSince(ctx, c, t, requested) {
		return obs
	}
	return observation{phasePending, describeCondition("Stalled", stalled) + ", from before the request; waiting for the controller to look again"}
}

// failedSince reports whether the resource has a Warning event seen at or
// after since. Events that cannot be read say nothing.
func failedSince(ctx context.Context, c *client.Client, t waitTarget, since time.Time) bool {
	evs, err := c.Events(ctx, t.kind, t.name)
	if err != nil {
		return false
	}
	for _, e := range evs {
		if e.Type == "Warning" && !e.LastSeen.Before(since) {
			return true
		}
	}
	return false
}
