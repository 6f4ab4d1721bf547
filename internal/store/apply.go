package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// Apply creates the resource or updates its spec and metadata, in one
// transaction:
//
//   - the stored row is locked (SELECT ... FOR UPDATE), so concurrent applies
//     of one resource run one after the other;
//   - the spec is compared as jsonb, so the generation moves (and a revision
//     is recorded) only when the spec really changes; a labels, annotations
//     or node change moves only the resourceVersion; an identical apply
//     writes nothing;
//   - every write sends pg_notify(NotifyChannel, "Kind/name") on commit.
//
// A create counts as a spec change (generation 1, revision 1). Hostnames,
// engine and database name derive from the spec, so they are re-checked and
// re-written only when the spec changes. With DryRun
// everything runs and is rolled back; the result is what would have been.
func (s *Store) Apply(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	t, err := tableFor(req.Kind)
	if err != nil {
		return ApplyResult{}, err
	}
	if err := normalizeApply(t, &req); err != nil {
		return ApplyResult{}, err
	}
	t.forget(ctx, req.Name)
	var res ApplyResult
	err = s.inTx(ctx, req.DryRun, func(tx pgx.Tx) error {
		a := applier{tx: tx, t: t, req: req}
		var err error
		res, err = a.run(ctx)
		return err
	})
	if err != nil {
		return ApplyResult{}, failure("apply "+t.key(req.Name), applyRaceError(err, t, req))
	}
	return res, nil
}

// normalizeApply checks what the store itself relies on (apis.Validate has
// checked the rest) and lower-cases hostnames.
func normalizeApply(t table, req *ApplyRequest) error {
	if req.Name == "" {
		return &FieldError{Field: "metadata.name", Err: ErrInvalid, Msg: "a name is required"}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(req.Spec, &obj); err != nil || obj == nil {
		return &FieldError{Field: "spec", Err: ErrInvalid, Msg: "spec must be a JSON object"}
	}
	if !t.owned {
		req.Tenant = req.Name
		return nil
	}
	if req.Tenant == "" {
		return &FieldError{Field: "spec.tenant", Err: ErrInvalid, Msg: fmt.Sprintf("%s %q names no tenant", t.kind, req.Name)}
	}
	switch t.kind {
	case v1alpha1.KindTenant: // handled above
	case v1alpha1.KindDomain:
		return normalizeHostnames(req)
	case v1alpha1.KindDatabase:
		if req.Engine == "" || req.DatabaseName == "" {
			return &FieldError{Field: "spec.databaseName", Value: req.DatabaseName, Err: ErrInvalid,
				Msg: "the engine and database name are required"}
		}
	}
	return nil
}

func normalizeHostnames(req *ApplyRequest) error {
	seen := make(map[string]int, len(req.Hostnames))
	hosts := make([]string, len(req.Hostnames))
	for i, h := range req.Hostnames {
		h = strings.ToLower(h)
		if h == "" {
			return &FieldError{Field: hostnameField(i), Err: ErrInvalid, Msg: "empty hostname"}
		}
		if j, dup := seen[h]; dup {
			return &FieldError{Field: hostnameField(i), Value: h, Err: ErrDuplicate,
				Msg: fmt.Sprintf("hostname %q is also %s", h, hostnameField(j))}
		}
		seen[h] = i
		hosts[i] = h
	}
	req.Hostnames = hosts
	return nil
}

// hostnameField names ApplyRequest.Hostnames[i] in the manifest.
func hostnameField(i int) string {
	if i == 0 {
		return "spec.serverName"
	}
	return "spec.aliases[" + strconv.Itoa(i-1) + "]"
}

// applyRaceError maps constraint violations that only a concurrent writer can
// cause (the checks before each write see everything committed).
func applyRaceError(err error, t table, req ApplyRequest) error {
	if code, constraint := pgCode(err); code == pgUniqueViolation && constraint == "databases_engine_database_name_key" {
		return &FieldError{Field: "spec.databaseName", Value: req.DatabaseName, Err: ErrDuplicate,
			Msg: fmt.Sprintf("%s database %q is already used by another Database", req.Engine, req.DatabaseName)}
	}
	return raceError(err, t, req.Name)
}

// applier is one Apply inside its transaction.
type applier struct {
	tx  pgx.Tx
	t   table
	req ApplyRequest
	// uid, when set (a rollback), is the only row this apply may update:
	// it never creates one, and a row re-created under the name is refused.
	uid string

	tenantID       int64
	tenantFound    bool
	tenantDeleting bool
}

func (a *applier) run(ctx context.Context) (ApplyResult, error) {
	if a.t.owned {
		// FOR SHARE: a concurrent Delete of the tenant (FOR UPDATE) waits
		// for this apply, or this apply sees its deletion mark.
		err := a.tx.QueryRow(ctx, `SELECT id, deletion_requested_at IS NOT NULL FROM tenants WHERE name = $1 FOR SHARE`,
			a.req.Tenant).Scan(&a.tenantID, &a.tenantDeleting)
		switch {
		case err == nil:
			a.tenantFound = true
		case !errors.Is(err, pgx.ErrNoRows):
			return ApplyResult{}, err
		}
	}
	// Two rounds at most: a create that loses the race to a concurrent
	// create of the same name updates the row the winner made.
	for range 2 {
		cur, found, err := selectForUpdate(ctx, a.tx, a.t, a.req.Name)
		if err != nil {
			return ApplyResult{}, err
		}
		if a.uid != "" {
			if err := a.checkSameRow(cur, found); err != nil {
				return ApplyResult{}, err
			}
		}
		if found {
			return a.update(ctx, cur)
		}
		res, created, err := a.create(ctx)
		if err != nil || created {
			return res, err
		}
	}
	return ApplyResult{}, &FieldError{Field: "metadata.name", Value: a.req.Name, Err: ErrConflict,
		Msg: fmt.Sprintf("%s %q is being created and deleted concurrently; retry", a.t.kind, a.req.Name)}
}

// checkSameRow refuses a rollback whose row was deleted, or deleted and
// re-created, since its revision was read.
func (a *applier) checkSameRow(cur resourceRow, found bool) error {
	switch {
	case !found:
		return a.t.notFound(a.req.Name)
	case cur.UID != a.uid:
		return &FieldError{Field: "metadata.uid", Value: cur.UID, Err: ErrConflict,
			Msg: fmt.Sprintf("%s %q was deleted and re-created concurrently; its revisions are gone", a.t.kind, a.req.Name)}
	}
	return nil
}

// tenantError says why the tenant cannot own a resource, or nil.
func (a *applier) tenantError() error {
	switch {
	case !a.t.owned:
		return nil
	case !a.tenantFound:
		return &FieldError{Field: "spec.tenant", Value: a.req.Tenant, Err: ErrDependency,
			Msg: fmt.Sprintf("tenant %q does not exist", a.req.Tenant)}
	case a.tenantDeleting:
		return &FieldError{Field: "spec.tenant", Value: a.req.Tenant, Err: ErrDependency,
			Msg: fmt.Sprintf("tenant %q is being deleted", a.req.Tenant)}
	}
	return nil
}

// create inserts the row; created is false when a concurrent apply inserted
// the same name first (and committed).
func (a *applier) create(ctx context.Context) (res ApplyResult, created bool, err error) {
	if a.req.ResourceVersion != 0 {
		return res, false, &FieldError{Field: "metadata.resourceVersion", Value: strconv.FormatInt(a.req.ResourceVersion, 10),
			Err: ErrConflict, Msg: fmt.Sprintf("%s %q does not exist (any more); apply without a resourceVersion to create it", a.t.kind, a.req.Name)}
	}
	if err := a.tenantError(); err != nil {
		return res, false, err
	}
	if err := a.checkDatabaseName(ctx, 0); err != nil {
		return res, false, err
	}
	cols := "name, node, labels, annotations, spec"
	vals := "$1, $2, $3, $4, $5"
	args := []any{a.req.Name, a.req.Node, jsonObject(a.req.Labels), jsonObject(a.req.Annotations), []byte(a.req.Spec)}
	if a.t.owned {
		cols, vals = cols+", tenant_id, tenant", vals+", $6, $7"
		args = append(args, a.tenantID, a.req.Tenant)
	}
	if a.t.kind == v1alpha1.KindDatabase {
		cols, vals = cols+", engine, database_name", vals+", $8, $9"
		args = append(args, a.req.Engine, a.req.DatabaseName)
	}
	row, found, err := scanResource(a.tx.Query(ctx, `INSERT INTO `+a.t.name+` (`+cols+`) VALUES (`+vals+`)
		ON CONFLICT (name) DO NOTHING RETURNING `+resourceColumns, args...))
	if err != nil || !found {
		return res, false, err
	}
	if err := a.afterWrite(ctx, row, true); err != nil {
		return res, false, err
	}
	return ApplyResult{Resource: row.resource(a.t.kind), Created: true, SpecChanged: true}, true, nil
}

func (a *applier) update(ctx context.Context, cur resourceRow) (ApplyResult, error) {
	if err := a.checkUpdate(cur); err != nil {
		return ApplyResult{}, err
	}
	var sameSpec bool
	if err := a.tx.QueryRow(ctx, `SELECT spec = $2::jsonb FROM `+a.t.name+` WHERE id = $1`,
		cur.ID, []byte(a.req.Spec)).Scan(&sameSpec); err != nil {
		return ApplyResult{}, err
	}
	node := a.req.Node
	if node == "" {
		node = cur.Node
	}
	metaChanged := !maps.Equal(cur.Labels, a.req.Labels) || !maps.Equal(cur.Annotations, a.req.Annotations) || node != cur.Node
	res := ApplyResult{SpecChanged: !sameSpec, MetaChanged: metaChanged, PreviousSpec: cur.Spec,
		PreviousLabels: cur.Labels, PreviousAnnotations: cur.Annotations}
	if sameSpec && !metaChanged {
		res.Resource = cur.resource(a.t.kind)
		return res, nil
	}
	if !sameSpec {
		if err := a.checkDatabaseName(ctx, cur.ID); err != nil {
			return ApplyResult{}, err
		}
	}
	bump := 0
	if !sameSpec {
		bump = 1
	}
	set := `spec = $2, labels = $3, annotations = $4, node = $5, generation = generation + $6,
		resource_version = resource_version + 1, updated_at = now()`
	args := []any{cur.ID, []byte(a.req.Spec), jsonObject(a.req.Labels), jsonObject(a.req.Annotations), node, bump}
	if a.t.kind == v1alpha1.KindDatabase {
		set += ", engine = $7, database_name = $8"
		args = append(args, a.req.Engine, a.req.DatabaseName)
	}
	row, _, err := scanResource(a.tx.Query(ctx, `UPDATE `+a.t.name+` SET `+set+` WHERE id = $1 RETURNING `+resourceColumns, args...))
	if err != nil {
		return ApplyResult{}, err
	}
	if err := a.afterWrite(ctx, row, !sameSpec); err != nil {
		return ApplyResult{}, err
	}
	res.Resource = row.resource(a.t.kind)
	return res, nil
}

// checkUpdate refuses an update of cur, most fundamental reason first.
func (a *applier) checkUpdate(cur resourceRow) error {
	if cur.DeletionRequestedAt != nil {
		return &FieldError{Field: "metadata.name", Value: a.req.Name, Err: ErrTerminating,
			Msg: fmt.Sprintf("%s %q is being deleted; apply it again once it is gone", a.t.kind, a.req.Name)}
	}
	if a.t.owned && cur.Tenant != a.req.Tenant {
		return &FieldError{Field: "spec.tenant", Value: a.req.Tenant, Err: ErrImmutable,
			Msg: fmt.Sprintf("%s %q belongs to tenant %q; the tenant cannot be changed (delete and re-create it)",
				a.t.kind, a.req.Name, cur.Tenant)}
	}
	if a.req.ResourceVersion != 0 && a.req.ResourceVersion != cur.ResourceVersion {
		return &FieldError{Field: "metadata.resourceVersion", Value: strconv.FormatInt(a.req.ResourceVersion, 10), Err: ErrConflict,
			Msg: fmt.Sprintf("%s %q was changed (resourceVersion %d, you had %d); read it again and retry",
				a.t.kind, a.req.Name, cur.ResourceVersion, a.req.ResourceVersion)}
	}
	return a.tenantError()
}

// afterWrite keeps the hostnames, the revision history and the listeners in
// step with a row just written.
func (a *applier) afterWrite(ctx context.Context, row resourceRow, specChanged bool) error {
	if specChanged {
		if a.t.kind == v1alpha1.KindDomain {
			if err := syncHostnames(ctx, a.tx, row.ID, a.req.Hostnames); err != nil {
				return err
			}
		}
		if _, err := a.tx.Exec(ctx, `INSERT INTO revisions (kind, resource_uid, name, number, generation, spec, actor)
			SELECT $1, $2::uuid, $3, COALESCE(max(number), 0) + 1, $4, $5, $6 FROM revisions WHERE resource_uid = $2::uuid`,
			string(a.t.kind), row.UID, row.Name, row.Generation, []byte(row.Spec), a.req.Actor); err != nil {
			return err
		}
	}
	return notify(ctx, a.tx, a.t.key(row.Name))
}

// checkDatabaseName refuses a database name another Database (not id) uses.
func (a *applier) checkDatabaseName(ctx context.Context, id int64) error {
	if a.t.kind != v1alpha1.KindDatabase {
		return nil
	}
	var other string
	err := a.tx.QueryRow(ctx, `SELECT name FROM databases WHERE engine = $1 AND database_name = $2 AND id <> $3`,
		a.req.Engine, a.req.DatabaseName, id).Scan(&other)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return &FieldError{Field: "spec.databaseName", Value: a.req.DatabaseName, Err: ErrDuplicate,
		Msg: fmt.Sprintf("%s database %q is already used by Database %q", a.req.Engine, a.req.DatabaseName, other)}
}
