package migrations_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
	"github.com/wcp360/wcp360/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// catalog describes every object of the public schema except the migrator's
// own bookkeeping: relations, columns, constraints, functions and types.
func catalog(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'relation ' || c.relname || ' ' || c.relkind::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relname NOT LIKE 'schema_migrations%'
		UNION ALL
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' ||
			is_nullable || ' ' || coalesce(column_default, '-')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
		UNION ALL
		SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conname NOT LIKE 'schema_migrations%'
		UNION ALL
		SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
		UNION ALL
		SELECT 'type ' || typname FROM pg_type
		WHERE typnamespace = 'public'::regnamespace AND typrelid = 0 AND typelem = 0
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpDownUp applies every migration, reverts them one at a time, and
// applies them again: each down must drop exactly what its up created.
func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, err := store.NewMigrator(pool, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	empty := catalog(t, pool)
	if len(empty) != 0 {
		t.Fatalf("a fresh database is not empty: %v", empty)
	}

	// Up one version at a time, remembering the catalog after each.
	states, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := [][]string{empty}
	for range states {
		if err := upOne(ctx, t, pool); err != nil {
			t.Fatal(err)
		}
		after = append(after, catalog(t, pool))
	}
	full := after[len(after)-1]

	// Down one at a time: each step must return to the catalog before its up.
	for v := len(states); v >= 1; v-- {
		if err := m.Down(ctx, 1); err != nil {
			t.Fatalf("down %d: %v", v, err)
		}
		if diff := cmp.Diff(after[v-1], catalog(t, pool)); diff != "" {
			t.Fatalf("down of migration %d did not undo its up (-want +got):\n%s", v, diff)
		}
	}
	if err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, catalog(t, pool)); diff != "" {
		t.Fatalf("up after down differs (-first +second):\n%s", diff)
	}
	if err := m.Down(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := catalog(t, pool); len(got) != 0 {
		t.Fatalf("left after down all: %v", got)
	}
}

// upOne applies the next migration through a migrator that knows only the
// files up to it.
func upOne(ctx context.Context, t *testing.T, pool *pgxpool.Pool) error {
	t.Helper()
	all, err := store.NewMigrator(pool, migrations.FS)
	if err != nil {
		return err
	}
	states, err := all.Status(ctx)
	if err != nil {
		return err
	}
	applied := 0
	for _, st := range states {
		if st.Applied {
			applied++
		}
	}
	var prefixes []string
	for v := 1; v <= applied+1; v++ {
		prefixes = append(prefixes, fmt.Sprintf("%03d_", v))
	}
	m, err := store.NewMigrator(pool, filtered{prefixes: prefixes})
	if err != nil {
		return err
	}
	return m.Up(ctx)
}

// filtered is migrations.FS limited to the files with one of prefixes.
type filtered struct{ prefixes []string }

func (f filtered) Open(name string) (fs.File, error) { return migrations.FS.Open(name) }

func (f filtered) ReadDir(name string) ([]fs.DirEntry, error) {
	all, err := fs.ReadDir(migrations.FS, name)
	if err != nil {
		return nil, err
	}
	var out []fs.DirEntry
	for _, e := range all {
		for _, p := range f.prefixes {
			if strings.HasPrefix(e.Name(), p) {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func TestFilesArePaired(t *testing.T) {
	t.Parallel()
	if _, err := store.NewMigrator(nil, migrations.FS); err != nil {
		t.Fatal(err)
	}
	ups, _ := fs.Glob(migrations.FS, "*.up.sql")
	downs, _ := fs.Glob(migrations.FS, "*.down.sql")
	if len(ups) == 0 || len(ups) != len(downs) {
		t.Fatalf("%d up and %d down files", len(ups), len(downs))
	}
}
