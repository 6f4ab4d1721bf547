// Package store keeps desired state (spec) and observed state (status) of
// every resource in PostgreSQL, with revisions, events and the system table.
// Every write that changes a spec or a deletion mark announces itself with
// pg_notify on NotifyChannel in the same transaction.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// NotifyChannel is the LISTEN/NOTIFY channel. The payload is "<Kind>/<name>"
// (ids only, far below the 8000-byte cap).
const NotifyChannel = "wcp_resources"

// Errors a caller matches with errors.Is. The returned errors wrap them in a
// *FieldError that names what was wrong.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict: the resource was changed by someone else") // stale resourceVersion
	ErrDependency  = errors.New("depends on a resource that does not exist")          // Domain of a missing Tenant
	ErrDuplicate   = errors.New("already in use")                                     // hostname served twice, db name taken
	ErrTerminating = errors.New("is being deleted")                                   // apply to a resource marked for deletion
	ErrUnavailable = errors.New("database unavailable")
	// ErrImmutable: a field that cannot change after creation (a Domain's or
	// Database's tenant). It also matches ErrConflict.
	ErrImmutable error = immutableError{}
	// ErrInvalid: a request the store cannot take at all (no name, a spec
	// that is not a JSON object). apis.Validate refuses these first, so it
	// means a caller skipped validation.
	ErrInvalid = errors.New("invalid request")
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

type immutableError struct{}

func (immutableError) Error() string { return "cannot be changed after creation" }

// Is makes an immutable field also a conflict for callers that only know ErrConflict.
func (immutableError) Is(target error) bool { return target == ErrConflict }

// FieldError wraps one of the errors above with the field and value it is about.
type FieldError struct {
	Field string // "metadata.resourceVersion", "spec.tenant", "spec.aliases[1]"
	Value string
	Err   error
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %q %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Resource is one row, kind-independent. Spec and Status are JSON of the kind's types.
type Resource struct {
	Kind                v1alpha1.Kind
	Name                string
	UID                 string
	Tenant              string // owning tenant; the name itself for a Tenant
	Node                string
	Labels              map[string]string
	Annotations         map[string]string
	Spec                json.RawMessage
	Status              json.RawMessage
	Generation          int64
	ObservedGeneration  int64
	ResourceVersion     int64
	CreatedAt           time.Time
	UpdatedAt           time.Time
	DeletionRequestedAt *time.Time
}

// Key is "<Kind>/<name>", the workqueue key and NOTIFY payload.
func (r Resource) Key() string { return string(r.Kind) + "/" + r.Name }

// ApplyRequest is a create-or-update of one resource's spec and metadata.
type ApplyRequest struct {
	Kind        v1alpha1.Kind
	Name        string
	Tenant      string // required for Domain and Database
	Node        string
	Labels      map[string]string
	Annotations map[string]string
	Spec        json.RawMessage // already defaulted and validated
	// Hostnames (Domain only) are kept unique across all domains.
	Hostnames []string
	// DatabaseName and Engine (Database only) are kept unique per engine.
	DatabaseName string
	Engine       string
	// ResourceVersion, when non-zero, must equal the stored one (optimistic concurrency).
	ResourceVersion int64
	// DryRun runs every check and computes the result, then rolls back.
	DryRun bool
	// Actor is who applied (recorded with the revision).
	Actor string
}

// RollbackRequest re-applies the spec of an earlier revision of a resource
// as a new generation.
type RollbackRequest struct {
	Kind     v1alpha1.Kind
	Name     string
	Revision int64 // the revision number whose spec is restored
	// ResourceVersion, when non-zero, must equal the stored one (optimistic concurrency).
	ResourceVersion int64
	// DryRun runs every check and computes the result, then rolls back.
	DryRun bool
	// Actor is who rolled back; the new revision records "<Actor> (rollback to N)".
	Actor string
	// Prepare turns the revision's spec into the apply that restores it,
	// doing what a caller of Apply does: decode, default and validate the
	// spec, and derive Tenant, Hostnames, Engine and DatabaseName from it. cur
	// is the resource as it is now. Rollback sets Kind, Name, Labels,
	// Annotations (the current ones: a rollback restores the spec only),
	// ResourceVersion, DryRun and Actor of what Prepare returns; a Node of ""
	// keeps the current node. Prepare runs inside the store's transaction: it
	// must not call the store. Its errors are returned as they are.
	Prepare func(cur Resource, rev Revision) (ApplyRequest, error)
}

// ApplyResult says what an apply did.
type ApplyResult struct {
	Resource     Resource
	Created      bool
	SpecChanged  bool // generation was bumped and a revision recorded
	MetaChanged  bool // labels/annotations changed (no new generation)
	PreviousSpec json.RawMessage
	// PreviousLabels and PreviousAnnotations are the metadata before an
	// update (nil on create), so callers can show what changed.
	PreviousLabels      map[string]string
	PreviousAnnotations map[string]string
}

// Unchanged reports whether the apply changed nothing at all.
func (r ApplyResult) Unchanged() bool { return !r.Created && !r.SpecChanged && !r.MetaChanged }

// ListOptions filters a List.
type ListOptions struct {
	Tenant string // only resources of this tenant
	Node   string // only resources on this node
	// Labels must all match (equality).
	Labels map[string]string
}

// StatusUpdate is a controller's write of observed state.
type StatusUpdate struct {
	Kind               v1alpha1.Kind
	Name               string
	UID                string // the row reconciled; a recreated row with the same name is not overwritten
	Status             json.RawMessage
	ObservedGeneration int64
}

// Event is a kubectl-describe-style event about a resource.
type Event struct {
	ID     int64
	Kind   v1alpha1.Kind
	Name   string
	Tenant string // filled by RecordEvent from the resource when empty
	// UID is the resource the event is about; RecordEvent fills it in from
	// the current row when empty (the nil uuid if there is no row).
	UID       string
	Type      string // Normal | Warning
	Reason    string
	Message   string
	Count     int // repeats of the same type/reason/message are folded
	FirstSeen time.Time
	LastSeen  time.Time
}

// Revision is one numbered spec of a resource.
type Revision struct {
	Kind       v1alpha1.Kind
	Name       string
	Number     int64 // 1, 2, 3 ... per resource (per uid)
	Generation int64
	Spec       json.RawMessage
	Actor      string
	CreatedAt  time.Time
}
