package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestDeleteMarksAndCascades(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))
	apply(t, s, tenantReq("other", `{}`))
	apply(t, s, domainReq("www", "acme", "www.example.com"))
	apply(t, s, domainReq("blog", "acme", "blog.example.com"))
	apply(t, s, databaseReq("shop", "acme", "acme_shop"))
	apply(t, s, domainReq("keep", "other", "keep.example.com"))

	// A domain deleted on its own first keeps its own mark.
	first, err := s.Delete(ctx, v1alpha1.KindDomain, "blog", 0)
	if err != nil {
		t.Fatal(err)
	}
	if first.DeletionRequestedAt == nil || first.ResourceVersion != 2 {
		t.Fatalf("marked domain = %+v", first)
	}

	_, err = s.Delete(ctx, v1alpha1.KindTenant, "acme", 7)
	wantFieldError(t, err, store.ErrConflict, "metadata.resourceVersion")

	marked, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	if marked.DeletionRequestedAt == nil || marked.ResourceVersion != 2 || marked.Generation != 1 {
		t.Fatalf("marked tenant = %+v", marked)
	}
	again, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(marked, again); diff != "" {
		t.Fatalf("a second delete changed the row (-first +second):\n%s", diff)
	}

	for _, k := range []struct {
		kind v1alpha1.Kind
		name string
		rv   int64
	}{{v1alpha1.KindDomain, "www", 2}, {v1alpha1.KindDomain, "blog", 2}, {v1alpha1.KindDatabase, "shop", 2}} {
		r := get(t, s, k.kind, k.name)
		if r.DeletionRequestedAt == nil || r.ResourceVersion != k.rv {
			t.Errorf("%s/%s: deletion %v, resourceVersion %d (want %d)", k.kind, k.name, r.DeletionRequestedAt, r.ResourceVersion, k.rv)
		}
	}
	if r := get(t, s, v1alpha1.KindDomain, "blog"); !r.DeletionRequestedAt.Equal(*first.DeletionRequestedAt) {
		t.Error("the cascade re-marked a domain that was already marked")
	}
	if r := get(t, s, v1alpha1.KindDomain, "keep"); r.DeletionRequestedAt != nil {
		t.Error("another tenant's domain was marked")
	}

	// Applying a marked resource, or a new one of a marked tenant, is refused.
	_, err = s.Apply(ctx, domainReq("www", "acme", "www.example.com"))
	wantFieldError(t, err, store.ErrTerminating, "metadata.name")
	_, err = s.Apply(ctx, tenantReq("acme", `{}`))
	wantFieldError(t, err, store.ErrTerminating, "metadata.name")
	_, err = s.Apply(ctx, domainReq("new", "acme", "new.example.com"))
	fe := wantFieldError(t, err, store.ErrDependency, "spec.tenant")
	if !strings.Contains(fe.Msg, "being deleted") {
		t.Errorf("message = %q", fe.Msg)
	}

	_, err = s.Delete(ctx, v1alpha1.KindDomain, "nope", 0)
	wantFieldError(t, err, store.ErrNotFound, "metadata.name")
}

func TestFinalize(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	tenant := apply(t, s, tenantReq("acme", `{}`)).Resource
	www := apply(t, s, domainReq("www", "acme", "www.example.com")).Resource
	shop := apply(t, s, databaseReq("shop", "acme", "acme_shop")).Resource
	if err := s.RecordEvent(ctx, store.Event{Kind: v1alpha1.KindDomain, Name: "www", Reason: "Configured"}); err != nil {
		t.Fatal(err)
	}

	err := s.Finalize(ctx, v1alpha1.KindDomain, "www", www.UID)
	wantFieldError(t, err, store.ErrConflict, "metadata.deletionTimestamp")

	if _, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 0); err != nil {
		t.Fatal(err)
	}
	err = s.Finalize(ctx, v1alpha1.KindDomain, "www", shop.UID)
	wantFieldError(t, err, store.ErrNotFound, "metadata.uid")

	err = s.Finalize(ctx, v1alpha1.KindTenant, "acme", tenant.UID)
	fe := wantFieldError(t, err, store.ErrConflict, "metadata.name")
	if !strings.Contains(fe.Msg, "Domain/www") || !strings.Contains(fe.Msg, "Database/shop") {
		t.Errorf("message does not name the dependents: %q", fe.Msg)
	}

	if err := s.Finalize(ctx, v1alpha1.KindDomain, "www", www.UID); err != nil {
		t.Fatal(err)
	}
	if err := s.Finalize(ctx, v1alpha1.KindDatabase, "shop", shop.UID); err != nil {
		t.Fatal(err)
	}
	if err := s.Finalize(ctx, v1alpha1.KindTenant, "acme", tenant.UID); err != nil {
		t.Fatal(err)
	}
	// Finalizing again: the row is gone.
	err = s.Finalize(ctx, v1alpha1.KindTenant, "acme", tenant.UID)
	wantFieldError(t, err, store.ErrNotFound, "metadata.uid")

	for _, k := range []v1alpha1.Kind{v1alpha1.KindTenant, v1alpha1.KindDomain, v1alpha1.KindDatabase} {
		if n, err := s.Count(ctx, k); err != nil || n != 0 {
			t.Errorf("%s count = %d, %v", k, n, err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM domain_hostnames`); n != 0 {
		t.Errorf("hostnames left: %d", n)
	}
	if n := count(t, s, `SELECT count(*) FROM revisions`); n != 0 {
		t.Errorf("revisions left: %d", n)
	}
	if evs, err := s.Events(ctx, v1alpha1.KindDomain, "www", 0); err != nil || len(evs) != 1 || evs[0].UID != www.UID {
		t.Errorf("events of the finalized domain = %+v, %v; want them kept", evs, err)
	}

	// The name is free again: a new resource, new uid, revisions from 1.
	apply(t, s, tenantReq("acme", `{}`))
	again := apply(t, s, domainReq("www", "acme", "www.example.com")).Resource
	if again.UID == www.UID || again.Generation != 1 {
		t.Fatalf("re-created domain = %+v", again)
	}
	revs, err := s.Revisions(ctx, v1alpha1.KindDomain, "www")
	if err != nil || len(revs) != 1 || revs[0].Number != 1 {
		t.Fatalf("revisions of the re-created domain = %+v, %v", revs, err)
	}
	// The old incarnation's uid does not finalize the new one.
	if _, err := s.Delete(ctx, v1alpha1.KindDomain, "www", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Finalize(ctx, v1alpha1.KindDomain, "www", www.UID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finalize with the old uid: %v", err)
	}
}
