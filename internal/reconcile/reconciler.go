package reconcile

import (
	"context"
	"time"
)

// Result is what a successful Reconcile asks for. RequeueAfter > 0 runs the
// key again after that delay; it is the only way to ask for later. A Result
// returned together with an error is ignored.
type Result struct {
	RequeueAfter time.Duration
}

// IsZero reports whether r asks for nothing.
func (r Result) IsZero() bool { return r == Result{} }

// Reconciler makes the host match the desired state of one resource. It must
// be idempotent: running it twice changes nothing the second time.
type Reconciler interface {
	Reconcile(ctx context.Context, req Request) (Result, error)
}

// ReconcilerFunc adapts a function to a Reconciler.
type ReconcilerFunc func(ctx context.Context, req Request) (Result, error)

// Reconcile calls f(ctx, req).
func (f ReconcilerFunc) Reconcile(ctx context.Context, req Request) (Result, error) {
	return f(ctx, req)
}
