package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// selectResources starts a bun select of the rows of t into dest.
func (s *Store) selectResources(t table, dest any) *bun.SelectQuery {
	return s.db.NewSelect().Model(dest).ModelTableExpr(t.name).ColumnExpr(resourceColumns)
}

// Get returns the resource kind/name, also when it is marked for deletion;
// under WithReadCache, as it was first read with that context.
func (s *Store) Get(ctx context.Context, kind v1alpha1.Kind, name string) (Resource, error) {
	t, err := tableFor(kind)
	if err != nil {
		return Resource{}, err
	}
	if r, ok := t.cached(ctx, name); ok {
		return r, nil
	}
	var row resourceRow
	err = s.selectResources(t, &row).Where("name = ?", name).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Resource{}, t.notFound(name)
	}
	if err != nil {
		return Resource{}, failure("get "+t.key(name), err)
	}
	r := row.resource(kind)
	t.remember(ctx, r)
	return r, nil
}

// List returns the resources of kind that match opts, ordered by name.
// Resources marked for deletion are included.
func (s *Store) List(ctx context.Context, kind v1alpha1.Kind, opts ListOptions) ([]Resource, error) {
	t, err := tableFor(kind)
	if err != nil {
		return nil, err
	}
	var rows []resourceRow
	q := s.selectResources(t, &rows).OrderExpr("name")
	if opts.Tenant != "" {
		q = q.Where("tenant = ?", opts.Tenant)
	}
	if opts.Node != "" {
		q = q.Where("node = ?", opts.Node)
	}
	if len(opts.Labels) > 0 {
		q = q.Where("labels @> ?::jsonb", string(jsonObject(opts.Labels)))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, failure("list "+string(kind), err)
	}
	out := make([]Resource, len(rows))
	for i := range rows {
		out[i] = rows[i].resource(kind)
	}
	return out, nil
}

// ListKeys returns the names of every resource of kind on node (every node
// when node is empty), ordered: the cheap listing a periodic resync needs.
func (s *Store) ListKeys(ctx context.Context, kind v1alpha1.Kind, node string) ([]string, error) {
	t, err := tableFor(kind)
	if err != nil {
		return nil, err
	}
	names := []string{}
	q := s.db.NewSelect().TableExpr(t.name).Column("name").OrderExpr("name")
	if node != "" {
		q = q.Where("node = ?", node)
	}
	if err := q.Scan(ctx, &names); err != nil {
		return nil, failure("list keys of "+string(kind), err)
	}
	return names, nil
}

// Count returns how many resources of kind there are (marked ones included).
func (s *Store) Count(ctx context.Context, kind v1alpha1.Kind) (int, error) {
	t, err := tableFor(kind)
	if err != nil {
		return 0, err
	}
	n, err := s.db.NewSelect().TableExpr(t.name).Count(ctx)
	if err != nil {
		return 0, failure("count "+string(kind), err)
	}
	return int(n), nil
}
