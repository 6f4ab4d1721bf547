package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wcp360/wcp360/migrations"
)

// migrationLockKey is the pg_advisory_lock key every migrator takes ("wcp360mg").
const migrationLockKey int64 = 0x7763703336306d67

// migrationFileRE is the only accepted migration file name.
var migrationFileRE = regexp.MustCompile(`^([0-9]{3})_([a-z0-9][a-z0-9_]*)\.(up|down)\.sql$`)

// MigrationState is one known (or applied) migration.
type MigrationState struct {
	Version   int
	Name      string
	Applied   bool
	AppliedAt *time.Time
}

// migration is one parsed NNN_name pair.
type migration struct {
	version  int
	name     string
	up, down string
}

// Migrator applies and reverts numbered migrations. Every Up or Down holds a
// PostgreSQL advisory lock on one connection for its whole run, so migrators
// on many hosts can start at once: the first applies, the others find nothing
// left to do. Each migration runs in its own transaction, together with its
// row in schema_migrations.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []migration
}

// NewMigrator parses the migrations in fsys (the top directory only). It
// refuses names other than NNN_name.up.sql / NNN_name.down.sql, a version
// without both halves, two names for one version, and gaps.
func NewMigrator(pool *pgxpool.Pool, fsys fs.FS) (*Migrator, error) {
	ms, err := parseMigrations(fsys)
	if err != nil {
		return nil, err
	}
	return &Migrator{pool: pool, migrations: ms}, nil
}

func parseMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	byVersion := map[int]*migration{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := addMigrationFile(fsys, e.Name(), byVersion); err != nil {
			return nil, err
		}
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.up == "" || m.down == "" {
			return nil, fmt.Errorf("migrations: %03d_%s needs both a non-empty .up.sql and .down.sql", m.version, m.name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations: version %03d is missing (next is %03d_%s)", i+1, m.version, m.name)
		}
	}
	return out, nil
}

func addMigrationFile(fsys fs.FS, file string, byVersion map[int]*migration) error {
	sm := migrationFileRE.FindStringSubmatch(file)
	if sm == nil {
		return fmt.Errorf("migrations: %q is not named NNN_name.up.sql or NNN_name.down.sql", file)
	}
	version, _ := strconv.Atoi(sm[1])
	if version == 0 {
		return fmt.Errorf("migrations: %q: versions start at 001", file)
	}
	body, err := fs.ReadFile(fsys, file)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	m := byVersion[version]
	if m == nil {
		m = &migration{version: version, name: sm[2]}
		byVersion[version] = m
	}
	if m.name != sm[2] {
		return fmt.Errorf("migrations: version %03d has two names: %q and %q", version, m.name, sm[2])
	}
	sql := strings.TrimSpace(string(body))
	if sm[3] == "up" {
		m.up = sql
	} else {
		m.down = sql
	}
	return nil
}

// Up applies every migration not applied yet, in order.
func (m *Migrator) Up(ctx context.Context) error {
	return m.locked(ctx, func(conn *pgx.Conn, applied []appliedMigration) error {
		for _, mg := range m.migrations[len(applied):] {
			if err := runMigration(ctx, conn, mg, true); err != nil {
				return err
			}
		}
		return nil
	})
}

// Down reverts the last steps applied migrations, newest first; steps <= 0
// reverts all of them.
func (m *Migrator) Down(ctx context.Context, steps int) error {
	return m.locked(ctx, func(conn *pgx.Conn, applied []appliedMigration) error {
		n := len(applied)
		if steps <= 0 || steps > n {
			steps = n
		}
		for v := n; v > n-steps; v-- {
			if err := runMigration(ctx, conn, m.migrations[v-1], false); err != nil {
				return err
			}
		}
		return nil
	})
}

// Status lists every migration the binary knows, applied or not, followed by
// any applied by a newer binary (which Up and Down refuse to touch).
func (m *Migrator) Status(ctx context.Context) ([]MigrationState, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, failure("migration status", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, failure("migration status", err)
	}
	var applied []appliedMigration
	if exists {
		if applied, err = readApplied(ctx, conn.Conn()); err != nil {
			return nil, failure("migration status", err)
		}
	}
	out := make([]MigrationState, 0, len(m.migrations))
	for _, mg := range m.migrations {
		out = append(out, MigrationState{Version: mg.version, Name: mg.name})
	}
	for _, a := range applied {
		at := a.appliedAt
		if a.version <= len(out) {
			out[a.version-1].Applied, out[a.version-1].AppliedAt = true, &at
			continue
		}
		out = append(out, MigrationState{Version: a.version, Name: a.name, Applied: true, AppliedAt: &at})
	}
	return out, nil
}

type appliedMigration struct {
	version   int
	name      string
	appliedAt time.Time
}

// locked runs fn on one connection holding the migration advisory lock, with
// the applied migrations checked against the known ones.
func (m *Migrator) locked(ctx context.Context, fn func(*pgx.Conn, []appliedMigration) error) (err error) {
	pc, err := m.pool.Acquire(ctx)
	if err != nil {
		return failure("migrate", err)
	}
	defer pc.Release()
	conn := pc.Conn()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return failure("migrate: take the advisory lock", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
			// A session lock must not go back to the pool: drop the connection.
			_ = conn.Close(context.WithoutCancel(ctx))
			err = errors.Join(err, failure("migrate: release the advisory lock", uerr))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY CHECK (version >= 1),
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return failure("migrate: create schema_migrations", err)
	}
	applied, err := readApplied(ctx, conn)
	if err != nil {
		return failure("migrate", err)
	}
	if err := m.checkApplied(applied); err != nil {
		return err
	}
	return fn(conn, applied)
}

func readApplied(ctx context.Context, conn *pgx.Conn) ([]appliedMigration, error) {
	rows, err := conn.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (appliedMigration, error) {
		var a appliedMigration
		err := r.Scan(&a.version, &a.name, &a.appliedAt)
		return a, err
	})
}

// checkApplied refuses a database migrated by a newer binary, or one whose
// history does not match the migrations this binary carries.
func (m *Migrator) checkApplied(applied []appliedMigration) error {
	for i, a := range applied {
		if a.version > len(m.migrations) {
			return fmt.Errorf("%w: the database has migration %03d_%s applied, but this binary knows migrations up to %03d; "+
				"run a wcpd at least as new as the one that migrated it", ErrSchemaTooNew, a.version, a.name, len(m.migrations))
		}
		if a.version != i+1 {
			return fmt.Errorf("store: migrate: schema_migrations is inconsistent: migration %03d is applied but %03d is not", a.version, i+1)
		}
		if known := m.migrations[i].name; known != a.name {
			return fmt.Errorf("store: migrate: migration %03d was applied as %q but this binary calls it %q", a.version, a.name, known)
		}
	}
	return nil
}

// runMigration applies (up) or reverts one migration in its own transaction.
func runMigration(ctx context.Context, conn *pgx.Conn, mg migration, up bool) error {
	what, sql := "up", mg.up
	if !up {
		what, sql = "down", mg.down
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: pgx sends it with the simple protocol, so a file may
		// hold many statements.
		if _, err := tx.Exec(ctx, sql); err != nil {
			return err
		}
		var err error
		if up {
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, mg.version, mg.name)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, mg.version)
		}
		return err
	})
	if err != nil {
		return failure(fmt.Sprintf("migrate: %03d_%s.%s.sql", mg.version, mg.name, what), err)
	}
	return nil
}

// MigrateUp applies every migration of this binary not applied yet.
func (s *Store) MigrateUp(ctx context.Context) error {
	m, err := NewMigrator(s.pool, migrations.FS)
	if err != nil {
		return err
	}
	return m.Up(ctx)
}

// MigrateDown reverts the last steps migrations; steps <= 0 reverts all.
func (s *Store) MigrateDown(ctx context.Context, steps int) error {
	m, err := NewMigrator(s.pool, migrations.FS)
	if err != nil {
		return err
	}
	return m.Down(ctx, steps)
}

// MigrationStatus lists the migrations of this binary and whether each is applied.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	m, err := NewMigrator(s.pool, migrations.FS)
	if err != nil {
		return nil, err
	}
	return m.Status(ctx)
}
