package wcpd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/reconcile"
)

// Each reconcile is counted by its result and timed, per controller.
func TestReconcileMetrics(t *testing.T) {
	m := newDaemonMetrics()
	tenant, domain := m.onResult("tenant"), m.onResult("domain")
	tenant(reconcile.Request{}, reconcile.Result{}, nil, 20*time.Millisecond)
	tenant(reconcile.Request{}, reconcile.Result{}, errors.New("boom"), 2*time.Millisecond)
	domain(reconcile.Request{}, reconcile.Result{}, reconcile.Waiting(errors.New("tenant not Ready"), time.Second), time.Millisecond)
	domain(reconcile.Request{}, reconcile.Result{}, reconcile.Terminal(errors.New("bad spec")), time.Millisecond)
	domain(reconcile.Request{}, reconcile.Result{}, nil, 3*time.Second)
	var b bytes.Buffer
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`wcp360_reconciles_total{controller="tenant",result="success"} 1`,
		`wcp360_reconciles_total{controller="tenant",result="error"} 1`,
		`wcp360_reconciles_total{controller="tenant",result="waiting"} 0`,
		`wcp360_reconciles_total{controller="domain",result="waiting"} 1`,
		`wcp360_reconciles_total{controller="domain",result="stalled"} 1`,
		`wcp360_reconciles_total{controller="domain",result="success"} 1`,
		`wcp360_reconcile_duration_seconds_bucket{controller="domain",le="0.001"} 2`,
		`wcp360_reconcile_duration_seconds_bucket{controller="domain",le="2.5"} 2`,
		`wcp360_reconcile_duration_seconds_bucket{controller="domain",le="5"} 3`,
		`wcp360_reconcile_duration_seconds_count{controller="tenant"} 2`,
	} {
		if !strings.Contains(b.String(), want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, b.String())
		}
	}
}
