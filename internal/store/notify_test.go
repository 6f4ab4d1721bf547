package store_test

import (
	"context"
	"testing"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestNotify(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	l := listen(t, url)

	apply(t, s, tenantReq("acme", `{}`))
	l.expect(t, "Tenant/acme")
	apply(t, s, domainReq("www", "acme", "www.example.com"))
	apply(t, s, databaseReq("shop", "acme", "acme_shop"))
	l.expect(t, "Domain/www", "Database/shop")

	// A metadata-only change is announced; an identical apply is not.
	req := tenantReq("acme", `{}`)
	req.Labels = map[string]string{"plan": "gold"}
	apply(t, s, req)
	l.expect(t, "Tenant/acme")
	apply(t, s, req)
	l.nothingBefore(t, s, 1)

	// A refused apply rolls back its NOTIFY with everything else.
	stale := tenantReq("acme", `{"v":2}`)
	stale.ResourceVersion = 1
	if _, err := s.Apply(ctx, stale); err == nil {
		t.Fatal("stale apply succeeded")
	}
	l.nothingBefore(t, s, 2)

	// A status write does not wake controllers.
	dom := get(t, s, v1alpha1.KindDomain, "www")
	if _, err := s.UpdateStatus(ctx, store.StatusUpdate{Kind: v1alpha1.KindDomain, Name: "www", UID: dom.UID,
		Status: []byte(`{"observedGeneration":1}`), ObservedGeneration: 1}); err != nil {
		t.Fatal(err)
	}
	l.nothingBefore(t, s, 3)

	// Deleting a tenant announces it and everything it owns; finalizing too.
	if _, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 0); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "Tenant/acme", "Domain/www", "Database/shop")
	if _, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 0); err != nil { // already marked: nothing new
		t.Fatal(err)
	}
	l.nothingBefore(t, s, 4)
	if err := s.Finalize(ctx, v1alpha1.KindDomain, "www", dom.UID); err != nil {
		t.Fatal(err)
	}
	l.expect(t, "Domain/www")
}
