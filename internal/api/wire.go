package api

import (
	"encoding/json"
	"time"
)

// Wire types of the REST API (/api/v1). The CLI decodes the same structs.

// ApplyOutcome is what an apply did to one resource.
type ApplyOutcome string

// Apply outcomes, as kubectl words them.
const (
	OutcomeCreated    ApplyOutcome = "created"
	OutcomeConfigured ApplyOutcome = "configured" // spec or metadata changed
	OutcomeUnchanged  ApplyOutcome = "unchanged"
)

// Change is one field-level difference between the stored and the applied spec/metadata.
type Change struct {
	Path string          `json:"path"` // "spec.aliases[1]", "metadata.labels.plan"
	Old  json.RawMessage `json:"old,omitempty"`
	New  json.RawMessage `json:"new,omitempty"`
}

// ApplyResponse answers PUT /api/v1/{kind}/{name} and POST
// /api/v1/{kind}/{name}/rollback.
type ApplyResponse struct {
	Outcome ApplyOutcome    `json:"outcome"`
	DryRun  bool            `json:"dryRun,omitempty"`
	Changes []Change        `json:"changes,omitempty"`
	Object  json.RawMessage `json:"object"` // the full resource after the apply
}

// RollbackRequest is the body of POST /api/v1/{kind}/{name}/rollback: the
// spec of revision Revision (a number GET .../revisions lists) is applied
// again as a new generation.
type RollbackRequest struct {
	Revision int64 `json:"revision"`
	// ResourceVersion, when set, must be the stored one (optimistic concurrency).
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
}

// DriftReport answers GET /api/v1/{kind}/{name}/drift: how the host differs
// from the resource's spec, looked at live. No differences: in sync.
type DriftReport struct {
	ObservedAt  time.Time    `json:"observedAt"`
	Differences []Difference `json:"differences"`
}

// Difference is one way the host differs from a spec:
// {"field": "shell", "want": "/usr/sbin/nologin", "have": "/bin/bash"}.
type Difference struct {
	Field string `json:"field"`
	Want  string `json:"want"`
	Have  string `json:"have"`
}

// String is "shell: want /usr/sbin/nologin, have /bin/bash".
func (d Difference) String() string { return d.Field + ": want " + d.Want + ", have " + d.Have }

// ReconcileResponse answers POST /api/v1/{kind}/{name}/reconcile (202): the
// controller was asked to reconcile the resource at RequestedAt (the
// daemon's clock); Object is the resource as it stood then.
type ReconcileResponse struct {
	RequestedAt time.Time       `json:"requestedAt"`
	Object      json.RawMessage `json:"object"`
}

// List answers GET /api/v1/{kind}.
type List struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"` // TenantList, ...
	Items      []json.RawMessage `json:"items"`
}

// EventItem is one event of a resource.
type EventItem struct {
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
}

// RevisionItem is one numbered spec of a resource.
type RevisionItem struct {
	Number     int64           `json:"number"`
	Generation int64           `json:"generation"`
	Actor      string          `json:"actor,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	Spec       json.RawMessage `json:"spec"`
}

// Problem is an RFC 9457 application/problem+json error body.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Errors []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names one wrong field.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
	// Document and Line locate the field in a submitted manifest, when known.
	Line int `json:"line,omitempty"`
}

// Health answers GET /healthz.
type Health struct {
	Status  string            `json:"status"` // ok | degraded
	Checks  map[string]string `json:"checks"`
	Version string            `json:"version"`
	Node    string            `json:"node"`
}
