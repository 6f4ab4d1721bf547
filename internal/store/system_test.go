package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/store"
)

func TestSystem(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	if done, err := s.Initialized(ctx); err != nil || done {
		t.Fatalf("Initialized on a new database = %v, %v", done, err)
	}
	if err := s.SystemSet(ctx, store.SystemInitializedKey, true); err != nil {
		t.Fatal(err)
	}
	if done, err := s.Initialized(ctx); err != nil || !done {
		t.Fatalf("Initialized after setting it = %v, %v", done, err)
	}

	type jwt struct {
		Issuer string   `json:"issuer"`
		Keys   []string `json:"keys"`
	}
	want := jwt{Issuer: "wcpd", Keys: []string{"k1", "k2"}}
	if err := s.SystemSet(ctx, "jwt", want); err != nil {
		t.Fatal(err)
	}
	var got jwt
	if err := s.SystemGet(ctx, "jwt", &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	var missing string
	wantFieldError(t, s.SystemGet(ctx, "nope", &missing), store.ErrNotFound, "key")
}
