package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// nilUUID keys the events of a resource that had no row when they were recorded.
const nilUUID = "00000000-0000-0000-0000-000000000000"

// RecordEvent records e about a resource. A repeat of the same type, reason
// and message about the same resource (uid) is folded into the existing
// event: its count goes up and lastSeen moves. Only the newest
// Options.MaxEventsPerResource events of a resource are kept. An empty Type
// is Normal; an empty UID or Tenant is taken from the current row, if any.
func (s *Store) RecordEvent(ctx context.Context, e Event) error {
	t, err := tableFor(e.Kind)
	if err != nil {
		return err
	}
	if e.Type == "" {
		e.Type = EventNormal
	}
	if e.Name == "" || e.Reason == "" || (e.Type != EventNormal && e.Type != EventWarning) {
		return &FieldError{Field: "event", Value: e.Reason, Err: ErrInvalid,
			Msg: fmt.Sprintf("an event needs a name, a reason and type Normal or Warning (got %q/%q/%q)", e.Name, e.Reason, e.Type)}
	}
	if err := s.fillEventSubject(ctx, t, &e); err != nil {
		return failure("record event about "+t.key(e.Name), err)
	}
	// One round trip: the statements of a batch up to its Sync run as one
	// (implicit) transaction. Controllers record an event or two per
	// reconcile, so a burst of thousands of resources is thousands of them.
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO events (kind, name, tenant, resource_uid, type, reason, message)
			VALUES ($1, $2, $3, $4::uuid, $5, $6, $7)
			ON CONFLICT (kind, name, resource_uid, type, reason, md5(message)) DO UPDATE
			SET count = events.count + 1, last_seen = GREATEST(events.last_seen, now()), tenant = EXCLUDED.tenant`,
		string(e.Kind), e.Name, e.Tenant, e.UID, e.Type, e.Reason, e.Message)
	b.Queue(`DELETE FROM events WHERE id IN (
				SELECT id FROM events WHERE kind = $1 AND name = $2 AND resource_uid = $3::uuid
				ORDER BY last_seen DESC, id DESC OFFSET $4)`,
		string(e.Kind), e.Name, e.UID, s.maxEvents)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return failure("record event about "+t.key(e.Name), err)
	}
	return nil
}

// fillEventSubject fills in e's uid and tenant from the current row.
func (s *Store) fillEventSubject(ctx context.Context, t table, e *Event) error {
	if e.UID != "" && e.Tenant != "" {
		return nil
	}
	var uid, tenant string
	err := s.pool.QueryRow(ctx, `SELECT uid::text, tenant FROM `+t.name+` WHERE name = $1`, e.Name).Scan(&uid, &tenant)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		uid = nilUUID
	case err != nil:
		return err
	}
	if e.UID == "" {
		e.UID = uid
	}
	if e.Tenant == "" {
		e.Tenant = tenant
	}
	return nil
}

// eventRow is an events row as listings read it.
type eventRow struct {
	ID        int64     `bun:"id,pk"`
	Kind      string    `bun:"kind"`
	Name      string    `bun:"name"`
	Tenant    string    `bun:"tenant"`
	UID       string    `bun:"uid"`
	Type      string    `bun:"type"`
	Reason    string    `bun:"reason"`
	Message   string    `bun:"message"`
	Count     int       `bun:"count"`
	FirstSeen time.Time `bun:"first_seen"`
	LastSeen  time.Time `bun:"last_seen"`
}

// Events returns the events about kind/name, newest first, at most limit
// (all when limit <= 0). Events of an earlier resource of the same name that
// was deleted are included: they are the audit trail of that name.
func (s *Store) Events(ctx context.Context, kind v1alpha1.Kind, name string, limit int) ([]Event, error) {
	if _, err := tableFor(kind); err != nil {
		return nil, err
	}
	return s.listEvents(ctx, "kind = ? AND name = ?", limit, string(kind), name)
}

// TenantEvents returns the events about a tenant and everything it owns,
// newest first, at most limit (all when limit <= 0).
func (s *Store) TenantEvents(ctx context.Context, tenant string, limit int) ([]Event, error) {
	return s.listEvents(ctx, "tenant = ?", limit, tenant)
}

func (s *Store) listEvents(ctx context.Context, where string, limit int, args ...any) ([]Event, error) {
	var rows []eventRow
	q := s.db.NewSelect().Model(&rows).ModelTableExpr("events").
		ColumnExpr("id, kind, name, tenant, resource_uid::text AS uid, type, reason, message, count, first_seen, last_seen").
		Where(where, args...).OrderExpr("last_seen DESC, id DESC")
	if limit > 0 {
		q = q.Limit(int64(limit))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, failure("list events", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = Event{ID: r.ID, Kind: v1alpha1.Kind(r.Kind), Name: r.Name, Tenant: r.Tenant, UID: r.UID,
			Type: r.Type, Reason: r.Reason, Message: r.Message, Count: r.Count, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen}
	}
	return out, nil
}
