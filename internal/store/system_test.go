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

// Of several first boots at once, exactly one marks the system initialized.
func TestMarkInitializedOnce(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := t.Context()
	const n = 8
	won := make(chan bool, n)
	for range n {
		go func() {
			ok, err := st.MarkInitialized(ctx)
			if err != nil {
				t.Error(err)
			}
			won <- ok
		}()
	}
	wins := 0
	for range n {
		if <-won {
			wins++
		}
	}
	if wins != 1 {
		t.Errorf("%d first boots won, want exactly 1", wins)
	}
	if done, err := st.Initialized(ctx); err != nil || !done {
		t.Errorf("Initialized = %v, %v", done, err)
	}
}
