package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestEventsFoldAndTrim(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, store.Options{MaxEventsPerResource: 5})
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))
	www := apply(t, s, domainReq("www", "acme", "www.example.com")).Resource

	record := func(e store.Event) {
		t.Helper()
		if err := s.RecordEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		record(store.Event{Kind: v1alpha1.KindDomain, Name: "www", Type: store.EventWarning, Reason: "NginxTestFailed", Message: "line 3"})
	}
	evs, err := s.Events(ctx, v1alpha1.KindDomain, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("events = %+v, want one folded event", evs)
	}
	e := evs[0]
	if e.Count != 3 || e.UID != www.UID || e.Tenant != "acme" || e.LastSeen.Before(e.FirstSeen) {
		t.Fatalf("folded event = %+v", e)
	}

	// Another message is another event; only the newest 5 are kept.
	for i := range 7 {
		record(store.Event{Kind: v1alpha1.KindDomain, Name: "www", Reason: "Configured", Message: fmt.Sprintf("step %d", i)})
	}
	evs, err = s.Events(ctx, v1alpha1.KindDomain, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.Message)
	}
	if diff := cmp.Diff([]string{"step 6", "step 5", "step 4", "step 3", "step 2"}, got); diff != "" {
		t.Fatalf("kept events, newest first (-want +got):\n%s", diff)
	}
	if evs, _ := s.Events(ctx, v1alpha1.KindDomain, "www", 2); len(evs) != 2 || evs[0].Message != "step 6" {
		t.Fatalf("limit 2: %+v", evs)
	}

	// Other resources have their own quota; the tenant sees everything of its own.
	record(store.Event{Kind: v1alpha1.KindTenant, Name: "acme", Reason: "UserCreated"})
	tev, err := s.TenantEvents(ctx, "acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tev) != 6 || tev[0].Reason != "UserCreated" || tev[0].Type != store.EventNormal {
		t.Fatalf("tenant events = %+v", tev)
	}

	// An event about a resource that is not (or no longer) there is kept too.
	record(store.Event{Kind: v1alpha1.KindDomain, Name: "gone", Tenant: "acme", Reason: "Removed"})
	if evs, _ := s.Events(ctx, v1alpha1.KindDomain, "gone", 0); len(evs) != 1 || evs[0].UID != "00000000-0000-0000-0000-000000000000" {
		t.Fatalf("event of a missing resource: %+v", evs)
	}

	err = s.RecordEvent(ctx, store.Event{Kind: v1alpha1.KindDomain, Name: "www", Type: "Fatal", Reason: "x"})
	wantFieldError(t, err, store.ErrInvalid, "event")
}
