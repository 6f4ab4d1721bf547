package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wcp360/wcp360/internal/auth/rbac"
	"github.com/wcp360/wcp360/internal/store"
)

// Identity is first boot, logins, principals and API tokens
// (internal/auth/identity).
type Identity interface {
	Initialized(ctx context.Context) (bool, error)
	Bootstrap(ctx context.Context, req BootstrapRequest, peer Peer) (BootstrapResult, error)
	Login(ctx context.Context, req LoginRequest, peer Peer, userAgent string) (Tokens, error)
	Refresh(ctx context.Context, refresh string, peer Peer, userAgent string) (Tokens, error)
	Logout(ctx context.Context, refresh string) error
	PutPrincipal(ctx context.Context, name string, spec PrincipalSpec) (PrincipalInfo, bool, error)
	ListPrincipals(ctx context.Context) ([]PrincipalInfo, error)
	DeletePrincipal(ctx context.Context, name string) error
	CreateToken(ctx context.Context, req APITokenRequest, createdBy string) (APITokenCreated, error)
	ListTokens(ctx context.Context, principal string) ([]APITokenInfo, error)
	RevokeToken(ctx context.Context, principal, name string) error
	RotateKeys(ctx context.Context) (KeyRotation, error)
}

// Errors an Identity answers with, matched with errors.Is.
var (
	// ErrAlreadyInitialized: a second first boot (409).
	ErrAlreadyInitialized = errors.New("the panel is initialised already")
	// ErrNotInitialized: the panel has had no first boot yet (503).
	ErrNotInitialized = errors.New("the panel is not initialised")
	// ErrBusy: too many logins at once; retry (503).
	ErrBusy = errors.New("busy")
)

// RetryAfterError is a refusal for now (rate limited): 429 with Retry-After.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("too many failed attempts; retry in %s", e.After.Round(time.Second))
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// fieldInputError is a bad request field (422).
type fieldInputError struct{ field, msg string }

func (e *fieldInputError) Error() string { return e.field + ": " + e.msg }

// InputError is an error naming a request field (422).
func InputError(field, msg string) error { return &fieldInputError{field, msg} }

// initGate answers every route but the public ones and first boot with 503
// until first boot is done. Once initialised it asks no more.
func (s *Server) initGate(next http.Handler) http.Handler {
	var done atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Identity == nil || done.Load() {
			next.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/healthz", "/openapi.json", "/api/v1/openapi.json", "/api/v1/bootstrap":
			next.ServeHTTP(w, r)
			return
		}
		ok, err := s.opts.Identity.Initialized(r.Context())
		if err != nil {
			s.storeError(w, err)
			return
		}
		if !ok {
			writeProblem(w, http.StatusServiceUnavailable, "Not initialised",
				"the panel is not initialised: run `wcp init` as root on this machine (first boot)", nil)
			return
		}
		done.Store(true)
		next.ServeHTTP(w, r)
	})
}

func (s *Server) noIdentity(w http.ResponseWriter) bool {
	if s.opts.Identity != nil {
		return false
	}
	writeProblem(w, http.StatusNotImplemented, "No identity", "this daemon has no logins, principals or tokens", nil)
	return true
}

func (s *Server) bootstrapStatus(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	ok, err := s.opts.Identity.Initialized(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, BootstrapStatus{Initialized: ok})
}

// identityCall is the shape of the identity routes that take a JSON body:
// decode it strictly into Req, call f, answer code with its result or the
// error's problem.
func identityCall[Req, Resp any](s *Server, code int, f func(r *http.Request, req Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.noIdentity(w) {
			return
		}
		var req Req
		if !decodeBody(w, r, &req) {
			return
		}
		out, err := f(r, req)
		if err != nil {
			s.identityError(w, err)
			return
		}
		writeJSON(w, code, out)
	}
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	identityCall(s, http.StatusCreated, func(r *http.Request, req BootstrapRequest) (BootstrapResult, error) {
		peer, _ := PeerFrom(r.Context())
		return s.opts.Identity.Bootstrap(r.Context(), req, peer)
	})(w, r)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	identityCall(s, http.StatusOK, func(r *http.Request, req LoginRequest) (Tokens, error) {
		if req.Username == "" {
			return Tokens{}, InputError("username", "required")
		}
		peer, _ := PeerFrom(r.Context())
		return s.opts.Identity.Login(r.Context(), req, peer, r.UserAgent())
	})(w, r)
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) {
	identityCall(s, http.StatusOK, func(r *http.Request, req RefreshRequest) (Tokens, error) {
		peer, _ := PeerFrom(r.Context())
		return s.opts.Identity.Refresh(r.Context(), req.RefreshToken, peer, r.UserAgent())
	})(w, r)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	var req RefreshRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := s.opts.Identity.Logout(r.Context(), req.RefreshToken); err != nil {
		s.identityError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p := PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, PrincipalInfo{Name: p.Name, Role: string(p.Role), Tenants: p.Tenants, Scopes: p.Scopes, Via: p.Via})
}

func (s *Server) putPrincipal(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	var spec PrincipalSpec
	if !decodeBody(w, r, &spec) {
		return
	}
	info, created, err := s.opts.Identity.PutPrincipal(r.Context(), r.PathValue("name"), spec)
	if err != nil {
		s.identityError(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, info)
}

func (s *Server) listPrincipals(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	ps, err := s.opts.Identity.ListPrincipals(r.Context())
	if err != nil {
		s.identityError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ps)
}

func (s *Server) deletePrincipal(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	if err := s.opts.Identity.DeletePrincipal(r.Context(), r.PathValue("name")); err != nil {
		s.identityError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// tokenPrincipal is whose tokens a request is about: the caller's own, or
// (admins: system scope) another principal's.
func (s *Server) tokenPrincipal(w http.ResponseWriter, r *http.Request, asked string, verb rbac.Verb) (string, bool) {
	p := PrincipalFrom(r.Context())
	if asked == "" || asked == p.Name {
		return p.Name, true
	}
	if d := rbac.Authorize(p, rbac.Action{Verb: verb, Resource: rbac.ResourceSystem}, ""); !d.Allowed {
		writeProblem(w, http.StatusForbidden, "Forbidden", "another principal's tokens: "+d.Reason, nil)
		return "", false
	}
	return asked, true
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	who, ok := s.tokenPrincipal(w, r, r.URL.Query().Get("principal"), rbac.Read)
	if !ok {
		return
	}
	toks, err := s.opts.Identity.ListTokens(r.Context(), who)
	if err != nil {
		s.identityError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toks)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	var req APITokenRequest
	if !decodeBody(w, r, &req) {
		return
	}
	who, ok := s.tokenPrincipal(w, r, req.Principal, rbac.Write)
	if !ok {
		return
	}
	p := PrincipalFrom(r.Context())
	if p.Scopes != nil {
		// A token cannot mint a wider one.
		for _, sc := range req.Scopes {
			if !rbac.ScopeCovered(p.Scopes, sc) {
				writeProblem(w, http.StatusForbidden, "Forbidden", fmt.Sprintf("scope %q is more than this token's own scopes %v", sc, p.Scopes), nil)
				return
			}
		}
	}
	req.Principal = who
	created, err := s.opts.Identity.CreateToken(r.Context(), req, actor(p))
	if err != nil {
		s.identityError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, created)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	who, ok := s.tokenPrincipal(w, r, r.URL.Query().Get("principal"), rbac.Write)
	if !ok {
		return
	}
	if err := s.opts.Identity.RevokeToken(r.Context(), who, r.PathValue("name")); err != nil {
		s.identityError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	if s.noIdentity(w) {
		return
	}
	out, err := s.opts.Identity.RotateKeys(r.Context())
	if err != nil {
		s.identityError(w, err)
		return
	}
	s.log.Info("signing keys rotated", "kid", out.KeyID, "pruned", out.Pruned, "by", actor(PrincipalFrom(r.Context())))
	writeJSON(w, http.StatusOK, out)
}

// identityError answers an Identity's error.
func (s *Server) identityError(w http.ResponseWriter, err error) {
	var ra *RetryAfterError
	var fe *fieldInputError
	switch {
	case errors.As(err, &fe):
		writeProblem(w, http.StatusUnprocessableEntity, "Invalid request", err.Error(), []FieldProblem{{Field: fe.field, Message: fe.msg}})
	case errors.As(err, &ra):
		w.Header().Set("Retry-After", strconv.Itoa(int(max(ra.After, time.Second).Seconds()+0.5)))
		writeProblem(w, http.StatusTooManyRequests, "Too many attempts", ra.Error(), nil)
	case errors.Is(err, ErrUnauthenticated):
		unauthorized(w, unauthenticatedDetail(err))
	case errors.Is(err, ErrAlreadyInitialized):
		writeProblem(w, http.StatusConflict, "Initialised already", "first boot is done; a second one is refused", nil)
	case errors.Is(err, ErrNotInitialized):
		writeProblem(w, http.StatusServiceUnavailable, "Not initialised", "run `wcp init` as root on this machine first", nil)
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "Busy", err.Error(), nil)
	case isStoreError(err) || errors.As(err, new(*store.FieldError)):
		s.storeError(w, err)
	default:
		s.internalError(w, err)
	}
}

// decodeBody decodes a small JSON body strictly into v, or answers 400.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, "Request too large", err.Error(), nil)
		return false
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	if err := strictJSON(b, v); err != nil {
		writeProblem(w, http.StatusBadRequest, "Invalid body", err.Error(), nil)
		return false
	}
	return true
}

// strictJSON decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}
