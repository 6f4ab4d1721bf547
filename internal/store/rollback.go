package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Rollback re-applies the spec of revision req.Revision of kind/name, in one
// transaction that reads the revision and applies it, through the same path
// as Apply: the generation moves and a revision is recorded (its actor says
// "(rollback to N)") only when the restored spec differs from the current
// one; hostnames and database names are checked again, so a hostname another
// Domain took meanwhile is refused (ErrDuplicate, naming the field) and
// nothing is written.
//
// Errors name the field: a revision the resource does not have is an
// ErrNotFound about "revision"; a resource being deleted is ErrTerminating; a
// stale req.ResourceVersion is ErrConflict. With DryRun everything runs and
// is rolled back; the result is what would have been.
func (s *Store) Rollback(ctx context.Context, req RollbackRequest) (ApplyResult, error) {
	t, err := tableFor(req.Kind)
	if err != nil {
		return ApplyResult{}, err
	}
	if req.Prepare == nil {
		return ApplyResult{}, errors.New("store: rollback: RollbackRequest.Prepare is nil")
	}
	t.forget(ctx, req.Name)
	var (
		res  ApplyResult
		areq ApplyRequest
	)
	err = s.inTx(ctx, req.DryRun, func(tx pgx.Tx) error {
		var (
			uid string
			err error
		)
		if areq, uid, err = rollbackApply(ctx, tx, t, req); err != nil {
			return err
		}
		a := applier{tx: tx, t: t, req: areq, uid: uid}
		res, err = a.run(ctx)
		return err
	})
	if err != nil {
		return ApplyResult{}, failure("rollback "+t.key(req.Name), applyRaceError(err, t, areq))
	}
	return res, nil
}

// rollbackApply reads the current row and the revision, and turns them into
// the apply that restores the revision's spec, pinned to the row's uid. The
// row is not locked here: the applier locks it (tenant first, as every apply
// does), and its uid pin refuses a row deleted or re-created meanwhile; a
// revision of that uid does not change while the row exists.
func rollbackApply(ctx context.Context, tx pgx.Tx, t table, req RollbackRequest) (ApplyRequest, string, error) {
	cur, found, err := scanResource(tx.Query(ctx, `SELECT `+resourceColumns+` FROM `+t.name+` WHERE name = $1`, req.Name))
	if err != nil {
		return ApplyRequest{}, "", err
	}
	if !found {
		return ApplyRequest{}, "", t.notFound(req.Name)
	}
	if cur.DeletionRequestedAt != nil {
		return ApplyRequest{}, "", &FieldError{Field: "metadata.name", Value: req.Name, Err: ErrTerminating,
			Msg: fmt.Sprintf("%s %q is being deleted; it cannot be rolled back", t.kind, req.Name)}
	}
	rev, found, err := selectRevision(ctx, tx, t.kind, cur.UID, req.Revision)
	if err != nil {
		return ApplyRequest{}, "", err
	}
	if !found {
		return ApplyRequest{}, "", noRevision(t.kind, req.Name, req.Revision)
	}
	now := cur.resource(t.kind)
	areq, err := req.Prepare(now, rev)
	if err != nil {
		return ApplyRequest{}, "", err
	}
	areq.Kind, areq.Name = t.kind, cur.Name
	areq.Labels, areq.Annotations = now.Labels, now.Annotations
	areq.ResourceVersion, areq.DryRun = req.ResourceVersion, req.DryRun
	areq.Actor = rollbackActor(req.Actor, req.Revision)
	if err := normalizeApply(t, &areq); err != nil {
		return ApplyRequest{}, "", err
	}
	return areq, cur.UID, nil
}

// rollbackActor is the actor a rollback to revision number records.
func rollbackActor(actor string, number int64) string {
	if actor == "" {
		return fmt.Sprintf("(rollback to %d)", number)
	}
	return fmt.Sprintf("%s (rollback to %d)", actor, number)
}
