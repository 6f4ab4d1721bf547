package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// SystemInitializedKey is the system key saying the first-run setup is done.
const SystemInitializedKey = "system_initialized"

// systemRow is a row of the system table.
type systemRow struct {
	Key   string          `bun:"key,pk"`
	Value json.RawMessage `bun:"value,type:jsonb"`
}

// SystemGet decodes the value of key into into (a pointer, as for
// json.Unmarshal). A missing key is ErrNotFound.
func (s *Store) SystemGet(ctx context.Context, key string, into any) error {
	var row systemRow
	err := s.db.NewSelect().Model(&row).ModelTableExpr("system").ColumnExpr("key, value").Where("key = ?", key).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return &FieldError{Field: "key", Value: key, Err: ErrNotFound, Msg: fmt.Sprintf("system setting %q is not set", key)}
	}
	if err != nil {
		return failure("system get "+key, err)
	}
	if err := json.Unmarshal(row.Value, into); err != nil {
		return fmt.Errorf("store: system setting %q: %w", key, err)
	}
	return nil
}

// SystemSet stores value (encoded as JSON) under key.
func (s *Store) SystemSet(ctx context.Context, key string, value any) error {
	if key == "" {
		return &FieldError{Field: "key", Err: ErrInvalid, Msg: "a system setting needs a key"}
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("store: system setting %q: %w", key, err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO system (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, key, b); err != nil {
		return failure("system set "+key, err)
	}
	return nil
}

// Initialized reports whether the first-run setup is done (system_initialized).
func (s *Store) Initialized(ctx context.Context) (bool, error) {
	var done bool
	err := s.SystemGet(ctx, SystemInitializedKey, &done)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return done, err
}

// MarkInitialized sets system_initialized from false to true, atomically:
// it reports false (and changes nothing) when the system was initialized
// already, so of two first boots at once exactly one wins.
func (s *Store) MarkInitialized(ctx context.Context) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE system SET value = 'true'::jsonb, updated_at = now()
		WHERE key = $1 AND value = 'false'::jsonb`, SystemInitializedKey)
	if err != nil {
		return false, failure("mark initialized", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	// No row yet (a database older than migration 003's insert): insert it.
	tag, err = s.pool.Exec(ctx, `INSERT INTO system (key, value) VALUES ($1, 'true'::jsonb) ON CONFLICT (key) DO NOTHING`, SystemInitializedKey)
	if err != nil {
		return false, failure("mark initialized", err)
	}
	return tag.RowsAffected() == 1, nil
}
