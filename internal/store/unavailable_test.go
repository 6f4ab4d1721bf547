package store_test

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestOpenUnavailable(t *testing.T) {
	t.Parallel()
	// A socket directory where no server listens.
	u := (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/wcp",
		RawQuery: url.Values{"host": {filepath.Join(t.TempDir(), "nothing")}, "sslmode": {"disable"}}.Encode()}).String()
	start := time.Now()
	_, err := store.Open(context.Background(), u, store.Options{ConnectTimeout: 2 * time.Second})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open = %v, want ErrUnavailable", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Open took %v to fail", elapsed)
	}
	t.Logf("error: %v", err)
}

func TestUnavailableWhileRunning(t *testing.T) {
	t.Parallel()
	c := pgtest.Shared(t)
	ctx := context.Background()
	u, drop, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, u, store.Options{ConnectTimeout: 2 * time.Second})
	if err != nil {
		_ = drop()
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.MigrateUp(ctx); err != nil {
		_ = drop()
		t.Fatal(err)
	}
	// The database goes away under the store (its connections are killed).
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first call may use a dead pooled connection, the second must connect
		_, err = s.Get(ctx, v1alpha1.KindTenant, "acme")
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Get = %v, want ErrUnavailable", err)
		}
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping = %v, want ErrUnavailable", err)
	}
	t.Logf("error: %v", err)
}
