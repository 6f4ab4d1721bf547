package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/migrations"
)

// applied lists the applied versions of a status.
func applied(states []store.MigrationState) []int {
	out := []int{}
	for _, st := range states {
		if st.Applied != (st.AppliedAt != nil) {
			panic("Applied and AppliedAt disagree")
		}
		if st.Applied {
			out = append(out, st.Version)
		}
	}
	return out
}

func status(t *testing.T, s *store.Store) []store.MigrationState {
	t.Helper()
	st, err := s.MigrationStatus(context.Background())
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	return st
}

func TestMigrateUpDownStatus(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := context.Background()

	st := status(t, s)
	if len(st) != 4 || st[0].Name != "init" || len(applied(st)) != 0 {
		t.Fatalf("status of an empty database = %+v", st)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := applied(status(t, s)); !cmp.Equal([]int{1, 2, 3, 4}, got) {
		t.Fatalf("applied after Up = %v", got)
	}
	if err := s.MigrateUp(ctx); err != nil { // nothing left to do
		t.Fatal(err)
	}
	if err := s.MigrateDown(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := applied(status(t, s)); !cmp.Equal([]int{1, 2, 3}, got) {
		t.Fatalf("applied after Down(1) = %v", got)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_tables WHERE tablename = 'auth_principals'`); n != 0 {
		t.Fatal("Down(1) left the auth_principals table")
	}
	if err := s.MigrateDown(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := applied(status(t, s)); len(got) != 0 {
		t.Fatalf("applied after Down(0) = %v", got)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	if done, err := s.Initialized(ctx); err != nil || done {
		t.Fatalf("after up, down, up: Initialized = %v, %v", done, err)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	first, url := openStore(t)
	ctx := context.Background()

	// Migrators of several processes (pools) start at once.
	const migrators = 6
	stores := []*store.Store{first}
	for range migrators - 1 {
		s, err := store.Open(ctx, url, store.Options{MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, migrators)
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.MigrateUp(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrator %d: %v", i, err)
		}
	}
	if n := count(t, first, `SELECT count(*) FROM schema_migrations`); n != 4 {
		t.Fatalf("schema_migrations rows = %d, want 4", n)
	}
	if n := count(t, first, `SELECT count(*) FROM system`); n != 1 {
		t.Fatalf("system rows = %d, want 1 (seeded once)", n)
	}
	// The lock is released: nobody holds it any more.
	if n := count(t, first, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); n != 0 {
		t.Fatalf("%d advisory locks still held", n)
	}
}

func TestMigrateRefusesUnknownHistory(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	if _, err := s.Pool().Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (5, 'future')`); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"up": s.MigrateUp(ctx), "down": s.MigrateDown(ctx, 1)} {
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "005_future") {
			t.Errorf("%s on a newer schema: %v", name, err)
		}
	}
	st := status(t, s)
	if len(st) != 5 || st[4].Name != "future" || !st[4].Applied {
		t.Fatalf("status lists the newer migration: %+v", st)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_tables WHERE tablename = 'system'`); n != 1 {
		t.Fatal("a refused Down changed the schema")
	}

	if _, err := s.Pool().Exec(ctx, `DELETE FROM schema_migrations WHERE version = 5;
		UPDATE schema_migrations SET name = 'renamed' WHERE version = 2`); err != nil {
		t.Fatal(err)
	}
	if err := s.MigrateUp(ctx); err == nil || !strings.Contains(err.Error(), `"renamed"`) {
		t.Fatalf("Up with a renamed migration: %v", err)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := context.Background()
	fsys := fstest.MapFS{
		"001_one.up.sql":   {Data: []byte(`CREATE TABLE one (id int);`)},
		"001_one.down.sql": {Data: []byte(`DROP TABLE one;`)},
		"002_two.up.sql":   {Data: []byte(`CREATE TABLE two (id int); SELECT no_such_function();`)},
		"002_two.down.sql": {Data: []byte(`DROP TABLE two;`)},
	}
	m, err := store.NewMigrator(s.Pool(), fsys)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Up(ctx)
	if err == nil || !strings.Contains(err.Error(), "002_two.up.sql") {
		t.Fatalf("Up = %v, want the failing file named", err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := applied(st); !cmp.Equal([]int{1}, got) {
		t.Fatalf("applied = %v, want [1]", got)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_tables WHERE tablename IN ('one', 'two')`); n != 1 {
		t.Fatalf("tables one/two = %d, want only one (the failed migration rolled back)", n)
	}
}

func TestParseMigrations(t *testing.T) {
	t.Parallel()
	pair := func(v string) fstest.MapFS {
		return fstest.MapFS{v + ".up.sql": {Data: []byte("SELECT 1")}, v + ".down.sql": {Data: []byte("SELECT 1")}}
	}
	merge := func(fss ...fstest.MapFS) fstest.MapFS {
		out := fstest.MapFS{}
		for _, f := range fss {
			for k, v := range f {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string // in the error; "" for none
	}{
		{"good", merge(pair("001_init"), pair("002_more")), ""},
		{"bad name", merge(pair("001_init"), fstest.MapFS{"2_more.up.sql": {}}), "is not named"},
		{"upper case", merge(pair("001_Init")), "is not named"},
		{"not sql", merge(pair("001_init"), fstest.MapFS{"notes.txt": {}}), "is not named"},
		{"gap", merge(pair("001_init"), pair("003_more")), "version 002 is missing"},
		{"no first", pair("002_more"), "version 001 is missing"},
		{"zero", pair("000_init"), "start at 001"},
		{"two names", merge(pair("001_init"), pair("001_other")), "two names"},
		{"no down", merge(pair("001_init"), fstest.MapFS{"002_more.up.sql": {Data: []byte("SELECT 1")}}), "both"},
		{"empty up", merge(pair("001_init"), fstest.MapFS{"001_init.up.sql": {Data: []byte(" \n")}}), "both"},
	}
	for _, tc := range tests {
		_, err := store.NewMigrator(nil, tc.fsys)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := store.NewMigrator(nil, migrations.FS); err != nil {
		t.Fatalf("the embedded migrations: %v", err)
	}
}
