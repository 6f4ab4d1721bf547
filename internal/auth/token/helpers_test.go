package token_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/auth/token"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// t0 is when the tests' clocks start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// fixedKey is a key whose private half the test knows, to sign tokens the
// service would never make.
type fixedKey struct {
	id   string
	priv ed25519.PrivateKey
}

// keyDir makes a key directory holding one known key made at created.
func keyDir(t testing.TB, created time.Time) (string, fixedKey) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	k := fixedKey{id: token.KeyID(created, "0000abcd"), priv: ed25519.NewKeyFromSeed(seed)}
	if err := token.WriteKeyFile(filepath.Join(dir, k.id+".pem"), k.priv); err != nil {
		t.Fatal(err)
	}
	return dir, k
}

// noStore is a Store for tests that verify access tokens only.
type noStore struct{ token.Store }

type env struct {
	svc   *token.Service
	st    *store.Store
	clock *clock
	key   fixedKey
	ring  *token.KeyRing
}

// newEnv makes a service over a fresh database (nil db: none) and a key
// directory with one known key, and the principals root (admin) and alice
// (tenant of acme).
func newEnv(t *testing.T, withDB bool, cfg token.Config) *env {
	t.Helper()
	e := &env{clock: newClock()}
	dir, key := keyDir(t, t0.Add(-time.Hour))
	e.key = key
	ring, err := token.LoadKeyRing(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.ring = ring
	var st token.Store = noStore{}
	if withDB {
		ctx := context.Background()
		e.st, err = store.Open(ctx, pgtest.New(t), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.st.Close)
		if err := e.st.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.Apply(ctx, store.ApplyRequest{Kind: "Tenant", Name: "acme", Spec: []byte(`{}`), Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []store.Principal{
			{Name: "root", Role: store.RoleAdmin, Source: store.SourcePAM},
			{Name: "alice", Role: store.RoleTenant, Tenant: "acme", Source: store.SourcePAM},
		} {
			if _, err := e.st.PutPrincipal(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		st = e.st
	}
	cfg.Clock = e.clock.Now
	e.svc, err = token.New(ring, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// refusals lists every refusal sentinel.
var refusals = []error{token.ErrMalformed, token.ErrAlgorithm, token.ErrUnknownKey, token.ErrSignature,
	token.ErrExpired, token.ErrNotYetValid, token.ErrIssuer, token.ErrAudience, token.ErrClaims,
	token.ErrUnknownToken, token.ErrRevoked, token.ErrRefreshReused, token.ErrDisabled}

// wantRefusal checks err is the refusal want, and no other.
func wantRefusal(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if !errors.Is(err, token.ErrInvalidToken) {
		t.Fatalf("err = %v does not match ErrInvalidToken", err)
	}
	for _, other := range refusals {
		if !errors.Is(other, want) && errors.Is(err, other) {
			t.Fatalf("err = %v matches %v as well as %v", err, other, want)
		}
	}
}
