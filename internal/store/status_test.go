package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestUpdateStatus(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"v":1}`))
	r := apply(t, s, tenantReq("acme", `{"v":2}`)).Resource // generation 2, resourceVersion 2

	status := `{"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 2}`
	got, err := s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: r.UID,
		Status: []byte(status), ObservedGeneration: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got.ObservedGeneration != 2 || got.Generation != 2 || got.ResourceVersion != 3 {
		t.Fatalf("after status write: %+v", got)
	}
	if diff := cmp.Diff(status, string(got.Status)); diff != "" {
		t.Fatalf("status (-want +got):\n%s", diff)
	}

	// observedGeneration does not move back; the status is still written.
	got, err = s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: r.UID,
		Status: []byte(`{"lastSnapshot": "x"}`), ObservedGeneration: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.ObservedGeneration != 2 || string(got.Status) != `{"lastSnapshot": "x"}` {
		t.Fatalf("after a lower observedGeneration: %+v", got)
	}

	_, err = s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: r.UID,
		Status: []byte(`{}`), ObservedGeneration: 3})
	wantFieldError(t, err, store.ErrConflict, "status.observedGeneration")

	_, err = s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme",
		UID: "00000000-0000-0000-0000-000000000001", Status: []byte(`{}`), ObservedGeneration: 1})
	wantFieldError(t, err, store.ErrNotFound, "metadata.uid")
	_, err = s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: "not-a-uuid"})
	wantFieldError(t, err, store.ErrNotFound, "metadata.uid")
	_, err = s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindTenant, Name: "acme", UID: r.UID, Status: []byte(`"x"`)})
	wantFieldError(t, err, store.ErrInvalid, "status")

	// The spec side is untouched.
	if after := get(t, s, v1alpha1.KindTenant, "acme"); after.Generation != 2 || string(after.Spec) != `{"v": 2}` {
		t.Fatalf("spec side changed: %+v", after)
	}
}
