package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/store"
)

// observeTimeout bounds one live look at the host.
const observeTimeout = 30 * time.Second

// Observer looks at the host for one stored resource without changing
// anything, and lists how the host differs from the resource's spec.
type Observer interface {
	Observe(ctx context.Context, kind v1alpha1.Kind, name string) ([]host.Difference, error)
}

// ErrNotObserved is wrapped by an Observer's error for a resource it has no
// way to look at (a kind without host steps in this build): 501.
var ErrNotObserved = errors.New("not observed")

// drift answers GET .../drift: how the host differs from the spec, looked at
// now. It is what the controller's next resync would find; the drift it
// found before is in status.drift.
func (s *Server) drift(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	if s.opts.Observer == nil {
		writeProblem(w, http.StatusNotImplemented, "Not observed", "this daemon does not observe the host", nil)
		return
	}
	name := r.PathValue("name")
	row, ok := s.load(w, r, kind, rbac.Read)
	if !ok || !s.onThisNode(w, row) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), observeTimeout)
	defer cancel()
	at := s.opts.Clock().UTC()
	diffs, err := s.opts.Observer.Observe(ctx, kind, name)
	switch {
	case errors.Is(err, ErrNotObserved):
		writeProblem(w, http.StatusNotImplemented, "Not observed", err.Error(), nil)
		return
	case isStoreError(err):
		s.storeError(w, err)
		return
	case err != nil:
		// The host could not be looked at (a home that is a symlink, a user
		// WCP360 did not create...): the controller reports the same.
		s.log.Warn("api drift: cannot observe the host", "kind", kind, "name", name, "err", err)
		writeProblem(w, http.StatusInternalServerError, "Observation failed", err.Error(), nil)
		return
	}
	rep := DriftReport{ObservedAt: at, Differences: make([]Difference, 0, len(diffs))}
	for _, d := range diffs {
		rep.Differences = append(rep.Differences, Difference{Field: d.Field, Want: d.Want, Have: d.Have})
	}
	writeJSON(w, http.StatusOK, rep)
}

// reconcile answers POST .../reconcile: the resource's controller is asked
// to reconcile it now, ahead of its resync and of any backoff, as `flux
// reconcile` does. The answer comes before the reconcile runs.
func (s *Server) reconcile(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	if s.opts.Enqueue == nil {
		writeProblem(w, http.StatusNotImplemented, "No controllers", "this daemon runs no controllers to reconcile with", nil)
		return
	}
	name := r.PathValue("name")
	row, ok := s.load(w, r, kind, rbac.Write)
	if !ok || !s.onThisNode(w, row) {
		return
	}
	at := s.opts.Clock().UTC()
	s.opts.Enqueue(kind, name)
	obj, err := ResourceJSON(row)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ReconcileResponse{RequestedAt: at, Object: obj})
}

// onThisNode writes 409 for a resource another wcpd converges: only that
// one can look at its host or reconcile it.
func (s *Server) onThisNode(w http.ResponseWriter, row store.Resource) bool {
	if row.Node == "" || row.Node == s.opts.Node {
		return true
	}
	msg := fmt.Sprintf("%s/%s lives on node %s, not on this one (%s); ask that node's wcpd",
		Plural(row.Kind), row.Name, row.Node, s.opts.Node)
	writeProblem(w, http.StatusConflict, "Another node", msg, nil)
	return false
}

// isStoreError reports whether err is one storeError has an answer for.
func isStoreError(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable)
}
