package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// revisionColumns is the select list of a revisions row; revisionRow is what
// it scans into, by bun (listings) or pgx (transactions).
const revisionColumns = "name, number, generation, spec, actor, created_at"

type revisionRow struct {
	Name       string          `bun:"name" db:"name"`
	Number     int64           `bun:"number" db:"number"`
	Generation int64           `bun:"generation" db:"generation"`
	Spec       json.RawMessage `bun:"spec,type:jsonb" db:"spec"`
	Actor      string          `bun:"actor" db:"actor"`
	CreatedAt  time.Time       `bun:"created_at" db:"created_at"`
}

func (r revisionRow) revision(kind v1alpha1.Kind) Revision {
	return Revision{Kind: kind, Name: r.Name, Number: r.Number, Generation: r.Generation,
		Spec: r.Spec, Actor: r.Actor, CreatedAt: r.CreatedAt}
}

// revisionsOf selects the revisions of the current row of t named name.
func (s *Store) revisionsOf(t table, name string, dest any) *bun.SelectQuery {
	return s.db.NewSelect().Model(dest).ModelTableExpr("revisions AS v").
		ColumnExpr("v.name, v.number, v.generation, v.spec, v.actor, v.created_at").
		Where("v.resource_uid = (SELECT uid FROM "+t.name+" WHERE name = ?)", name)
}

// Revisions returns every revision of kind/name, oldest first. Each spec
// change of the resource (its create included) is one revision.
func (s *Store) Revisions(ctx context.Context, kind v1alpha1.Kind, name string) ([]Revision, error) {
	t, err := tableFor(kind)
	if err != nil {
		return nil, err
	}
	var rows []revisionRow
	if err := s.revisionsOf(t, name, &rows).OrderExpr("v.number").Scan(ctx); err != nil {
		return nil, failure("revisions of "+t.key(name), err)
	}
	if len(rows) == 0 { // every resource has revision 1: there is no such resource
		return nil, t.notFound(name)
	}
	out := make([]Revision, len(rows))
	for i, r := range rows {
		out[i] = r.revision(kind)
	}
	return out, nil
}

// GetRevision returns revision number of kind/name.
func (s *Store) GetRevision(ctx context.Context, kind v1alpha1.Kind, name string, number int64) (Revision, error) {
	t, err := tableFor(kind)
	if err != nil {
		return Revision{}, err
	}
	var row revisionRow
	err = s.revisionsOf(t, name, &row).Where("v.number = ?", number).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		if _, gerr := s.Get(ctx, kind, name); gerr != nil {
			return Revision{}, gerr
		}
		return Revision{}, noRevision(kind, name, number)
	}
	if err != nil {
		return Revision{}, failure("revision of "+t.key(name), err)
	}
	return row.revision(kind), nil
}

// noRevision is the error for a revision number kind/name does not have.
func noRevision(kind v1alpha1.Kind, name string, number int64) error {
	return &FieldError{Field: "revision", Value: strconv.FormatInt(number, 10), Err: ErrNotFound,
		Msg: fmt.Sprintf("%s %q has no revision %d", kind, name, number)}
}

// selectRevision reads revision number of the resource with uid in tx.
func selectRevision(ctx context.Context, tx pgx.Tx, kind v1alpha1.Kind, uid string, number int64) (Revision, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+revisionColumns+` FROM revisions WHERE resource_uid = $1::uuid AND number = $2`, uid, number)
	if err != nil {
		return Revision{}, false, err
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[revisionRow])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Revision{}, false, nil
	case err != nil:
		return Revision{}, false, err
	}
	return row.revision(kind), true, nil
}
