package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/store"
)

// maxRollbackBytes caps a rollback body ({"revision": N, ...}).
const maxRollbackBytes = 4096

// rollback re-applies the spec of an earlier revision. It answers like an
// apply: the outcome, the field changes from the current spec, the object.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRollbackBytes))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("a rollback body is at most %d bytes: %v", maxRollbackBytes, err), nil)
		return
	}
	in, ok := decodeRollback(w, body)
	if !ok {
		return
	}
	if _, ok := s.load(w, r, kind, rbac.Write); !ok {
		return
	}
	dry := dryRun(r)
	p := PrincipalFrom(r.Context())
	res, err := s.opts.Store.Rollback(r.Context(), store.RollbackRequest{
		Kind: kind, Name: r.PathValue("name"), Revision: in.Revision, ResourceVersion: in.ResourceVersion,
		DryRun: dry, Actor: actor(p), Prepare: func(cur store.Resource, rev store.Revision) (store.ApplyRequest, error) {
			req, err := s.rollbackApply(cur, rev)
			if err == nil && !rbac.Authorize(p, rbac.Action{Verb: rbac.Write, Resource: Plural(kind)}, req.Tenant).Allowed {
				// The revision names another tenant: it would move the object there.
				err = &foreignRevisionError{number: rev.Number, tenant: req.Tenant}
			}
			return req, err
		},
	})
	var re *revisionError
	var fe *foreignRevisionError
	switch {
	case errors.As(err, &fe):
		writeProblem(w, http.StatusForbidden, "Forbidden", fe.Error(), nil)
		return
	case errors.As(err, &re):
		writeRevisionProblem(w, re)
		return
	case err != nil:
		s.storeError(w, err)
		return
	}
	resp, err := applyResponse(dry, res)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// decodeRollback decodes a rollback body strictly, or writes the problem: 400
// for a body that is not a JSON object, 422 naming each wrong field.
func decodeRollback(w http.ResponseWriter, body []byte) (RollbackRequest, bool) {
	var (
		in     RollbackRequest
		fields map[string]json.RawMessage
	)
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		writeProblem(w, http.StatusBadRequest, "Invalid request body",
			`the body must be a JSON object: {"revision": N, "resourceVersion": optional}`, nil)
		return in, false
	}
	var problems []FieldProblem
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch k {
		case "revision":
			if json.Unmarshal(v, &in.Revision) != nil || in.Revision < 1 {
				problems = append(problems, FieldProblem{Field: k,
					Message: fmt.Sprintf("must be a revision number (1, 2, ...; see the revisions of the resource), got %s", v)})
			}
		case "resourceVersion":
			if json.Unmarshal(v, &in.ResourceVersion) != nil || in.ResourceVersion < 0 {
				problems = append(problems, FieldProblem{Field: k, Message: fmt.Sprintf("must be a positive number, got %s", v)})
			}
		default:
			problems = append(problems, FieldProblem{Field: k, Message: "unknown field (want revision and, optionally, resourceVersion)"})
		}
	}
	if _, ok := fields["revision"]; !ok {
		problems = append(problems, FieldProblem{Field: "revision", Message: "is required: the number of the revision to go back to"})
	}
	if len(problems) > 0 {
		msgs := make([]string, 0, len(problems))
		for _, p := range problems {
			msgs = append(msgs, p.Field+": "+p.Message)
		}
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid request", strings.Join(msgs, "; "), problems)
		return in, false
	}
	return in, true
}

// rollbackApply is the Prepare of every rollback: the revision's spec goes
// through the decoding, defaults and validation of an applied manifest (the
// rules may have changed since it was stored), with the resource's current
// metadata, and becomes a store write as an apply makes it. The resource
// stays on its node unless the spec names one.
func (s *Server) rollbackApply(cur store.Resource, rev store.Revision) (store.ApplyRequest, error) {
	doc, err := json.Marshal(struct {
		APIVersion string              `json:"apiVersion"`
		Kind       v1alpha1.Kind       `json:"kind"`
		Metadata   v1alpha1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage     `json:"spec"`
	}{v1alpha1.APIVersion, cur.Kind, v1alpha1.ObjectMeta{Name: cur.Name, Labels: cur.Labels, Annotations: cur.Annotations}, rev.Spec})
	if err != nil {
		return store.ApplyRequest{}, fmt.Errorf("encode revision %d: %w", rev.Number, err)
	}
	obj, err := v1alpha1.DecodeObjectJSON(cur.Kind, doc)
	if err != nil {
		return store.ApplyRequest{}, &revisionError{number: rev.Number, err: err}
	}
	req, err := s.applyRequest(obj, false)
	if err != nil {
		return store.ApplyRequest{}, err
	}
	req.Node = ""
	if t, ok := obj.(*v1alpha1.Tenant); ok {
		req.Node = t.Spec.Node
	}
	return req, nil
}

// revisionError is a stored revision that no longer decodes or validates.
type revisionError struct {
	number int64
	err    error
}

// foreignRevisionError: the revision would move the object to a tenant the
// principal does not manage.
type foreignRevisionError struct {
	number int64
	tenant string
}

func (e *foreignRevisionError) Error() string {
	return fmt.Sprintf("revision %d belongs to tenant %q, which is not a tenant you manage", e.number, e.tenant)
}

func (e *revisionError) Error() string {
	return fmt.Sprintf("revision %d is not valid any more: %v", e.number, e.err)
}

func (e *revisionError) Unwrap() error { return e.err }

// writeRevisionProblem answers 422 naming each field of the revision's spec
// that is wrong now. The lines of the decoder point into a document the
// server made, so they are left out.
func writeRevisionProblem(w http.ResponseWriter, re *revisionError) {
	var des v1alpha1.DecodeErrors
	if !errors.As(re.err, &des) {
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid revision", re.Error(), nil)
		return
	}
	problems := make([]FieldProblem, 0, len(des))
	msgs := make([]string, 0, len(des))
	for _, d := range des {
		problems = append(problems, FieldProblem{Field: d.Path, Message: d.Msg})
		msgs = append(msgs, d.Path+": "+d.Msg)
	}
	writeProblem(w, http.StatusUnprocessableEntity, "Invalid revision",
		fmt.Sprintf("revision %d is not valid any more: %s", re.number, strings.Join(msgs, "; ")), problems)
}
