package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// UpdateStatus writes a controller's observed state of the row with u.UID:
// the status and observedGeneration. observedGeneration never moves back (a
// lower value keeps the stored one) and may not pass the generation
// (ErrConflict). The write bumps the resourceVersion but sends no NOTIFY:
// the controller that writes it would only wake itself. A row that is gone,
// or was re-created under the same name, gives ErrNotFound.
func (s *Store) UpdateStatus(ctx context.Context, u StatusUpdate) (Resource, error) {
	t, err := tableFor(u.Kind)
	if err != nil {
		return Resource{}, err
	}
	t.forget(ctx, u.Name)
	status := []byte(u.Status)
	if len(status) == 0 {
		status = []byte("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(status, &obj); err != nil || obj == nil {
		return Resource{}, &FieldError{Field: "status", Err: ErrInvalid, Msg: "status must be a JSON object"}
	}
	row, found, err := scanResource(s.pool.Query(ctx, `UPDATE `+t.name+` SET status = $3,
			observed_generation = GREATEST(observed_generation, $4), resource_version = resource_version + 1, updated_at = now()
		WHERE name = $1 AND uid::text = $2 AND $4 <= generation RETURNING `+resourceColumns,
		u.Name, u.UID, status, u.ObservedGeneration))
	if err != nil {
		return Resource{}, failure("update status of "+t.key(u.Name), err)
	}
	if !found {
		return Resource{}, s.statusRefused(ctx, t, u)
	}
	return row.resource(t.kind), nil
}

// statusRefused says why a status update matched no row.
func (s *Store) statusRefused(ctx context.Context, t table, u StatusUpdate) error {
	var generation int64
	err := s.pool.QueryRow(ctx, `SELECT generation FROM `+t.name+` WHERE name = $1 AND uid::text = $2`,
		u.Name, u.UID).Scan(&generation)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return &FieldError{Field: "metadata.uid", Value: u.UID, Err: ErrNotFound,
			Msg: fmt.Sprintf("%s %q with uid %s is gone", t.kind, u.Name, u.UID)}
	case err != nil:
		return failure("update status of "+t.key(u.Name), err)
	}
	return &FieldError{Field: "status.observedGeneration", Value: strconv.FormatInt(u.ObservedGeneration, 10), Err: ErrConflict,
		Msg: fmt.Sprintf("observedGeneration %d is past the generation %d of %s %q", u.ObservedGeneration, generation, t.kind, u.Name)}
}
