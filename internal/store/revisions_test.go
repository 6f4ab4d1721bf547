package store_test

import (
	"context"
	"testing"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestRevisions(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i, spec := range []string{`{"v":1}`, `{"v":2}`, `{"v": 2}`, `{"v":3}`, `{"v":1}`} {
		req := tenantReq("acme", spec)
		req.Actor = "user" + string(rune('a'+i))
		req.Labels = map[string]string{"i": string(rune('a' + i))} // metadata changes add no revision
		apply(t, s, req)
	}
	revs, err := s.Revisions(ctx, v1alpha1.KindTenant, "acme")
	if err != nil {
		t.Fatal(err)
	}
	type short struct {
		number, generation int64
		spec, actor        string
	}
	var got []short
	for _, r := range revs {
		if r.Kind != v1alpha1.KindTenant || r.Name != "acme" || r.CreatedAt.IsZero() {
			t.Errorf("revision = %+v", r)
		}
		got = append(got, short{r.Number, r.Generation, string(r.Spec), r.Actor})
	}
	want := []short{{1, 1, `{"v": 1}`, "usera"}, {2, 2, `{"v": 2}`, "userb"}, {3, 3, `{"v": 3}`, "userd"}, {4, 4, `{"v": 1}`, "usere"}}
	if len(got) != len(want) {
		t.Fatalf("revisions = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("revision %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	r3, err := s.GetRevision(ctx, v1alpha1.KindTenant, "acme", 3)
	if err != nil || string(r3.Spec) != `{"v": 3}` || r3.Number != 3 {
		t.Fatalf("GetRevision 3 = %+v, %v", r3, err)
	}
	_, err = s.GetRevision(ctx, v1alpha1.KindTenant, "acme", 9)
	wantFieldError(t, err, store.ErrNotFound, "revision")
	_, err = s.GetRevision(ctx, v1alpha1.KindTenant, "nope", 1)
	wantFieldError(t, err, store.ErrNotFound, "metadata.name")
	_, err = s.Revisions(ctx, v1alpha1.KindDomain, "nope")
	wantFieldError(t, err, store.ErrNotFound, "metadata.name")
}
