package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// ownedTables are the kinds that belong to a tenant, in the order a tenant's
// deletion marks them.
func ownedTables() []table {
	var out []table
	for _, k := range v1alpha1.Kinds {
		if t, err := tableFor(k); err == nil && t.owned {
			out = append(out, t)
		}
	}
	return out
}

// Delete marks kind/name for deletion: the controller removes what it made
// on the host, then calls Finalize. Deleting a Tenant marks its Domains and
// Databases as well. Every newly marked row bumps its resourceVersion and is
// notified. Deleting a row already marked returns it unchanged (and skips the
// resourceVersion check). resourceVersion, when non-zero, must be the stored one.
func (s *Store) Delete(ctx context.Context, kind v1alpha1.Kind, name string, resourceVersion int64) (Resource, error) {
	t, err := tableFor(kind)
	if err != nil {
		return Resource{}, err
	}
	forgetAll(ctx)
	var res Resource
	err = s.inTx(ctx, false, func(tx pgx.Tx) error {
		var err error
		res, err = markDeleted(ctx, tx, t, name, resourceVersion)
		return err
	})
	if err != nil {
		return Resource{}, failure("delete "+t.key(name), raceError(err, t, name))
	}
	return res, nil
}

func markDeleted(ctx context.Context, tx pgx.Tx, t table, name string, resourceVersion int64) (Resource, error) {
	cur, found, err := selectForUpdate(ctx, tx, t, name)
	if err != nil {
		return Resource{}, err
	}
	if !found {
		return Resource{}, t.notFound(name)
	}
	if cur.DeletionRequestedAt != nil {
		return cur.resource(t.kind), nil
	}
	if resourceVersion != 0 && resourceVersion != cur.ResourceVersion {
		return Resource{}, &FieldError{Field: "metadata.resourceVersion", Value: strconv.FormatInt(resourceVersion, 10), Err: ErrConflict,
			Msg: fmt.Sprintf("%s %q was changed (resourceVersion %d, you had %d); read it again and retry",
				t.kind, name, cur.ResourceVersion, resourceVersion)}
	}
	row, _, err := scanResource(tx.Query(ctx, `UPDATE `+t.name+` SET deletion_requested_at = now(),
		resource_version = resource_version + 1, updated_at = now() WHERE id = $1 RETURNING `+resourceColumns, cur.ID))
	if err != nil {
		return Resource{}, err
	}
	if err := notify(ctx, tx, t.key(name)); err != nil {
		return Resource{}, err
	}
	if t.kind == v1alpha1.KindTenant {
		if err := markTenantResources(ctx, tx, cur.ID); err != nil {
			return Resource{}, err
		}
	}
	return row.resource(t.kind), nil
}

// markTenantResources marks every resource of tenant tenantID not marked yet,
// notifying each. The tenant row is locked, so no new one can appear meanwhile.
func markTenantResources(ctx context.Context, tx pgx.Tx, tenantID int64) error {
	for _, ot := range ownedTables() {
		_, err := tx.Exec(ctx, `WITH marked AS (
				UPDATE `+ot.name+` SET deletion_requested_at = now(), resource_version = resource_version + 1, updated_at = now()
				WHERE tenant_id = $1 AND deletion_requested_at IS NULL RETURNING name)
			SELECT count(pg_notify($2, $3 || '/' || name)) FROM marked`,
			tenantID, NotifyChannel, string(ot.kind))
		if err != nil {
			return err
		}
	}
	return nil
}

// Finalize removes kind/name for good, once its controller has cleaned the
// host. The row must be marked for deletion and still be the one with uid (a
// row re-created under the same name is left alone: ErrNotFound). A Tenant
// goes only when none of its Domains and Databases are left (ErrConflict).
//
// The resource's revisions go with it (a re-created resource starts again at
// revision 1); its events stay, keyed by uid, as an audit trail, bounded per
// resource like any events. Finalize notifies, so a watcher sees the row go.
func (s *Store) Finalize(ctx context.Context, kind v1alpha1.Kind, name, uid string) error {
	t, err := tableFor(kind)
	if err != nil {
		return err
	}
	t.forget(ctx, name)
	err = s.inTx(ctx, false, func(tx pgx.Tx) error { return finalize(ctx, tx, t, name, uid) })
	if err != nil {
		return failure("finalize "+t.key(name), raceError(err, t, name))
	}
	return nil
}

func finalize(ctx context.Context, tx pgx.Tx, t table, name, uid string) error {
	cur, found, err := selectForUpdate(ctx, tx, t, name)
	if err != nil {
		return err
	}
	if !found || cur.UID != uid {
		return &FieldError{Field: "metadata.uid", Value: uid, Err: ErrNotFound,
			Msg: fmt.Sprintf("%s %q with uid %s is already gone", t.kind, name, uid)}
	}
	if cur.DeletionRequestedAt == nil {
		return &FieldError{Field: "metadata.deletionTimestamp", Value: name, Err: ErrConflict,
			Msg: fmt.Sprintf("%s %q is not marked for deletion", t.kind, name)}
	}
	if t.kind == v1alpha1.KindTenant {
		if err := checkNoDependents(ctx, tx, cur.ID, name); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM `+t.name+` WHERE id = $1`, cur.ID); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM revisions WHERE resource_uid = $1::uuid`, cur.UID); err != nil {
		return err
	}
	return notify(ctx, tx, t.key(name))
}

// checkNoDependents refuses to finalize a tenant that still owns resources,
// naming a few of them.
func checkNoDependents(ctx context.Context, tx pgx.Tx, tenantID int64, tenant string) error {
	const shown = 5
	var (
		left  []string
		total int
	)
	for _, ot := range ownedTables() {
		rows, err := tx.Query(ctx, `SELECT name, count(*) OVER () FROM `+ot.name+` WHERE tenant_id = $1 ORDER BY name LIMIT $2`,
			tenantID, shown)
		if err != nil {
			return err
		}
		var (
			n     string
			count int
		)
		seen := 0
		if _, err := pgx.ForEachRow(rows, []any{&n, &count}, func() error {
			left = append(left, string(ot.kind)+"/"+n)
			seen = count
			return nil
		}); err != nil {
			return err
		}
		total += seen
	}
	if total == 0 {
		return nil
	}
	more := ""
	if total > len(left) {
		more = fmt.Sprintf(" and %d more", total-len(left))
	}
	return &FieldError{Field: "metadata.name", Value: tenant, Err: ErrConflict,
		Msg: fmt.Sprintf("tenant %q still has %d resource(s) (%s%s); they must be finalized first",
			tenant, total, strings.Join(left, ", "), more)}
}
