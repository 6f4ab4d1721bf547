package controllers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/store"
)

// certStep is a step with events of its own (an EventNamer), as the ACME
// part of a domain is: it issues once, or fails with the CA's problem.
type certStep struct {
	issued bool
	err    error
}

func (c *certStep) Name() string { return "cert" }

func (c *certStep) Observe(context.Context, store.Resource) ([]host.Difference, error) {
	if c.issued {
		return nil, nil
	}
	return []host.Difference{{Field: "certificate", Want: "issued", Have: "placeholder", Due: true}}, nil
}

func (c *certStep) Apply(context.Context, store.Resource, []host.Difference) (string, error) {
	if c.err != nil {
		return "", c.err
	}
	c.issued = true
	return "", nil
}

func (c *certStep) Remove(context.Context, store.Resource) error { return nil }

func (c *certStep) AppliedEvent(_ context.Context, _ store.Resource, ds []host.Difference) (controllers.StepEvent, bool) {
	return controllers.StepEvent{Reason: "Issued", Message: "issued by Test CA, valid until 2026-04-01T00:00:00Z (" + host.Summary(ds) + ")"}, true
}

func (c *certStep) FailedEvent(err error) (controllers.StepEvent, bool) {
	if !strings.Contains(err.Error(), "CA") {
		return controllers.StepEvent{}, false
	}
	return controllers.StepEvent{Reason: "Failed", Message: "the order failed: " + err.Error()}, true
}

// An EventNamer's failure is its own Warning event, not StepFailed; its
// work is its own Normal event, and Changed keeps the other steps' work.
func TestStepEvents(t *testing.T) {
	cert := &certStep{err: errors.New("the CA says: unauthorized")}
	h := newHarness(t, cert)
	h.apply("Acme", "")
	if err := h.reconcile(); err == nil {
		t.Fatal("reconcile succeeded with a failing step")
	}
	evs := h.events()
	if e, ok := evs["Failed"]; !ok || e.Type != "Warning" || e.Message != "the order failed: the CA says: unauthorized" {
		t.Errorf("Failed event %+v (events %v)", e, evs)
	}
	if _, ok := evs[controllers.ReasonStepFailed]; ok {
		t.Errorf("a StepFailed event besides Failed: %v", evs)
	}

	cert.err = errors.New("disk full")
	if err := h.reconcile(); err == nil {
		t.Fatal("reconcile succeeded with a failing step")
	}
	if e := h.events()[controllers.ReasonStepFailed]; e.Type != "Warning" || !strings.Contains(e.Message, "cert apply: disk full") {
		t.Errorf("a failure the step does not name: StepFailed %+v", e)
	}

	// Both steps have work: the file's is Changed, the certificate's Issued.
	cert.err = nil
	h.apply("Acme Inc", "")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	evs = h.events()
	if e := evs["Issued"]; e.Type != "Normal" || !strings.HasPrefix(e.Message, "issued by Test CA, valid until 2026-04-01T00:00:00Z") {
		t.Errorf("Issued event %+v", e)
	}
	if e := evs[controllers.ReasonChanged]; !strings.Contains(e.Message, "file.content") || strings.Contains(e.Message, "certificate") {
		t.Errorf("Changed event %+v: want the file step's work only", e)
	}
}
