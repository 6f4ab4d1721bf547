// Package controllers holds one controller per resource kind. Each reconciles
// a single key from the current state in the store: it checks dependencies,
// runs its ordered steps (the host drivers of later releases plug in here as
// steps), finalizes deletions, and rebuilds the resource's status from what it
// observed.
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Store is what the controllers need from the store.
type Store interface {
	Get(ctx context.Context, kind v1alpha1.Kind, name string) (store.Resource, error)
	ListKeys(ctx context.Context, kind v1alpha1.Kind, node string) ([]string, error)
	List(ctx context.Context, kind v1alpha1.Kind, opts store.ListOptions) ([]store.Resource, error)
	UpdateStatus(ctx context.Context, u store.StatusUpdate) (store.Resource, error)
	Finalize(ctx context.Context, kind v1alpha1.Kind, name, uid string) error
	RecordEvent(ctx context.Context, e store.Event) error
}

// Step is one ordered part of a reconcile that owns a piece of the host (the
// Linux account, the nginx vhost, the PHP-FPM master...). A reconcile reads as
// observe → plan → apply: Observe lists how the host differs from the spec,
// and Apply, called only when it found something, makes the host match.
type Step interface {
	Name() string
	// Observe compares the host with row's spec without changing anything.
	// No differences means the step is converged.
	Observe(ctx context.Context, row store.Resource) ([]host.Difference, error)
	// Apply converges the host for row. It saves what it will touch first
	// and restores it when it fails part-way, so a failure leaves the host
	// as it was; it returns the id of that snapshot ("" when it took none).
	Apply(ctx context.Context, row store.Resource, diffs []host.Difference) (snapshot string, err error)
	// Remove undoes what Apply created, for a deletion.
	Remove(ctx context.Context, row store.Resource) error
}

// PartReporter is a Step that reports its own condition (Vhost, PHP, ...),
// so a resource converged by several parts says which part failed.
type PartReporter interface {
	// ConditionType is the condition the step owns.
	ConditionType() string
}

// StatusReporter is a Step that adds what it observed to the status
// (a tenant's uid and home, say).
type StatusReporter interface {
	ReportStatus(ctx context.Context, row store.Resource, st *v1alpha1.Status) error
}

// Scheduler is a Step with work that falls due later without any change
// to the spec (a certificate's renewal): the controller runs the resource
// again at NextRun (reconcile's RequeueAfter), and the step's Observe then
// reports that work as Due differences.
type Scheduler interface {
	// NextRun is when the step has work next; the zero time for none.
	NextRun(ctx context.Context, row store.Resource) (time.Time, error)
}

// FailureReporter is a Step that adds to the status what its failure
// means (the CA's problem, the certificate that keeps serving), besides
// the condition every failed step gets.
type FailureReporter interface {
	ReportFailure(ctx context.Context, row store.Resource, st *v1alpha1.Status, err error)
}

// EventNamer is a Step whose work has events of its own (a certificate
// Issued or Renewed, an order the CA refused) instead of the generic
// Changed and StepFailed.
type EventNamer interface {
	// AppliedEvent names what a successful Apply of diffs did (a Normal
	// event); ok false leaves the diffs to the Changed event.
	AppliedEvent(ctx context.Context, row store.Resource, diffs []host.Difference) (e StepEvent, ok bool)
	// FailedEvent names a failure of the step (a Warning event); ok false
	// records StepFailed.
	FailedEvent(err error) (e StepEvent, ok bool)
}

// StepEvent is the reason and message of an EventNamer's event.
type StepEvent struct{ Reason, Message string }

// Options configure the controllers.
type Options struct {
	Store  Store
	Node   string
	Logger *slog.Logger
	// Clock is the time source (time.Now in production).
	Clock func() time.Time
	// Enqueue wakes another resource's controller (a tenant's children when it becomes Ready).
	Enqueue func(kind v1alpha1.Kind, name string)
	// Steps per kind, in order.
	Steps map[v1alpha1.Kind][]Step
	// DependencyRetry is how long a resource waits before looking at its tenant again.
	DependencyRetry time.Duration
}

// Controller is a reconciler with what the runtime needs to run it.
type Controller struct {
	Name       string
	Kind       v1alpha1.Kind
	Reconciler reconcile.Reconciler
	// Lister names every resource of the kind on this node, for resyncs.
	Lister func(ctx context.Context) ([]string, error)
}

// New returns the controllers of every kind, in dependency order.
func New(opts Options) []Controller {
	if opts.Clock == nil {
		opts.Clock = time.Now //nolint:forbidigo // the default of the injected clock
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Enqueue == nil {
		opts.Enqueue = func(v1alpha1.Kind, string) {}
	}
	if opts.DependencyRetry == 0 {
		opts.DependencyRetry = 2 * time.Second
	}
	out := make([]Controller, 0, len(v1alpha1.Kinds))
	for _, k := range v1alpha1.Kinds {
		r := &resourceReconciler{kind: k, opts: opts, steps: opts.Steps[k]}
		out = append(out, Controller{
			Name:       strings.ToLower(string(k)),
			Kind:       k,
			Reconciler: r,
			Lister:     func(ctx context.Context) ([]string, error) { return opts.Store.ListKeys(ctx, k, opts.Node) },
		})
	}
	return out
}

// Condition reasons.
const (
	ReasonConverged        = "Converged"
	ReasonProgressing      = "Progressing"
	ReasonWaitingForTenant = "WaitingForTenant"
	ReasonStepFailed       = "StepFailed"
	ReasonDeleting         = "Deleting"
	ReasonDriftDetected    = "DriftDetected"
	ReasonDriftReported    = "DriftReported"
	ReasonDriftCorrected   = "DriftCorrected"
	ReasonInSync           = "InSync"
	ReasonChanged          = "Changed"
)

type resourceReconciler struct {
	kind  v1alpha1.Kind
	opts  Options
	steps []Step
}

// Reconcile converges one resource from its current stored state.
func (r *resourceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// One reconcile reads each row once: the tenant that the checks, the
	// drift policy and every step of a domain look at is one read.
	ctx = store.WithReadCache(ctx)
	row, err := r.opts.Store.Get(ctx, r.kind, req.Name)
	if errors.Is(err, store.ErrNotFound) {
		return reconcile.Result{}, nil // deleted meanwhile: nothing to do
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if row.Node != "" && row.Node != r.opts.Node {
		return reconcile.Result{}, nil // another wcpd's resource
	}
	if row.DeletionRequestedAt != nil {
		return r.finalize(ctx, row)
	}
	st, err := decodeStatus(row.Status)
	if err != nil {
		return reconcile.Result{}, reconcile.Terminal(err)
	}
	if r.kind != v1alpha1.KindTenant {
		if waitErr := r.checkTenant(ctx, row); waitErr != nil {
			return r.waitForTenant(ctx, row, st, waitErr)
		}
	}
	res, err := r.converge(ctx, row, st)
	if err != nil {
		return res, err
	}
	return r.requeue(ctx, row)
}

// requeue asks to run the resource again when the first Scheduler step
// has work (a failure to tell is logged: the periodic resync catches up).
func (r *resourceReconciler) requeue(ctx context.Context, row store.Resource) (reconcile.Result, error) {
	var next time.Time
	for _, s := range r.steps {
		sc, ok := s.(Scheduler)
		if !ok {
			continue
		}
		at, err := sc.NextRun(ctx, row)
		if err != nil {
			r.log(ctx).Warn("cannot tell when the step has work next; the resync will look", "step", s.Name(), "err", err)
			continue
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if next.IsZero() {
		return reconcile.Result{}, nil
	}
	// At least a second: a time already past runs again at once, not in a loop.
	return reconcile.Result{RequeueAfter: max(next.Sub(r.opts.Clock()), time.Second)}, nil
}

// dueNow reports whether a Scheduler step has work due now.
func (r *resourceReconciler) dueNow(ctx context.Context, row store.Resource) bool {
	now := r.opts.Clock()
	for _, s := range r.steps {
		if sc, ok := s.(Scheduler); ok {
			if at, err := sc.NextRun(ctx, row); err == nil && !at.IsZero() && !at.After(now) {
				return true
			}
		}
	}
	return false
}

// checkTenant returns an error saying why the owning tenant is not Ready yet.
func (r *resourceReconciler) checkTenant(ctx context.Context, row store.Resource) error {
	t, err := r.opts.Store.Get(ctx, v1alpha1.KindTenant, row.Tenant)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("tenant %s does not exist", row.Tenant)
	}
	if err != nil {
		return err
	}
	if t.DeletionRequestedAt != nil {
		return fmt.Errorf("tenant %s is being deleted", row.Tenant)
	}
	ts, err := decodeStatus(t.Status)
	if err != nil {
		return err
	}
	if !conditions.IsTrue(ts.Conditions, v1alpha1.ConditionReady) || ts.ObservedGeneration != t.Generation {
		return fmt.Errorf("tenant %s is not Ready yet", row.Tenant)
	}
	return nil
}

func (r *resourceReconciler) waitForTenant(ctx context.Context, row store.Resource, st v1alpha1.Status, why error) (reconcile.Result, error) {
	now := r.opts.Clock().UTC()
	prev, had := conditions.Get(st.Conditions, v1alpha1.ConditionReconciling)
	st.Conditions = conditions.MarkReconciling(st.Conditions, row.Generation, ReasonWaitingForTenant, why.Error(), now)
	if err := r.writeStatus(ctx, row, st, st.ObservedGeneration); err != nil {
		return reconcile.Result{}, err
	}
	if !had || prev.Reason != ReasonWaitingForTenant {
		r.event(ctx, row, "Normal", ReasonWaitingForTenant, why.Error())
	}
	return reconcile.Result{}, reconcile.Waiting(why, r.opts.DependencyRetry)
}

func (r *resourceReconciler) converge(ctx context.Context, row store.Resource, st v1alpha1.Status) (reconcile.Result, error) {
	now := r.opts.Clock().UTC()
	// The host was converged for this very spec before: any difference now
	// was made by someone else, and is drift.
	convergedBefore := st.ObservedGeneration == row.Generation && conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady)
	policy := v1alpha1.DriftCorrect
	if convergedBefore && len(r.steps) > 0 {
		var err error
		if policy, err = r.driftPolicy(ctx, row); err != nil {
			return reconcile.Result{}, err
		}
		if policy == v1alpha1.DriftIgnore && !r.dueNow(ctx, row) {
			return reconcile.Result{}, nil // converged, and the spec says not to look
		}
	}

	diffs := make([][]host.Difference, len(r.steps))
	var all []host.Difference
	for i, s := range r.steps {
		d, err := s.Observe(ctx, row)
		if err != nil {
			return r.stepFailed(ctx, row, st, s, "observe", err)
		}
		diffs[i] = d
		all = append(all, d...)
	}

	// Due work (a renewal) is not drift: it is applied whatever the policy.
	driftDs := notDue(all)
	drift := convergedBefore && len(driftDs) > 0
	if drift && policy != v1alpha1.DriftCorrect {
		// Leave the drift alone; apply only what fell due.
		all = nil
		for i := range diffs {
			diffs[i] = dueOnly(diffs[i])
			all = append(all, diffs[i]...)
		}
	}
	if drift && policy == v1alpha1.DriftReport {
		st.Drift = driftEntries(st.Drift, driftDs, now, false)
		msg := host.Summary(driftDs)
		st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: v1alpha1.ConditionDrifted,
			Status: v1alpha1.ConditionTrue, Reason: ReasonDriftReported, ObservedGeneration: row.Generation,
			Message: "the host differs from the spec; driftPolicy is report, so it is left as it is: " + msg}, now)
		if len(all) == 0 {
			if err := r.writeStatus(ctx, row, st, row.Generation); err != nil {
				return reconcile.Result{}, err
			}
		}
		r.event(ctx, row, "Warning", ReasonDriftDetected, msg+" (driftPolicy: report, not corrected)")
		if len(all) == 0 {
			return reconcile.Result{}, nil
		}
	}
	drift = drift && policy == v1alpha1.DriftCorrect
	if drift {
		st.Drift = driftEntries(st.Drift, driftDs, now, true)
		r.event(ctx, row, "Warning", ReasonDriftDetected, host.Summary(driftDs)+" (correcting)")
	}

	var named []StepEvent // the applied steps' own events
	owned := make([]bool, len(r.steps))
	for i, s := range r.steps {
		if len(diffs[i]) == 0 {
			continue
		}
		snap, err := s.Apply(ctx, row, diffs[i])
		if snap != "" {
			st.LastSnapshot = snap
		}
		if err != nil {
			return r.stepFailed(ctx, row, st, s, "apply", err)
		}
		// Trust, but verify: an Apply that leaves differences behind is a bug
		// or a fight with someone else, and must not be reported Ready.
		left, err := s.Observe(ctx, row)
		if err != nil {
			return r.stepFailed(ctx, row, st, s, "observe after apply", err)
		}
		if len(left) > 0 {
			return r.stepFailed(ctx, row, st, s, "apply", fmt.Errorf("the host still differs after applying: %s", host.Summary(left)))
		}
		if en, ok := s.(EventNamer); ok {
			if e, ok := en.AppliedEvent(ctx, row, diffs[i]); ok {
				named, owned[i] = append(named, e), true
			}
		}
	}

	switch {
	case drift:
		st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: v1alpha1.ConditionDrifted,
			Status: v1alpha1.ConditionFalse, Reason: ReasonDriftCorrected, ObservedGeneration: row.Generation,
			Message: "corrected: " + host.Summary(driftDs)}, now)
	case len(driftDs) == 0 && convergedBefore:
		// In sync: keep the drift record of a correction, drop reported
		// drift that someone has since put right.
		if c, ok := conditions.Get(st.Conditions, v1alpha1.ConditionDrifted); ok && c.Status == v1alpha1.ConditionTrue {
			st.Drift = nil
			st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: v1alpha1.ConditionDrifted,
				Status: v1alpha1.ConditionFalse, Reason: ReasonInSync, ObservedGeneration: row.Generation,
				Message: "the host matches the spec again"}, now)
			r.event(ctx, row, "Normal", ReasonInSync, "the host matches the spec again")
		}
	case !convergedBefore:
		st.Drift = nil // a new generation starts with a clean record
		st.Conditions = conditions.Remove(st.Conditions, v1alpha1.ConditionDrifted)
	}
	for _, s := range r.steps {
		if p, ok := s.(PartReporter); ok {
			st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: p.ConditionType(),
				Status: v1alpha1.ConditionTrue, Reason: ReasonConverged, Message: "the host matches the spec",
				ObservedGeneration: row.Generation}, now)
		}
		if rep, ok := s.(StatusReporter); ok {
			if err := rep.ReportStatus(ctx, row, &st); err != nil {
				return r.stepFailed(ctx, row, st, s, "report status", err)
			}
		}
	}
	wasReady := conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) && st.ObservedGeneration == row.Generation
	st.Conditions = conditions.MarkReady(st.Conditions, row.Generation, ReasonConverged, convergedMessage(r.steps), now)
	if err := r.writeStatus(ctx, row, st, row.Generation); err != nil {
		return reconcile.Result{}, err
	}
	var changed []host.Difference // what the steps without events of their own did
	for i := range diffs {
		if !owned[i] {
			changed = append(changed, diffs[i]...)
		}
	}
	if drift {
		changed = dueOnly(changed)
	}
	if len(changed) > 0 {
		r.event(ctx, row, "Normal", ReasonChanged, host.Summary(changed))
	}
	for _, e := range named {
		r.event(ctx, row, "Normal", e.Reason, e.Message)
	}
	if drift {
		r.event(ctx, row, "Normal", ReasonDriftCorrected, host.Summary(driftDs))
	}
	if !wasReady {
		r.event(ctx, row, "Normal", "Ready", fmt.Sprintf("generation %d converged", row.Generation))
		if r.kind == v1alpha1.KindTenant {
			r.wakeChildren(ctx, row.Name)
		}
	}
	return reconcile.Result{}, nil
}

// stepFailed records a failed step: not Ready, a Warning event, and an
// error for the runtime to retry with backoff (or a terminal one as is).
func (r *resourceReconciler) stepFailed(ctx context.Context, row store.Resource, st v1alpha1.Status, s Step, what string, err error) (reconcile.Result, error) {
	msg := fmt.Sprintf("%s %s: %v", s.Name(), what, err)
	now := r.opts.Clock().UTC()
	st.Conditions = conditions.MarkNotReady(st.Conditions, row.Generation, ReasonStepFailed, msg, now)
	if p, ok := s.(PartReporter); ok {
		st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: p.ConditionType(),
			Status: v1alpha1.ConditionFalse, Reason: ReasonStepFailed, Message: msg, ObservedGeneration: row.Generation}, now)
	}
	if reconcile.IsTerminal(err) {
		st.Conditions = conditions.MarkStalled(st.Conditions, row.Generation, ReasonStepFailed, msg, now)
	}
	if fr, ok := s.(FailureReporter); ok {
		fr.ReportFailure(ctx, row, &st, err)
	}
	if werr := r.writeStatus(ctx, row, st, st.ObservedGeneration); werr != nil {
		return reconcile.Result{}, errors.Join(err, werr)
	}
	reason, evMsg := ReasonStepFailed, msg
	if en, ok := s.(EventNamer); ok {
		if e, ok := en.FailedEvent(err); ok {
			reason, evMsg = e.Reason, e.Message
		}
	}
	r.event(ctx, row, "Warning", reason, evMsg)
	if reconcile.IsTerminal(err) {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, fmt.Errorf("%s: %w", msg, err)
}

// driftPolicy is the tenant's: a Tenant's own, a Domain's or Database's
// through its tenant.
func (r *resourceReconciler) driftPolicy(ctx context.Context, row store.Resource) (v1alpha1.DriftPolicy, error) {
	spec := row.Spec
	if r.kind != v1alpha1.KindTenant {
		t, err := r.opts.Store.Get(ctx, v1alpha1.KindTenant, row.Tenant)
		if err != nil {
			return "", err
		}
		spec = t.Spec
	}
	var ts struct {
		DriftPolicy v1alpha1.DriftPolicy `json:"driftPolicy"`
	}
	if err := json.Unmarshal(spec, &ts); err != nil {
		return "", reconcile.Terminal(fmt.Errorf("stored tenant spec: %w", err))
	}
	if ts.DriftPolicy == "" {
		return v1alpha1.DriftCorrect, nil
	}
	return ts.DriftPolicy, nil
}

// notDue and dueOnly split differences into drift and work that fell due.
func notDue(ds []host.Difference) []host.Difference {
	var out []host.Difference
	for _, d := range ds {
		if !d.Due {
			out = append(out, d)
		}
	}
	return out
}

func dueOnly(ds []host.Difference) []host.Difference {
	var out []host.Difference
	for _, d := range ds {
		if d.Due {
			out = append(out, d)
		}
	}
	return out
}

// driftEntries records ds, keeping when each was first seen.
func driftEntries(prev []v1alpha1.DriftEntry, ds []host.Difference, now time.Time, corrected bool) []v1alpha1.DriftEntry {
	out := make([]v1alpha1.DriftEntry, 0, len(ds))
	for _, d := range ds {
		e := v1alpha1.DriftEntry{Field: d.Field, Want: d.Want, Have: d.Have, ObservedAt: now, Corrected: corrected}
		for _, p := range prev {
			if p.Field == d.Field && p.Want == d.Want && p.Have == d.Have && !p.Corrected {
				e.ObservedAt = p.ObservedAt
			}
		}
		out = append(out, e)
	}
	return out
}

func convergedMessage(steps []Step) string {
	if len(steps) == 0 {
		return "spec stored and dependencies met; this build has no host steps for this kind"
	}
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Name()
	}
	return "the host matches the spec (" + strings.Join(names, ", ") + ")"
}

// wakeChildren enqueues the domains and databases of a tenant that just became Ready.
func (r *resourceReconciler) wakeChildren(ctx context.Context, tenant string) {
	for _, k := range []v1alpha1.Kind{v1alpha1.KindDomain, v1alpha1.KindDatabase} {
		rows, err := r.opts.Store.List(ctx, k, store.ListOptions{Tenant: tenant})
		if err != nil {
			r.log(ctx).Warn("cannot list tenant's resources to wake them; resync will", "kind", k, "err", err)
			continue
		}
		for _, c := range rows {
			r.opts.Enqueue(k, c.Name)
		}
	}
}

// finalize undoes the steps in reverse order, then removes the row. A tenant
// waits until its domains and databases are gone.
func (r *resourceReconciler) finalize(ctx context.Context, row store.Resource) (reconcile.Result, error) {
	st, _ := decodeStatus(row.Status)
	if c, ok := conditions.Get(st.Conditions, v1alpha1.ConditionReconciling); !ok ||
		c.Status != v1alpha1.ConditionTrue || c.Reason != ReasonDeleting {
		st.Conditions = conditions.MarkReconciling(st.Conditions, row.Generation, ReasonDeleting, "removing what WCP360 created", r.opts.Clock().UTC())
		if err := r.writeStatus(ctx, row, st, st.ObservedGeneration); err != nil {
			return reconcile.Result{}, err
		}
		r.event(ctx, row, "Normal", ReasonDeleting, "deletion requested")
	}
	for i := len(r.steps) - 1; i >= 0; i-- {
		if err := r.steps[i].Remove(ctx, row); err != nil {
			return reconcile.Result{}, fmt.Errorf("remove step %s: %w", r.steps[i].Name(), err)
		}
	}
	err := r.opts.Store.Finalize(ctx, r.kind, row.Name, row.UID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return reconcile.Result{}, nil
	case errors.Is(err, store.ErrConflict):
		// A tenant with resources still being removed: look again shortly.
		return reconcile.Result{}, reconcile.Waiting(err, r.opts.DependencyRetry)
	case err != nil:
		return reconcile.Result{}, err
	}
	r.log(ctx).Info("resource removed", "kind", r.kind, "name", row.Name)
	if r.kind != v1alpha1.KindTenant {
		r.opts.Enqueue(v1alpha1.KindTenant, row.Tenant) // a deleting tenant may now finish
	}
	return reconcile.Result{}, nil
}

func (r *resourceReconciler) writeStatus(ctx context.Context, row store.Resource, st v1alpha1.Status, observed int64) error {
	st.ObservedGeneration = observed
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	// Compare in Go's encoding: PostgreSQL's jsonb output orders keys its own way.
	if old, err := decodeStatus(row.Status); err == nil && row.ObservedGeneration == observed {
		if ob, _ := json.Marshal(old); string(ob) == string(b) {
			return nil // nothing observed changed: no write
		}
	}
	_, err = r.opts.Store.UpdateStatus(ctx, store.StatusUpdate{
		Kind: r.kind, Name: row.Name, UID: row.UID, Status: b, ObservedGeneration: observed,
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // the row went away or was recreated: its own reconcile will write
	}
	return err
}

func (r *resourceReconciler) event(ctx context.Context, row store.Resource, typ, reason, msg string) {
	err := r.opts.Store.RecordEvent(ctx, store.Event{Kind: r.kind, Name: row.Name, Tenant: row.Tenant, UID: row.UID,
		Type: typ, Reason: reason, Message: msg})
	if err != nil {
		r.log(ctx).Warn("cannot record event", "reason", reason, "err", err)
	}
}

func (r *resourceReconciler) log(ctx context.Context) *slog.Logger {
	if l := reconcile.LoggerFrom(ctx); l != nil {
		return l
	}
	return r.opts.Logger
}

func decodeStatus(raw json.RawMessage) (v1alpha1.Status, error) {
	var st v1alpha1.Status
	if len(raw) == 0 || string(raw) == "null" {
		return st, nil
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("stored status is not valid: %w", err)
	}
	return st, nil
}

// Observer looks at the host for a stored resource without changing
// anything: what `wcp describe` shows as live drift.
type Observer struct {
	opts Options
}

// NewObserver returns an Observer over the same store and steps as New.
func NewObserver(opts Options) *Observer { return &Observer{opts: opts} }

// Observe runs every step's Observe for the resource and returns the
// differences between the host and its spec, as of now.
func (o *Observer) Observe(ctx context.Context, kind v1alpha1.Kind, name string) ([]host.Difference, error) {
	row, err := o.opts.Store.Get(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	if row.Node != "" && row.Node != o.opts.Node {
		return nil, fmt.Errorf("%s/%s lives on node %s, not on this one (%s)", kind, name, row.Node, o.opts.Node)
	}
	var all []host.Difference
	for _, s := range o.opts.Steps[kind] {
		ds, err := s.Observe(ctx, row)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
		all = append(all, ds...)
	}
	return all, nil
}
