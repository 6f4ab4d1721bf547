package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/client"
)

// waitTarget is a resource --wait watches, with the generation it must reach.
type waitTarget struct {
	kind       v1alpha1.Kind
	name       string
	generation int64
}

func (t waitTarget) ref() string { return ref(t.kind, t.name) }

// phase is where a watched resource stands.
type phase int

const (
	phasePending phase = iota // keep waiting
	phaseDone                 // Ready (or gone, when waiting for deletion)
	phaseFailed               // Stalled, or deleted while waiting for Ready
)

// observation is one look at a watched resource.
type observation struct {
	phase phase
	state string // "Ready", "Reconciling (Reason: message)", ...
}

// resourceHead is the kind-independent part of a resource that --wait reads.
type resourceHead struct {
	Metadata v1alpha1.ObjectMeta `json:"metadata"`
	Status   v1alpha1.Status     `json:"status"`
}

// probe reads a resource and judges it.
type probe func(ctx context.Context, t waitTarget) observation

// waitReady polls targets until each is Ready at its applied generation,
// Stalled, or the timeout passes; it prints one line per state change.
func (a *app) waitReady(ctx context.Context, c *client.Client, targets []waitTarget, timeout time.Duration) error {
	return a.waitFor(ctx, targets, timeout, "Ready", func(ctx context.Context, t waitTarget) observation {
		obs, _ := lookReady(ctx, c, t)
		return obs
	})
}

// lookReady reads t and judges it against its generation; head is nil when
// the resource could not be read.
func lookReady(ctx context.Context, c *client.Client, t waitTarget) (observation, *resourceHead) {
	head, err := getHead(ctx, c, t)
	if client.IsNotFound(err) {
		return observation{phaseFailed, "NotFound (the resource was deleted)"}, nil
	}
	if err != nil {
		return observation{phasePending, "Unknown (" + err.Error() + ")"}, nil
	}
	return assessReady(head, t.generation), &head
}

// waitGone polls targets until each is gone from the store.
func (a *app) waitGone(ctx context.Context, c *client.Client, targets []waitTarget, timeout time.Duration) error {
	return a.waitFor(ctx, targets, timeout, "deleted", func(ctx context.Context, t waitTarget) observation {
		head, err := getHead(ctx, c, t)
		if client.IsNotFound(err) {
			return observation{phaseDone, "Deleted"}
		}
		if err != nil {
			return observation{phasePending, "Unknown (" + err.Error() + ")"}
		}
		return assessDeletion(head)
	})
}

func getHead(ctx context.Context, c *client.Client, t waitTarget) (resourceHead, error) {
	var head resourceHead
	raw, err := c.Get(ctx, t.kind, t.name)
	if err != nil {
		return head, err
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return head, fmt.Errorf("decode %s: %w", t.ref(), err)
	}
	return head, nil
}

// waitFor is the polling loop shared by waitReady and waitGone.
func (a *app) waitFor(ctx context.Context, targets []waitTarget, timeout time.Duration, goal string, look probe) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := make(map[string]string, len(targets))
	pending := append([]waitTarget(nil), targets...)
	var failed []string
	interval := a.env.PollMin
	for {
		changed := false
		pending, failed, changed = a.pollOnce(wctx, pending, failed, last, look)
		if len(pending) == 0 || wctx.Err() != nil {
			break
		}
		interval = nextInterval(interval, changed, a.env.PollMin, a.env.PollMax)
		if !sleep(wctx, interval) {
			break
		}
	}
	return a.waitResult(ctx, pending, failed, last, timeout, goal)
}

// pollOnce looks at every pending target once, prints state changes and
// returns those still pending.
func (a *app) pollOnce(ctx context.Context, pending []waitTarget, failed []string, last map[string]string, look probe) ([]waitTarget, []string, bool) {
	var still []waitTarget
	changed := false
	for _, t := range pending {
		obs := look(ctx, t)
		if ctx.Err() != nil { // the answer was cut short; keep the last real state
			still = append(still, t)
			continue
		}
		if last[t.ref()] != obs.state {
			last[t.ref()] = obs.state
			changed = true
			fmt.Fprintf(a.env.Stdout, "%s: %s\n", t.ref(), obs.state)
		}
		switch obs.phase {
		case phaseDone:
		case phaseFailed:
			failed = append(failed, t.ref())
		default:
			still = append(still, t)
		}
	}
	return still, failed, changed
}

// nextInterval backs off to max while nothing changes and starts again at min
// after a change.
func nextInterval(cur time.Duration, changed bool, lo, hi time.Duration) time.Duration {
	if changed {
		return lo
	}
	return min(cur*2, hi)
}

// sleep waits d, or less when ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// waitResult turns the end of a wait into an error naming every resource that
// failed or did not get there in time, with its last state.
func (a *app) waitResult(ctx context.Context, pending []waitTarget, failed []string, last map[string]string, timeout time.Duration, goal string) error {
	if len(failed) == 0 && len(pending) == 0 {
		return nil
	}
	for _, r := range failed {
		fmt.Fprintf(a.env.Stderr, "error: %s did not become %s: %s\n", r, goal, last[r])
	}
	if len(pending) > 0 {
		why := fmt.Sprintf("timed out after %s", timeout)
		if ctx.Err() != nil {
			why = "interrupted"
		}
		fmt.Fprintf(a.env.Stderr, "error: %s waiting for %d resource(s) to be %s:\n", why, len(pending), goal)
		for _, t := range pending {
			fmt.Fprintf(a.env.Stderr, "  %s: %s\n", t.ref(), orNone(last[t.ref()]))
		}
	}
	return exitCode(1)
}

// assessReady judges a resource against the generation it was applied at.
func assessReady(h resourceHead, generation int64) observation {
	if generation == 0 {
		generation = h.Metadata.Generation
	}
	if h.Metadata.DeletionTimestamp != nil {
		return observation{phaseFailed, "Terminating (the resource is being deleted)"}
	}
	if c := currentCondition(&h.Status, v1alpha1.ConditionStalled, generation); c != nil && c.Status == v1alpha1.ConditionTrue {
		return observation{phaseFailed, describeCondition("Stalled", c)}
	}
	ready := findCondition(&h.Status, v1alpha1.ConditionReady)
	observed := h.Status.ObservedGeneration >= generation
	if ready != nil && ready.Status == v1alpha1.ConditionTrue && observed && condGeneration(&h.Status, ready) >= generation {
		return observation{phaseDone, "Ready"}
	}
	return observation{phasePending, progress(&h.Status, generation)}
}

// assessDeletion judges a resource that was marked for deletion.
func assessDeletion(h resourceHead) observation {
	if c := currentCondition(&h.Status, v1alpha1.ConditionStalled, h.Metadata.Generation); c != nil && c.Status == v1alpha1.ConditionTrue {
		return observation{phaseFailed, describeCondition("Stalled", c)}
	}
	if h.Metadata.DeletionTimestamp == nil {
		return observation{phasePending, "Present (not marked for deletion)"}
	}
	if c := findCondition(&h.Status, v1alpha1.ConditionReconciling); c != nil && c.Status == v1alpha1.ConditionTrue {
		return observation{phasePending, describeCondition("Terminating", c)}
	}
	if c := findCondition(&h.Status, v1alpha1.ConditionReady); c != nil && c.Status != v1alpha1.ConditionTrue && c.Reason != "" {
		return observation{phasePending, describeCondition("Terminating", c)}
	}
	return observation{phasePending, "Terminating"}
}

// progress says why a resource is not Ready yet.
func progress(st *v1alpha1.Status, generation int64) string {
	if c := findCondition(st, v1alpha1.ConditionReconciling); c != nil && c.Status == v1alpha1.ConditionTrue {
		return describeCondition("Reconciling", c)
	}
	if c := findCondition(st, v1alpha1.ConditionReady); c != nil && c.Status != v1alpha1.ConditionTrue && condGeneration(st, c) >= generation {
		return describeCondition("Reconciling", c)
	}
	if st.ObservedGeneration == 0 && len(st.Conditions) == 0 {
		return "Pending (not reconciled yet)"
	}
	return fmt.Sprintf("Reconciling (generation %d not observed yet, observed %d)", generation, st.ObservedGeneration)
}

// condGeneration is the generation a condition speaks about: its own, or the
// status's when the condition does not say.
func condGeneration(st *v1alpha1.Status, c *v1alpha1.Condition) int64 {
	if c.ObservedGeneration != 0 {
		return c.ObservedGeneration
	}
	return st.ObservedGeneration
}

// currentCondition is the condition of type t if it speaks about generation
// (or later), else nil.
func currentCondition(st *v1alpha1.Status, t string, generation int64) *v1alpha1.Condition {
	c := findCondition(st, t)
	if c == nil || condGeneration(st, c) < generation {
		return nil
	}
	return c
}

// describeCondition is "Label (Reason: message)".
func describeCondition(label string, c *v1alpha1.Condition) string {
	detail := strings.TrimSpace(strings.Join(nonEmpty(c.Reason, c.Message), ": "))
	if detail == "" {
		return label
	}
	return label + " (" + detail + ")"
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
