package store_test

import (
	"context"
	"testing"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

// Under WithReadCache a row is read once: a change by someone else is
// seen by the next unit of work, a write through the same context at once.
func TestReadCache(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	apply(t, s, tenantReq("acme", `{"v":1}`))
	ctx := store.WithReadCache(context.Background())
	get := func(ctx context.Context) store.Resource {
		t.Helper()
		r, err := s.Get(ctx, v1alpha1.KindTenant, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := get(ctx)
	apply(t, s, tenantReq("acme", `{"v":2}`)) // another unit of work
	if got := get(ctx); got.Generation != first.Generation {
		t.Errorf("cached read: generation %d, want the first read's %d", got.Generation, first.Generation)
	}
	if got := get(context.Background()); got.Generation != 2 {
		t.Errorf("uncached read: generation %d, want 2", got.Generation)
	}
	if _, err := s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: first.UID,
		Status: []byte(`{"observedGeneration": 1}`), ObservedGeneration: 1}); err != nil {
		t.Fatal(err)
	}
	if got := get(ctx); got.Generation != 2 || got.ObservedGeneration != 1 {
		t.Errorf("after a status write through the context: generation %d observed %d, want 2 and 1", got.Generation, got.ObservedGeneration)
	}
	if _, err := s.Get(store.WithReadCache(context.Background()), v1alpha1.KindTenant, "nobody"); err == nil {
		t.Error("a missing row was found")
	}
}
