package clienttest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

// StallLabel makes the stand-in controller stall a resource, with the
// label's value as the reason.
const StallLabel = "test.wcp360.io/stall"

// RunController runs a stand-in controller until tb ends. It does, through the
// real store, what the real controllers' status writes do, without a host:
//
//   - a Tenant is Reconciling (Progressing) the first pass it is seen at a
//     generation, and Ready the next;
//   - a Domain or Database waits (Ready=False, WaitingForTenant) until its
//     Tenant is Ready at the start of a pass, then is Ready;
//   - a resource labelled StallLabel is Stalled, with a Warning event
//     (reason: the label's value) each pass, as a failing step makes;
//   - a resource marked for deletion is removed from the store.
//
// A pass runs at once, then every interval, and whenever the API is asked
// to reconcile something (POST .../reconcile).
func (d *Daemon) RunController(tb testing.TB, every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tb.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if err := d.reconcileAll(ctx); err != nil && ctx.Err() == nil {
				tb.Logf("stand-in controller: %v", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-d.kick:
			}
		}
	}()
}

// stallMessage is the message of a stalled resource's condition and events.
const stallMessage = "the stand-in controller was told to stall"

// reconcileAll is one pass over every resource.
func (d *Daemon) reconcileAll(ctx context.Context) error {
	tenants, err := d.Store.List(ctx, v1alpha1.KindTenant, store.ListOptions{})
	if err != nil {
		return err
	}
	readyTenants := map[string]bool{}
	for _, t := range tenants {
		readyTenants[t.Name] = isReady(t)
	}
	for _, kind := range v1alpha1.Kinds {
		rows, err := d.Store.List(ctx, kind, store.ListOptions{})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := d.reconcileOne(ctx, r, readyTenants); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *Daemon) reconcileOne(ctx context.Context, r store.Resource, readyTenants map[string]bool) error {
	if r.DeletionRequestedAt != nil {
		err := d.Store.Finalize(ctx, r.Kind, r.Name, r.UID)
		if errors.Is(err, store.ErrConflict) {
			return nil // a Tenant whose Domains and Databases are not gone yet
		}
		return err
	}
	conds, observed := desiredStatus(r, readyTenants)
	if reason := r.Labels[StallLabel]; reason != "" {
		if err := d.Store.RecordEvent(ctx, store.Event{Kind: r.Kind, Name: r.Name, Type: store.EventWarning,
			Reason: reason, Message: stallMessage}); err != nil {
			return err
		}
	}
	if sameStatus(r, conds, observed) {
		return nil
	}
	return d.writeStatus(ctx, r, conds, observed)
}

// desiredStatus is the conditions of r and the generation they finish.
func desiredStatus(r store.Resource, readyTenants map[string]bool) ([]v1alpha1.Condition, int64) {
	switch {
	case r.Labels[StallLabel] != "":
		msg := stallMessage
		return []v1alpha1.Condition{
			Condition(v1alpha1.ConditionReady, v1alpha1.ConditionFalse, r.Labels[StallLabel], msg),
			Condition(v1alpha1.ConditionStalled, v1alpha1.ConditionTrue, r.Labels[StallLabel], msg),
		}, r.Generation
	case r.Kind == v1alpha1.KindTenant && r.ObservedGeneration < r.Generation && !hasCondition(r, v1alpha1.ConditionReconciling):
		return reconciling("Progressing", "creating the tenant's user and home"), r.ObservedGeneration
	case r.Kind != v1alpha1.KindTenant && !readyTenants[r.Tenant]:
		return reconciling("WaitingForTenant", "tenant "+r.Tenant+" is not Ready"), r.ObservedGeneration
	}
	return []v1alpha1.Condition{Condition(v1alpha1.ConditionReady, v1alpha1.ConditionTrue, "Succeeded", "")}, r.Generation
}

// reconciling is work in progress: the generation is not observed yet.
func reconciling(reason, msg string) []v1alpha1.Condition {
	return []v1alpha1.Condition{
		Condition(v1alpha1.ConditionReady, v1alpha1.ConditionFalse, reason, msg),
		Condition(v1alpha1.ConditionReconciling, v1alpha1.ConditionTrue, reason, msg),
	}
}

func readStatus(r store.Resource) v1alpha1.Status {
	var st v1alpha1.Status
	_ = json.Unmarshal(r.Status, &st) // an empty or foreign status reads as none
	return st
}

func isReady(r store.Resource) bool {
	st := readStatus(r)
	if st.ObservedGeneration < r.Generation {
		return false
	}
	for _, c := range st.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Status == v1alpha1.ConditionTrue
		}
	}
	return false
}

func hasCondition(r store.Resource, typ string) bool {
	for _, c := range readStatus(r).Conditions {
		if c.Type == typ && c.ObservedGeneration == r.Generation {
			return true
		}
	}
	return false
}

// sameStatus reports whether r already has conds (type, status, reason) about
// its current generation, and observed.
func sameStatus(r store.Resource, conds []v1alpha1.Condition, observed int64) bool {
	st := readStatus(r)
	if st.ObservedGeneration != observed || len(st.Conditions) != len(conds) {
		return false
	}
	for i, c := range conds {
		have := st.Conditions[i]
		if have.Type != c.Type || have.Status != c.Status || have.Reason != c.Reason || have.ObservedGeneration != r.Generation {
			return false
		}
	}
	return true
}
