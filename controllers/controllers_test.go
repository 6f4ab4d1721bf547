package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// fileStep is a small real step: it keeps dir/<name> holding the tenant's
// displayName with mode 0640. It exercises the controller's observe → apply →
// verify loop and drift handling on a real file system.
type fileStep struct {
	dir     string
	failErr error // Apply fails with it when set
	applies int
}

func (f *fileStep) Name() string { return "file" }

func (f *fileStep) want(row store.Resource) string {
	var spec v1alpha1.TenantSpec
	_ = json.Unmarshal(row.Spec, &spec)
	return spec.DisplayName
}

func (f *fileStep) Observe(_ context.Context, row store.Resource) ([]host.Difference, error) {
	p := filepath.Join(f.dir, row.Name)
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return []host.Difference{{Field: "file", Want: "present", Have: "absent"}}, nil
	}
	if err != nil {
		return nil, err
	}
	var ds []host.Difference
	if fi.Mode().Perm() != 0o640 {
		ds = append(ds, host.Difference{Field: "file.mode", Want: "0640", Have: fmt.Sprintf("%04o", fi.Mode().Perm())})
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if string(b) != f.want(row) {
		ds = append(ds, host.Difference{Field: "file.content", Want: f.want(row), Have: string(b)})
	}
	return ds, nil
}

func (f *fileStep) Apply(_ context.Context, row store.Resource, _ []host.Difference) (string, error) {
	f.applies++
	if f.failErr != nil {
		return "snap-1", f.failErr
	}
	p := filepath.Join(f.dir, row.Name)
	if err := os.WriteFile(p, []byte(f.want(row)), 0o640); err != nil {
		return "", err
	}
	return "snap-1", os.Chmod(p, 0o640)
}

func (f *fileStep) Remove(_ context.Context, row store.Resource) error {
	err := os.Remove(filepath.Join(f.dir, row.Name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

type harness struct {
	t     *testing.T
	st    *store.Store
	step  *fileStep
	rec   reconcile.Reconciler
	clock time.Time
}

func newHarness(t *testing.T, more ...controllers.Step) *harness {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.New(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, st: st, step: &fileStep{dir: t.TempDir()}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, c := range controllers.New(controllers.Options{
		Store: st, Node: "n1", Clock: func() time.Time { return h.clock },
		Steps: map[v1alpha1.Kind][]controllers.Step{v1alpha1.KindTenant: append([]controllers.Step{h.step}, more...)},
	}) {
		if c.Kind == v1alpha1.KindTenant {
			h.rec = c.Reconciler
		}
	}
	return h
}

func (h *harness) apply(display string, policy v1alpha1.DriftPolicy) {
	h.t.Helper()
	spec, _ := json.Marshal(v1alpha1.TenantSpec{DisplayName: display, DriftPolicy: policy})
	if _, err := h.st.Apply(h.t.Context(), store.ApplyRequest{Kind: v1alpha1.KindTenant, Name: "acme", Node: "n1", Spec: spec}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) reconcile() error {
	h.clock = h.clock.Add(time.Minute)
	_, err := h.rec.Reconcile(h.t.Context(), reconcile.Request{Kind: v1alpha1.KindTenant, Name: "acme"})
	return err
}

func (h *harness) status() (store.Resource, v1alpha1.Status) {
	h.t.Helper()
	row, err := h.st.Get(h.t.Context(), v1alpha1.KindTenant, "acme")
	if err != nil {
		h.t.Fatal(err)
	}
	var st v1alpha1.Status
	if err := json.Unmarshal(row.Status, &st); err != nil {
		h.t.Fatal(err)
	}
	return row, st
}

func (h *harness) events() map[string]store.Event {
	h.t.Helper()
	evs, err := h.st.Events(h.t.Context(), v1alpha1.KindTenant, "acme", 100)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]store.Event{}
	for _, e := range evs {
		if _, seen := out[e.Reason]; !seen { // newest first
			out[e.Reason] = e
		}
	}
	return out
}

func (h *harness) file() (string, os.FileMode) {
	h.t.Helper()
	p := filepath.Join(h.step.dir, "acme")
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">", 0
	}
	fi, _ := os.Stat(p)
	return string(b), fi.Mode().Perm()
}

func TestConvergeIsIdempotent(t *testing.T) {
	h := newHarness(t)
	h.apply("Acme", "")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	row, st := h.status()
	if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) || st.ObservedGeneration != row.Generation {
		t.Fatalf("not Ready after converge: %+v", st)
	}
	if c, m := h.file(); c != "Acme" || m != 0o640 {
		t.Fatalf("file %q %o", c, m)
	}
	if st.LastSnapshot != "snap-1" {
		t.Errorf("lastSnapshot = %q", st.LastSnapshot)
	}
	if e, ok := h.events()[controllers.ReasonChanged]; !ok || !strings.Contains(e.Message, "file: want present, have absent") {
		t.Errorf("Changed event %+v", e)
	}
	rv := row.ResourceVersion
	for range 3 {
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	row, _ = h.status()
	if h.step.applies != 1 {
		t.Errorf("converged resource applied %d times, want 1", h.step.applies)
	}
	if row.ResourceVersion != rv {
		t.Errorf("no-op reconciles rewrote the row: resourceVersion %d → %d", rv, row.ResourceVersion)
	}
}

func TestDriftIsCorrected(t *testing.T) {
	h := newHarness(t)
	h.apply("Acme", "")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.step.dir, "acme")
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if _, m := h.file(); m != 0o640 {
		t.Errorf("mode after drift correction %o", m)
	}
	_, st := h.status()
	if len(st.Drift) != 1 || st.Drift[0].Field != "file.mode" || st.Drift[0].Have != "0777" || !st.Drift[0].Corrected {
		t.Errorf("drift record %+v", st.Drift)
	}
	c, _ := conditions.Get(st.Conditions, v1alpha1.ConditionDrifted)
	if c.Status != v1alpha1.ConditionFalse || c.Reason != controllers.ReasonDriftCorrected {
		t.Errorf("Drifted condition %+v", c)
	}
	ev := h.events()
	if e := ev[controllers.ReasonDriftDetected]; e.Type != "Warning" || e.Message != "file.mode: want 0640, have 0777 (correcting)" {
		t.Errorf("DriftDetected event %+v", e)
	}
	if _, ok := ev[controllers.ReasonDriftCorrected]; !ok {
		t.Errorf("no DriftCorrected event: %v", ev)
	}
	if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) {
		t.Errorf("not Ready after correcting drift")
	}
}

func TestDriftReportLeavesTheHostAlone(t *testing.T) {
	h := newHarness(t)
	h.apply("Acme", v1alpha1.DriftReport)
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.step.dir, "acme")
	if err := os.WriteFile(p, []byte("hand edit"), 0o640); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h.reconcile(); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := h.file(); c != "hand edit" {
		t.Errorf("report policy changed the host: %q", c)
	}
	_, st := h.status()
	c, _ := conditions.Get(st.Conditions, v1alpha1.ConditionDrifted)
	if c.Status != v1alpha1.ConditionTrue || c.Reason != controllers.ReasonDriftReported ||
		!strings.Contains(c.Message, "file.content: want Acme, have hand edit") {
		t.Errorf("Drifted condition %+v", c)
	}
	if len(st.Drift) != 1 || st.Drift[0].Corrected {
		t.Errorf("drift record %+v", st.Drift)
	}
	if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) {
		t.Errorf("reported drift made the tenant not Ready (its domains would stop)")
	}
	if e := h.events()[controllers.ReasonDriftDetected]; e.Count != 2 {
		t.Errorf("repeated drift should fold into one event: %+v", e)
	}
	// Someone puts it right by hand: the record clears.
	if err := os.WriteFile(p, []byte("Acme"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	_, st = h.status()
	if c, _ := conditions.Get(st.Conditions, v1alpha1.ConditionDrifted); c.Status != v1alpha1.ConditionFalse || c.Reason != controllers.ReasonInSync || len(st.Drift) != 0 {
		t.Errorf("after a manual fix: %+v drift %+v", c, st.Drift)
	}
	if h.step.applies != 1 {
		t.Errorf("report policy applied %d times", h.step.applies)
	}
}

func TestDriftIgnoreDoesNotLook(t *testing.T) {
	h := newHarness(t)
	h.apply("Acme", v1alpha1.DriftIgnore)
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.step.dir, "acme")); err != nil {
		t.Fatal(err)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.file(); !strings.HasPrefix(c, "<") {
		t.Errorf("ignore policy recreated the file")
	}
	// A new generation is converged whatever the policy.
	h.apply("Acme 2", v1alpha1.DriftIgnore)
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.file(); c != "Acme 2" {
		t.Errorf("new generation not applied: %q", c)
	}
}

func TestStepFailure(t *testing.T) {
	h := newHarness(t)
	h.apply("Acme", "")
	h.step.failErr = errors.New("disk on fire")
	err := h.reconcile()
	if err == nil || reconcile.IsTerminal(err) {
		t.Fatalf("want a retryable error, got %v", err)
	}
	row, st := h.status()
	c, _ := conditions.Get(st.Conditions, v1alpha1.ConditionReady)
	if c.Status != v1alpha1.ConditionFalse || c.Reason != controllers.ReasonStepFailed || !strings.Contains(c.Message, "file apply: disk on fire") {
		t.Errorf("Ready condition %+v", c)
	}
	if st.ObservedGeneration == row.Generation {
		t.Errorf("a failed generation was marked observed")
	}
	if st.LastSnapshot != "snap-1" {
		t.Errorf("the snapshot of the failed apply is not in status: %q", st.LastSnapshot)
	}

	h.step.failErr = reconcile.Terminal(errors.New("user acme exists and is not ours"))
	if err := h.reconcile(); !reconcile.IsTerminal(err) {
		t.Fatalf("want a terminal error, got %v", err)
	}
	_, st = h.status()
	if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionStalled) {
		t.Errorf("terminal failure not Stalled: %+v", st.Conditions)
	}

	h.step.failErr = nil
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	_, st = h.status()
	if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) || conditions.IsTrue(st.Conditions, v1alpha1.ConditionStalled) {
		t.Errorf("recovered resource: %+v", st.Conditions)
	}
}

// renewStep has work that falls due with time (a certificate's renewal):
// due at its time, done by Apply, next due a day later.
type renewStep struct {
	clock   *time.Time
	at      time.Time
	applies int
}

func (r *renewStep) Name() string { return "renew" }

func (r *renewStep) Observe(context.Context, store.Resource) ([]host.Difference, error) {
	if r.clock.Before(r.at) {
		return nil, nil
	}
	return []host.Difference{{Field: "renewal", Want: "renewed", Have: "due", Due: true}}, nil
}

func (r *renewStep) Apply(context.Context, store.Resource, []host.Difference) (string, error) {
	r.applies++
	r.at = r.clock.Add(24 * time.Hour)
	return "", nil
}

func (r *renewStep) Remove(context.Context, store.Resource) error { return nil }

func (r *renewStep) NextRun(context.Context, store.Resource) (time.Time, error) { return r.at, nil }

// Work that falls due is not drift: it is done whatever the drift policy
// (report leaves the drift, ignore does not look at it), it is announced
// as a change, and the controller requeues the resource for the next.
func TestDueWorkIsNotDrift(t *testing.T) {
	for _, policy := range []v1alpha1.DriftPolicy{v1alpha1.DriftCorrect, v1alpha1.DriftReport, v1alpha1.DriftIgnore} {
		t.Run(string(policy), func(t *testing.T) {
			rs := &renewStep{}
			h := newHarness(t, rs)
			rs.clock, rs.at = &h.clock, h.clock.Add(time.Hour)
			h.apply("Acme", policy)
			res, err := h.rec.Reconcile(t.Context(), reconcile.Request{Kind: v1alpha1.KindTenant, Name: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			if res.RequeueAfter != time.Hour {
				t.Errorf("RequeueAfter %s, want 1h (the step's next run)", res.RequeueAfter)
			}
			// A hand edit (drift) and the renewal fall due together.
			p := filepath.Join(h.step.dir, "acme")
			if err := os.WriteFile(p, []byte("hand edit"), 0o640); err != nil {
				t.Fatal(err)
			}
			h.clock = h.clock.Add(time.Hour)
			if err := h.reconcile(); err != nil {
				t.Fatal(err)
			}
			if rs.applies != 1 {
				t.Errorf("renewals %d, want 1", rs.applies)
			}
			_, st := h.status()
			drifted, _ := conditions.Get(st.Conditions, v1alpha1.ConditionDrifted)
			content, _ := h.file()
			switch policy {
			case v1alpha1.DriftCorrect:
				if content != "Acme" || drifted.Reason != controllers.ReasonDriftCorrected || strings.Contains(drifted.Message, "renewal") {
					t.Errorf("file %q, Drifted %+v", content, drifted)
				}
			case v1alpha1.DriftReport:
				if content != "hand edit" || drifted.Reason != controllers.ReasonDriftReported || strings.Contains(drifted.Message, "renewal") {
					t.Errorf("file %q, Drifted %+v", content, drifted)
				}
			case v1alpha1.DriftIgnore:
				if content != "hand edit" || drifted.Type != "" {
					t.Errorf("file %q, Drifted %+v", content, drifted)
				}
			}
			if e := h.events()[controllers.ReasonChanged]; !strings.Contains(e.Message, "renewal: want renewed, have due") {
				t.Errorf("Changed event %+v", e)
			}
			if !conditions.IsTrue(st.Conditions, v1alpha1.ConditionReady) {
				t.Errorf("not Ready: %+v", st.Conditions)
			}
		})
	}
}
