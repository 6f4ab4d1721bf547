package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// Defaults of Options.
const (
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxEventsPerResource = 100
)

// Options tune Open. Zero values take the defaults.
type Options struct {
	// MaxConns caps the pool (pgx default: max(4, number of CPUs)).
	MaxConns int32
	// ConnectTimeout bounds each new connection (DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// MaxEventsPerResource keeps at most this many events per resource,
	// dropping the oldest (DefaultMaxEventsPerResource).
	MaxEventsPerResource int
}

// Store is the PostgreSQL store. It is safe for concurrent use. Time always
// comes from the database (now(), the transaction's start), never from the
// host clock.
type Store struct {
	pool      *pgxpool.Pool
	sqldb     *sql.DB
	db        *bun.DB // listings and row models, over the same pool
	maxEvents int
}

// Open connects to url (a postgres:// URL or a key=value DSN) and checks the
// server answers. A server that cannot be reached gives an error wrapping
// ErrUnavailable. Open does not migrate: call MigrateUp.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	if opts.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	// bun inlines every value into its SQL, so each read is a new statement
	// text: through the pool's statement cache that would prepare and keep
	// thousands of one-off statements per connection (30+ MB with 10,000
	// resources). bun's reads therefore get their own connections using the
	// simple protocol; the hand-written, parameterised writes keep the
	// cached prepared statements. The two share database.maxConns.
	total := cfg.MaxConns
	readConns := max(1, total/3)
	cfg.MaxConns = max(1, total-readConns)
	readCfg := cfg.ConnConfig.Copy()
	readCfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{pool: pool, maxEvents: opts.MaxEventsPerResource}
	if s.maxEvents <= 0 {
		s.maxEvents = DefaultMaxEventsPerResource
	}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.sqldb = stdlib.OpenDB(*readCfg)
	s.sqldb.SetMaxOpenConns(int(readConns))
	s.sqldb.SetMaxIdleConns(int(readConns))
	s.sqldb.SetConnMaxIdleTime(5 * time.Minute)
	s.db = bun.NewDB(s.sqldb, pgdialect.New())
	return s, nil
}

// Close releases every connection.
func (s *Store) Close() {
	_ = s.db.Close() // closes s.sqldb; the pool is closed below
	s.pool.Close()
}

// Pool is the connection pool, for the LISTEN connection and the migrator.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return failure("ping", err)
	}
	return nil
}

// ---------------------------------------------------------------- kinds

// table is where one kind is kept.
type table struct {
	kind v1alpha1.Kind
	name string // SQL table
	// owned kinds belong to a tenant (tenant_id column).
	owned bool
}

func tableFor(kind v1alpha1.Kind) (table, error) {
	switch kind {
	case v1alpha1.KindTenant:
		return table{kind: kind, name: "tenants"}, nil
	case v1alpha1.KindDomain:
		return table{kind: kind, name: "domains", owned: true}, nil
	case v1alpha1.KindDatabase:
		return table{kind: kind, name: "databases", owned: true}, nil
	}
	return table{}, &FieldError{Field: "kind", Value: string(kind), Err: ErrNotFound,
		Msg: fmt.Sprintf("unknown kind %q (want Tenant, Domain or Database)", kind)}
}

// key is the NOTIFY payload and workqueue key of a row of t.
func (t table) key(name string) string { return string(t.kind) + "/" + name }

func (t table) notFound(name string) error {
	return &FieldError{Field: "metadata.name", Value: name, Err: ErrNotFound,
		Msg: fmt.Sprintf("%s %q not found", t.kind, name)}
}

// ---------------------------------------------------------------- rows

// resourceColumns is the select list of every resource table; resourceRow
// is what it scans into, by bun (listings) or pgx (transactions).
const resourceColumns = `id, uid::text AS uid, name, tenant, node, labels, annotations, spec, status,
	generation, observed_generation, resource_version, created_at, updated_at, deletion_requested_at`

type resourceRow struct {
	bun.BaseModel `db:"-"`

	ID                  int64             `bun:"id,pk" db:"id"`
	UID                 string            `bun:"uid" db:"uid"`
	Name                string            `bun:"name" db:"name"`
	Tenant              string            `bun:"tenant" db:"tenant"`
	Node                string            `bun:"node" db:"node"`
	Labels              map[string]string `bun:"labels,type:jsonb" db:"labels"`
	Annotations         map[string]string `bun:"annotations,type:jsonb" db:"annotations"`
	Spec                json.RawMessage   `bun:"spec,type:jsonb" db:"spec"`
	Status              json.RawMessage   `bun:"status,type:jsonb" db:"status"`
	Generation          int64             `bun:"generation" db:"generation"`
	ObservedGeneration  int64             `bun:"observed_generation" db:"observed_generation"`
	ResourceVersion     int64             `bun:"resource_version" db:"resource_version"`
	CreatedAt           time.Time         `bun:"created_at" db:"created_at"`
	UpdatedAt           time.Time         `bun:"updated_at" db:"updated_at"`
	DeletionRequestedAt *time.Time        `bun:"deletion_requested_at" db:"deletion_requested_at"`
}

func (r *resourceRow) resource(kind v1alpha1.Kind) Resource {
	return Resource{
		Kind: kind, Name: r.Name, UID: r.UID, Tenant: r.Tenant, Node: r.Node,
		Labels: emptyToNil(r.Labels), Annotations: emptyToNil(r.Annotations),
		Spec: r.Spec, Status: r.Status,
		Generation: r.Generation, ObservedGeneration: r.ObservedGeneration, ResourceVersion: r.ResourceVersion,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DeletionRequestedAt: r.DeletionRequestedAt,
	}
}

func emptyToNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// scanResource reads one resourceColumns row; found is false when there is none.
func scanResource(rows pgx.Rows, err error) (row resourceRow, found bool, _ error) {
	if err != nil {
		return row, false, err
	}
	row, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[resourceRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return row, false, nil
	}
	return row, err == nil, err
}

// selectForUpdate locks the row of t named name.
func selectForUpdate(ctx context.Context, tx pgx.Tx, t table, name string) (resourceRow, bool, error) {
	return scanResource(tx.Query(ctx, `SELECT `+resourceColumns+` FROM `+t.name+` WHERE name = $1 FOR UPDATE`, name))
}

// notify announces kind/name on NotifyChannel when tx commits.
func notify(ctx context.Context, tx pgx.Tx, key string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, key)
	return err
}

// inTx runs fn in a transaction, committed unless dryRun (then rolled back).
func (s *Store) inTx(ctx context.Context, dryRun bool, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if dryRun {
		return tx.Rollback(ctx)
	}
	return tx.Commit(ctx)
}

// jsonObject encodes m as a JSON object ({} for nil).
func jsonObject(m map[string]string) []byte {
	if m == nil {
		return []byte("{}")
	}
	b, _ := json.Marshal(m) // a map[string]string always encodes
	return b
}
