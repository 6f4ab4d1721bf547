// Package api is wcpd's REST API: resource-oriented JSON under /api/v1,
// application/problem+json errors that name the field, and an OpenAPI
// document generated from the resource types.
package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/jsondiff"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/store"
)

// MaxBodyBytes caps a request body (one manifest).
const MaxBodyBytes = 1 << 20

// localActor is who a write over the unix socket is recorded as.
const localActor = "root@unix"

// Store is what the API needs from the store.
type Store interface {
	Apply(ctx context.Context, req store.ApplyRequest) (store.ApplyResult, error)
	Rollback(ctx context.Context, req store.RollbackRequest) (store.ApplyResult, error)
	Get(ctx context.Context, kind v1alpha1.Kind, name string) (store.Resource, error)
	List(ctx context.Context, kind v1alpha1.Kind, opts store.ListOptions) ([]store.Resource, error)
	Delete(ctx context.Context, kind v1alpha1.Kind, name string, resourceVersion int64) (store.Resource, error)
	Events(ctx context.Context, kind v1alpha1.Kind, name string, limit int) ([]store.Event, error)
	Revisions(ctx context.Context, kind v1alpha1.Kind, name string) ([]store.Revision, error)
	Ping(ctx context.Context) error
}

// Options configure a Server.
type Options struct {
	Store   Store
	Logger  *slog.Logger
	Node    string // this wcpd's node name; tenants without spec.node land here
	Version string
	// Checks are extra health checks (name → func returning nil when healthy).
	Checks map[string]func(context.Context) error
	// Observer looks at the host for GET .../drift; nil answers 501.
	Observer Observer
	// Enqueue asks the controller of kind to reconcile name now, for POST
	// .../reconcile; it must not block. Nil answers 501.
	Enqueue func(kind v1alpha1.Kind, name string)
	// Clock is the time source (time.Now when nil).
	Clock func() time.Time
	// Auth verifies bearer credentials (requests that do not come from
	// root on the local socket); nil refuses every token.
	Auth Authenticator
	// Identity is first boot, logins, principals and tokens. With it,
	// nothing but the public routes and first boot answers until first
	// boot is done; nil: no such routes, and no first boot to wait for.
	Identity Identity
	// Metrics writes the daemon's metrics in the Prometheus text format
	// (metrics.ContentType) for GET /metrics; nil answers 501.
	Metrics func(w io.Writer) error
}

// Server serves the API.
type Server struct {
	opts        Options
	log         *slog.Logger
	openapiOnce sync.Once
	openapiDoc  map[string]any
}

// NewServer returns a Server.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Server{opts: opts, log: opts.Logger}
}

// Handler returns the HTTP handler with every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.Pattern, rt.handler)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "Not found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path), nil)
	})
	return s.logRequests(s.localRootOnly(s.identify(s.initGate(mux))))
}

// Route is one route of the API and what it needs: every route declares
// it here, and guard enforces it (Action nil: public). KindVerb routes act
// on the kind their {plural} names.
type Route struct {
	Pattern  string
	Action   *rbac.Action
	KindVerb rbac.Verb
	handler  http.HandlerFunc
}

// Routes lists the API's routes with what each needs (for the docs and the
// authorization matrix test).
func (s *Server) Routes() []Route { return s.routes() }

func (s *Server) routes() []Route {
	system := &rbac.Action{Verb: rbac.Read, Resource: rbac.ResourceSystem}
	pub := func(pattern string, h http.HandlerFunc) Route { return Route{Pattern: pattern, handler: h} }
	sys := func(pattern string, h http.HandlerFunc) Route {
		return Route{Pattern: pattern, Action: system, handler: s.guard(system, h)}
	}
	self := func(pattern string, v rbac.Verb, h http.HandlerFunc) Route {
		a := &rbac.Action{Verb: v, Resource: rbac.ResourceSelf}
		return Route{Pattern: pattern, Action: a, handler: s.guard(a, h)}
	}
	sysw := func(pattern string, v rbac.Verb, h http.HandlerFunc) Route {
		a := &rbac.Action{Verb: v, Resource: rbac.ResourceSystem}
		return Route{Pattern: pattern, Action: a, handler: s.guard(a, h)}
	}
	kind := func(pattern string, v rbac.Verb, h kindHandler) Route {
		return Route{Pattern: pattern, KindVerb: v, handler: s.guardKind(v, h)}
	}
	return []Route{
		pub("GET /healthz", s.health),
		pub("GET /openapi.json", s.openapi),
		pub("GET /api/v1/openapi.json", s.openapi),
		sys("GET /metrics", s.metrics),
		kind("GET /api/v1/{plural}", rbac.Read, s.list),
		kind("GET /api/v1/{plural}/{name}", rbac.Read, s.get),
		kind("PUT /api/v1/{plural}/{name}", rbac.Write, s.apply),
		kind("DELETE /api/v1/{plural}/{name}", rbac.Write, s.delete),
		kind("GET /api/v1/{plural}/{name}/status", rbac.Read, s.status),
		kind("GET /api/v1/{plural}/{name}/events", rbac.Read, s.events),
		kind("GET /api/v1/{plural}/{name}/revisions", rbac.Read, s.revisions),
		kind("POST /api/v1/{plural}/{name}/rollback", rbac.Write, s.rollback),
		kind("GET /api/v1/{plural}/{name}/drift", rbac.Read, s.drift),
		kind("POST /api/v1/{plural}/{name}/reconcile", rbac.Write, s.reconcile),
		// First boot and sessions: public (they check credentials themselves).
		pub("GET /api/v1/bootstrap", s.bootstrapStatus),
		pub("POST /api/v1/bootstrap", s.bootstrap),
		pub("POST /api/v1/auth/login", s.login),
		pub("POST /api/v1/auth/refresh", s.refresh),
		pub("POST /api/v1/auth/logout", s.logout),
		self("GET /api/v1/whoami", rbac.Read, s.whoami),
		// API tokens: one's own; another principal's needs an admin (checked in the handler).
		self("GET /api/v1/tokens", rbac.Read, s.listTokens),
		self("POST /api/v1/tokens", rbac.Write, s.createToken),
		self("DELETE /api/v1/tokens/{name}", rbac.Write, s.revokeToken),
		// Principals: admins only.
		sysw("GET /api/v1/principals", rbac.Read, s.listPrincipals),
		sysw("PUT /api/v1/principals/{name}", rbac.Write, s.putPrincipal),
		sysw("DELETE /api/v1/principals/{name}", rbac.Write, s.deletePrincipal),
		// A new signing key; the previous ones verify until their tokens expired.
		sysw("POST /api/v1/keys/rotate", rbac.Write, s.rotateKeys),
		// Profiles for operators: admins only.
		sys("GET /debug/pprof/", pprof.Index),
		sys("GET /debug/pprof/profile", pprof.Profile),
		sys("GET /debug/pprof/trace", pprof.Trace),
	}
}

// Plurals maps the URL segment to its kind.
var plurals = map[string]v1alpha1.Kind{ //nolint:gochecknoglobals // constant table
	"tenants":   v1alpha1.KindTenant,
	"domains":   v1alpha1.KindDomain,
	"databases": v1alpha1.KindDatabase,
}

// Plural returns the URL segment of a kind.
func Plural(k v1alpha1.Kind) string { return strings.ToLower(string(k)) + "s" }

type kindHandler func(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind)

func (s *Server) withKind(h kindHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		kind, ok := plurals[r.PathValue("plural")]
		if !ok {
			writeProblem(w, http.StatusNotFound, "Unknown kind",
				fmt.Sprintf("unknown resource type %q: want tenants, domains or databases", r.PathValue("plural")), nil)
			return
		}
		h(w, r, kind)
	}
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "api request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("took", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	h := Health{Status: "ok", Checks: map[string]string{}, Version: s.opts.Version, Node: s.opts.Node}
	check := func(name string, err error) {
		if err != nil {
			h.Status = "degraded"
			h.Checks[name] = err.Error()
			return
		}
		h.Checks[name] = "ok"
	}
	check("database", s.opts.Store.Ping(ctx))
	for name, f := range s.opts.Checks {
		check(name, f(ctx))
	}
	code := http.StatusOK
	if h.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

// metrics answers GET /metrics in the Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Metrics == nil {
		writeProblem(w, http.StatusNotImplemented, "No metrics", "this daemon keeps no metrics", nil)
		return
	}
	var b bytes.Buffer
	if err := s.opts.Metrics(&b); err != nil {
		s.internalError(w, err)
		return
	}
	w.Header().Set("Content-Type", metrics.ContentType)
	_, _ = w.Write(b.Bytes())
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	q := r.URL.Query()
	opts := store.ListOptions{Tenant: q.Get("tenant"), Node: q.Get("node")}
	if sel := q.Get("labelSelector"); sel != "" {
		labels, err := ParseLabelSelector(sel)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, "Invalid label selector", err.Error(),
				[]FieldProblem{{Field: "labelSelector", Message: err.Error()}})
			return
		}
		opts.Labels = labels
	}
	rows, err := s.opts.Store.List(r.Context(), kind, opts)
	if err != nil {
		s.storeError(w, err)
		return
	}
	p := PrincipalFrom(r.Context())
	rows = visible(p, rows)
	for i := range rows {
		rows[i] = redact(p, rows[i])
	}
	s.writeList(w, kind, rows)
}

// writeList streams a List item by item, so that listing thousands of
// resources does not build the whole answer in memory twice.
func (s *Server) writeList(w http.ResponseWriter, kind v1alpha1.Kind, rows []store.Resource) {
	head, err := json.Marshal(List{APIVersion: v1alpha1.APIVersion, Kind: string(kind) + "List"})
	if err != nil {
		s.internalError(w, err)
		return
	}
	// head ends in `"items":null}`: reopen it as an array.
	head = append(bytes.TrimSuffix(head, []byte("null}")), '[')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	_, _ = bw.Write(head)
	for i := range rows {
		b, err := ResourceJSON(rows[i])
		if err != nil {
			// The status line is gone; log it and end with invalid JSON so
			// no client takes a truncated list for a whole one.
			s.log.Error("api list: cannot encode a stored resource", "kind", kind, "name", rows[i].Name, "err", err)
			_, _ = bw.WriteString("\n!error: list truncated\n")
			_ = bw.Flush()
			return
		}
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(b)         //nolint:gosec // G705: JSON we encoded, served as application/json
		rows[i] = store.Resource{} // let the row go as soon as it is sent
	}
	_, _ = bw.WriteString("]}\n")
	_ = bw.Flush()
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	row, ok := s.load(w, r, kind, rbac.Read)
	if !ok {
		return
	}
	s.writeResource(w, http.StatusOK, redact(PrincipalFrom(r.Context()), row))
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	row, ok := s.load(w, r, kind, rbac.Read)
	if !ok {
		return
	}
	st := row.Status
	if len(st) == 0 {
		st = json.RawMessage(`{}`)
	}
	writeRaw(w, http.StatusOK, st)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	name := r.PathValue("name")
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, "Invalid limit", "limit must be a number from 1 to 1000",
				[]FieldProblem{{Field: "limit", Message: "must be a number from 1 to 1000"}})
			return
		}
		limit = n
	}
	if _, ok := s.load(w, r, kind, rbac.Read); !ok {
		return
	}
	evs, err := s.opts.Store.Events(r.Context(), kind, name, limit)
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]EventItem, 0, len(evs))
	for _, e := range evs {
		out = append(out, EventItem{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count,
			FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, Kind: string(e.Kind), Name: e.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revisions(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	row, ok := s.load(w, r, kind, rbac.Read)
	if !ok {
		return
	}
	p := PrincipalFrom(r.Context())
	revs, err := s.opts.Store.Revisions(r.Context(), kind, r.PathValue("name"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]RevisionItem, 0, len(revs))
	for _, rv := range revs {
		spec := rv.Spec
		if row.Kind == v1alpha1.KindTenant && !rbac.SeesLimits(p, row.Name) {
			spec = withoutLimits(spec)
		}
		out = append(out, RevisionItem{Number: rv.Number, Generation: rv.Generation, Actor: rv.Actor,
			CreatedAt: rv.CreatedAt, Spec: spec})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	name := r.PathValue("name")
	var rv int64
	if v := r.URL.Query().Get("resourceVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeProblem(w, http.StatusBadRequest, "Invalid resourceVersion", "resourceVersion must be a positive number",
				[]FieldProblem{{Field: "resourceVersion", Message: "must be a positive number"}})
			return
		}
		rv = n
	}
	row, ok := s.load(w, r, kind, rbac.Write)
	if !ok {
		return
	}
	var err error
	if !dryRun(r) {
		row, err = s.opts.Store.Delete(r.Context(), kind, name, rv)
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.writeResource(w, http.StatusAccepted, row)
}

// writeResource answers with one resource as a manifest.
func (s *Server) writeResource(w http.ResponseWriter, code int, row store.Resource) {
	b, err := ResourceJSON(row)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeRaw(w, code, b)
}

func dryRun(r *http.Request) bool {
	v := r.URL.Query().Get("dryRun")
	return v == "true" || v == "1" || v == "All"
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, kind v1alpha1.Kind) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, "Request too large",
			fmt.Sprintf("a manifest is at most %d bytes: %v", MaxBodyBytes, err), nil)
		return
	}
	obj, err := v1alpha1.DecodeObjectJSON(kind, body)
	if err != nil {
		writeDecodeProblem(w, err)
		return
	}
	if name := r.PathValue("name"); obj.GetMeta().Name != name {
		msg := fmt.Sprintf("must equal the name in the URL (%q), got %q", name, obj.GetMeta().Name)
		writeProblem(w, http.StatusBadRequest, "Name mismatch", "metadata.name: "+msg,
			[]FieldProblem{{Field: "metadata.name", Message: msg}})
		return
	}
	req, err := s.applyRequest(obj, dryRun(r))
	if err != nil {
		s.internalError(w, err)
		return
	}
	// Both the tenant it belongs to now and the one it would belong to.
	cur, err := s.opts.Store.Get(r.Context(), kind, req.Name)
	switch {
	case err == nil:
		if !s.allowed(w, r, kind, rbac.Write, cur.Tenant) {
			return
		}
	case !errors.Is(err, store.ErrNotFound):
		s.storeError(w, err)
		return
	}
	if d := rbac.Authorize(PrincipalFrom(r.Context()), rbac.Action{Verb: rbac.Write, Resource: Plural(kind)}, req.Tenant); !d.Allowed {
		field := "spec.tenant"
		if kind == v1alpha1.KindTenant {
			field = "metadata.name"
		}
		msg := fmt.Sprintf("%q is not a tenant you manage", req.Tenant)
		if !d.Hidden {
			msg = d.Reason
		}
		writeProblem(w, http.StatusForbidden, "Forbidden", field+": "+msg, []FieldProblem{{Field: field, Message: msg}})
		return
	}
	req.Actor = actor(PrincipalFrom(r.Context()))
	res, err := s.opts.Store.Apply(r.Context(), req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	resp, err := applyResponse(req.DryRun, res)
	if err != nil {
		s.internalError(w, err)
		return
	}
	code := http.StatusOK
	if res.Created && !req.DryRun {
		code = http.StatusCreated
	}
	writeJSON(w, code, resp)
}

// applyRequest turns a validated object into a store write.
func (s *Server) applyRequest(obj v1alpha1.Object, dry bool) (store.ApplyRequest, error) {
	spec, err := json.Marshal(obj.SpecValue())
	if err != nil {
		return store.ApplyRequest{}, fmt.Errorf("encode spec: %w", err)
	}
	m := obj.GetMeta()
	req := store.ApplyRequest{
		Kind: obj.GetKind(), Name: m.Name, Tenant: obj.TenantName(), Node: s.opts.Node,
		Labels: m.Labels, Annotations: m.Annotations, Spec: spec,
		ResourceVersion: m.ResourceVersion, DryRun: dry, Actor: localActor,
	}
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		if o.Spec.Node != "" {
			req.Node = o.Spec.Node
		}
	case *v1alpha1.Domain:
		req.Hostnames = o.Hostnames()
	case *v1alpha1.Database:
		req.DatabaseName, req.Engine = o.Spec.DatabaseName, string(o.Spec.Engine)
	}
	return req, nil
}

func applyResponse(dry bool, res store.ApplyResult) (ApplyResponse, error) {
	resp := ApplyResponse{Outcome: OutcomeConfigured, DryRun: dry}
	switch {
	case res.Created:
		resp.Outcome = OutcomeCreated
	case res.Unchanged():
		resp.Outcome = OutcomeUnchanged
	}
	changes, err := Changes(res)
	if err != nil {
		return resp, err
	}
	resp.Changes = changes
	resp.Object, err = ResourceJSON(res.Resource)
	return resp, err
}

// Changes lists what an apply changed in spec and metadata.
func Changes(res store.ApplyResult) ([]Change, error) {
	if res.Unchanged() {
		return nil, nil
	}
	var prevSpec, prevLabels, prevAnn []byte
	if !res.Created {
		prevSpec = res.PreviousSpec
		if prevSpec == nil {
			prevSpec = res.Resource.Spec // a metadata-only change
		}
	}
	prevLabels, prevAnn = mapJSON(res.PreviousLabels), mapJSON(res.PreviousAnnotations)
	var out []Change
	for _, part := range []struct {
		path      string
		prev, cur []byte
	}{
		{"metadata.labels", prevLabels, mapJSON(res.Resource.Labels)},
		{"metadata.annotations", prevAnn, mapJSON(res.Resource.Annotations)},
		{"spec", prevSpec, res.Resource.Spec},
	} {
		cs, err := jsondiff.Diff(part.path, part.prev, part.cur)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out = append(out, Change{Path: c.Path, Old: c.Old, New: c.New})
		}
	}
	return out, nil
}

// mapJSON encodes labels or annotations for diffing, key by key.
func mapJSON(m map[string]string) []byte {
	if len(m) == 0 {
		return []byte("{}")
	}
	b, _ := json.Marshal(m) // a map[string]string always encodes
	return b
}

// ParseLabelSelector parses "k=v,k2=v2".
func ParseLabelSelector(sel string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", part)
		}
		out[k] = strings.TrimSpace(strings.TrimPrefix(v, "="))
	}
	return out, nil
}

// ResourceJSON renders a stored row as a Kubernetes-shaped manifest.
func ResourceJSON(r store.Resource) (json.RawMessage, error) {
	created, updated := r.CreatedAt, r.UpdatedAt
	doc := struct {
		APIVersion string              `json:"apiVersion"`
		Kind       v1alpha1.Kind       `json:"kind"`
		Metadata   v1alpha1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage     `json:"spec"`
		Status     json.RawMessage     `json:"status,omitempty"`
	}{
		APIVersion: v1alpha1.APIVersion, Kind: r.Kind,
		Metadata: v1alpha1.ObjectMeta{
			Name: r.Name, Labels: r.Labels, Annotations: r.Annotations, UID: r.UID,
			Generation: r.Generation, ResourceVersion: r.ResourceVersion,
			CreationTimestamp: &created, UpdateTimestamp: &updated, DeletionTimestamp: r.DeletionRequestedAt,
		},
		Spec: r.Spec, Status: r.Status,
	}
	if len(doc.Status) == 0 || string(doc.Status) == "null" {
		doc.Status = nil
	}
	return json.Marshal(doc)
}

// ---------------------------------------------------------------- errors

func (s *Server) storeError(w http.ResponseWriter, err error) {
	var fe *store.FieldError
	problems := []FieldProblem(nil)
	if errors.As(err, &fe) {
		msg := fe.Msg
		if msg == "" {
			msg = fmt.Sprintf("%q %v", fe.Value, fe.Err)
		}
		problems = []FieldProblem{{Field: fe.Field, Message: msg}}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "Not found", err.Error(), problems)
	case errors.Is(err, store.ErrImmutable):
		writeProblem(w, http.StatusUnprocessableEntity, "Immutable field", err.Error(), problems)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrDuplicate), errors.Is(err, store.ErrTerminating):
		writeProblem(w, http.StatusConflict, "Conflict", err.Error(), problems)
	case errors.Is(err, store.ErrDependency):
		writeProblem(w, http.StatusUnprocessableEntity, "Missing dependency", err.Error(), problems)
	case errors.Is(err, store.ErrInvalid):
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid request", err.Error(), problems)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("store unavailable", "err", err)
		writeProblem(w, http.StatusServiceUnavailable, "Database unavailable", err.Error(), problems)
	default:
		s.internalError(w, err)
	}
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.log.Error("api internal error", "err", err)
	writeProblem(w, http.StatusInternalServerError, "Internal error", err.Error(), nil)
}

func writeDecodeProblem(w http.ResponseWriter, err error) {
	var des v1alpha1.DecodeErrors
	if !errors.As(err, &des) {
		writeProblem(w, http.StatusBadRequest, "Invalid manifest", err.Error(), nil)
		return
	}
	problems := make([]FieldProblem, 0, len(des))
	msgs := make([]string, 0, len(des))
	for _, d := range des {
		problems = append(problems, FieldProblem{Field: d.Path, Message: d.Msg, Line: d.Line})
		msgs = append(msgs, d.Path+": "+d.Msg)
	}
	writeProblem(w, http.StatusUnprocessableEntity, "Invalid manifest", strings.Join(msgs, "; "), problems)
}

func writeProblem(w http.ResponseWriter, code int, title, detail string, errs []FieldProblem) {
	p := Problem{Type: "https://wcp360.io/problems/" + strings.ReplaceAll(strings.ToLower(title), " ", "-"),
		Title: title, Status: code, Detail: detail, Errors: errs}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n')) //nolint:gosec // G705: JSON we encoded, served as application/json
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "Internal error", err.Error(), nil)
		return
	}
	writeRaw(w, code, b)
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n')) //nolint:gosec // G705: JSON we encoded, served as application/json
}
