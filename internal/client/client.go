// Package client talks to the wcpd REST API (/api/v1) over its unix socket or
// an http(s):// URL. It is what the wcp command line uses; every method maps
// to one request and decodes the wire types of package api.
//
// Over HTTPS a client made by NewWith checks the server against a CA file
// (wcpd's self-signed certificate) or the system's roots, sends a bearer
// token, and renews a login session by itself: a request answered 401 is
// retried once after a refresh, whose new tokens OnRefresh saves.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
)

// DefaultSocket is where wcpd listens unless configured otherwise.
const DefaultSocket = "/run/wcp360/wcpd.sock"

// requestTimeout bounds one request when the caller's context does not.
const requestTimeout = time.Minute

// maxErrorBody caps how much of a non-problem error body is kept.
const maxErrorBody = 4096

// ErrUnreachable is wrapped by every error that comes from failing to connect
// to wcpd (socket missing, connection refused, no route).
var ErrUnreachable = errors.New("wcpd is not running or not reachable")

// Client is a wcpd API client. It is safe for concurrent use.
type Client struct {
	addr string // the socket path or URL, for messages
	base *url.URL
	http *http.Client

	// mu guards the session: the bearer token and the refresh token. It is
	// held during a refresh, so that concurrent requests answered 401
	// refresh once between them (a refresh token used twice ends the
	// session).
	mu        sync.Mutex
	token     string
	refresh   string
	onRefresh func(api.Tokens) error
}

// New returns a client for a unix socket path, or for an http:// or https://
// URL (the API root, without /api/v1).
func New(socketOrURL string) *Client {
	if strings.HasPrefix(socketOrURL, "http://") || strings.HasPrefix(socketOrURL, "https://") {
		return newURL(socketOrURL)
	}
	return newUnix(socketOrURL)
}

func newUnix(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, &dialError{err: err}
			}
			return conn, nil
		},
		MaxIdleConns:    4,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{
		addr: path,
		base: &url.URL{Scheme: "http", Host: "wcpd"},
		http: &http.Client{Transport: tr, Timeout: requestTimeout},
	}
}

func newURL(raw string) *Client {
	return newURLTLS(raw, nil)
}

// newURLTLS is newURL with the TLS configuration of an https:// address
// (nil: the system roots).
func newURLTLS(raw string, tlsConf *tls.Config) *Client {
	base, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		// Keep the client usable; every request reports the bad address.
		base = &url.URL{Scheme: "http", Host: "invalid.invalid"}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf
	}
	inner := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
		conn, err := inner(ctx, network, address)
		if err != nil {
			return nil, &dialError{err: err}
		}
		return conn, nil
	}
	return &Client{addr: raw, base: base, http: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

// Address is the socket path or URL the client talks to.
func (c *Client) Address() string { return c.addr }

// dialError marks a failure to connect, as opposed to a failure later on.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// APIError is an error answer of the API: its HTTP status and problem body.
type APIError struct {
	Status  int
	Problem api.Problem
	// RetryAfter is how long the server asks to wait before trying again
	// (its Retry-After header, with 429 and 503); 0 when it did not say.
	RetryAfter time.Duration
}

// Error is the problem's title and detail; field errors are in Problem.Errors.
func (e *APIError) Error() string {
	msg := e.Problem.Title
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Problem.Detail != "" {
		msg += ": " + e.Problem.Detail
	}
	return msg
}

// IsNotFound reports whether err is an API answer 404.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsNotImplemented reports whether err is an API answer 501: the daemon
// does not do that (observe the host, run controllers).
func IsNotImplemented(err error) bool { return hasStatus(err, http.StatusNotImplemented) }

// IsForbidden reports whether err is an API answer 403: the principal may
// not do that.
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsRateLimited reports whether err is an API answer 429: too many
// attempts; APIError.RetryAfter says when to try again.
func IsRateLimited(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

// IsConflict reports whether err is an API answer 409.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsUnauthorized reports whether the API wanted credentials (401): a
// token that is missing, expired or revoked.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// ListOptions filters a List.
type ListOptions struct {
	// Tenant keeps only resources of this tenant.
	Tenant string
	// LabelSelector is "k=v,k2=v2"; every pair must match.
	LabelSelector string
}

// Health asks GET /healthz. A degraded daemon answers 503 with its checks;
// that answer is returned as a Health, not as an error.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	resp, err := c.send(ctx, http.MethodGet, "/healthz", nil, nil)
	if err != nil {
		return h, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusOK {
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err == nil && json.Unmarshal(data, &h) == nil && h.Status != "" {
			return h, nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
	}
	return h, decodeError(resp)
}

// Metrics asks GET /metrics: the daemon's counters (nginx reloads,
// reconciles per controller, ...) in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return b, nil
}

// maxMetricsBytes caps what Metrics reads.
const maxMetricsBytes = 16 << 20

// Apply creates or updates obj (PUT). With dryRun the server runs every check
// and reports what would change, then stores nothing.
func (c *Client) Apply(ctx context.Context, obj v1alpha1.Object, dryRun bool) (api.ApplyResponse, error) {
	var resp api.ApplyResponse
	body, err := manifestJSON(obj)
	if err != nil {
		return resp, fmt.Errorf("encode %s: %w", ref(obj.GetKind(), obj.GetMeta().Name), err)
	}
	err = c.do(ctx, http.MethodPut, itemPath(obj.GetKind(), obj.GetMeta().Name), dryRunQuery(dryRun), body, &resp)
	return resp, err
}

// Rollback applies the spec of revision number of a resource again, as a new
// generation (POST .../rollback); a revision equal to the current spec
// changes nothing. With dryRun the server reports what would change and
// stores nothing.
func (c *Client) Rollback(ctx context.Context, kind v1alpha1.Kind, name string, revision int64, dryRun bool) (api.ApplyResponse, error) {
	var resp api.ApplyResponse
	body, err := json.Marshal(api.RollbackRequest{Revision: revision})
	if err != nil {
		return resp, fmt.Errorf("encode rollback of %s: %w", ref(kind, name), err)
	}
	err = c.do(ctx, http.MethodPost, itemPath(kind, name)+"/rollback", dryRunQuery(dryRun), body, &resp)
	return resp, err
}

// Get returns one resource as the server sent it.
func (c *Client) Get(ctx context.Context, kind v1alpha1.Kind, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, itemPath(kind, name), nil, nil, &raw)
	return raw, err
}

// GetObject returns one resource decoded into its kind's type.
func (c *Client) GetObject(ctx context.Context, kind v1alpha1.Kind, name string) (v1alpha1.Object, error) {
	raw, err := c.Get(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	return DecodeObject(kind, raw)
}

// DecodeObject decodes one resource of a known kind from the server's JSON.
func DecodeObject(kind v1alpha1.Kind, raw json.RawMessage) (v1alpha1.Object, error) {
	obj, err := v1alpha1.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", strings.ToLower(string(kind)), err)
	}
	return obj, nil
}

// List returns the resources of a kind that match opts.
func (c *Client) List(ctx context.Context, kind v1alpha1.Kind, opts ListOptions) (api.List, error) {
	q := url.Values{}
	if opts.Tenant != "" {
		q.Set("tenant", opts.Tenant)
	}
	if opts.LabelSelector != "" {
		q.Set("labelSelector", opts.LabelSelector)
	}
	var l api.List
	err := c.do(ctx, http.MethodGet, "/api/v1/"+api.Plural(kind), q, nil, &l)
	return l, err
}

// Delete marks a resource for deletion and returns it as marked; the
// controller removes it from the host, then from the store.
func (c *Client) Delete(ctx context.Context, kind v1alpha1.Kind, name string, dryRun bool) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodDelete, itemPath(kind, name), dryRunQuery(dryRun), nil, &raw)
	return raw, err
}

// Status returns the observed state of a resource.
func (c *Client) Status(ctx context.Context, kind v1alpha1.Kind, name string) (v1alpha1.Status, error) {
	var st v1alpha1.Status
	err := c.do(ctx, http.MethodGet, itemPath(kind, name)+"/status", nil, nil, &st)
	return st, err
}

// Events returns the events of a resource.
func (c *Client) Events(ctx context.Context, kind v1alpha1.Kind, name string) ([]api.EventItem, error) {
	var ev []api.EventItem
	err := c.do(ctx, http.MethodGet, itemPath(kind, name)+"/events", nil, nil, &ev)
	return ev, err
}

// Revisions returns the numbered specs of a resource.
func (c *Client) Revisions(ctx context.Context, kind v1alpha1.Kind, name string) ([]api.RevisionItem, error) {
	var revs []api.RevisionItem
	err := c.do(ctx, http.MethodGet, itemPath(kind, name)+"/revisions", nil, nil, &revs)
	return revs, err
}

// Drift looks at the host for a resource now, through wcpd, and returns how
// it differs from the spec (GET .../drift). It changes nothing; a daemon
// that does not observe the host answers 501 (IsNotImplemented).
func (c *Client) Drift(ctx context.Context, kind v1alpha1.Kind, name string) (api.DriftReport, error) {
	var rep api.DriftReport
	err := c.do(ctx, http.MethodGet, itemPath(kind, name)+"/drift", nil, nil, &rep)
	return rep, err
}

// Reconcile asks wcpd to reconcile a resource now (POST .../reconcile), as
// its controller would on a change or a resync. It returns when the request
// is queued, not when the reconcile is done.
func (c *Client) Reconcile(ctx context.Context, kind v1alpha1.Kind, name string) (api.ReconcileResponse, error) {
	var resp api.ReconcileResponse
	err := c.do(ctx, http.MethodPost, itemPath(kind, name)+"/reconcile", nil, nil, &resp)
	return resp, err
}

// serverSet are the metadata fields only wcpd writes; a manifest may carry
// resourceVersion, but not these.
var serverSet = []string{"uid", "generation", "creationTimestamp", "updateTimestamp", "deletionTimestamp"} //nolint:gochecknoglobals // constant list

// manifestJSON is obj as a manifest: without the status and the server-set
// metadata, so that an object read from wcpd can be applied again.
func manifestJSON(obj v1alpha1.Object) ([]byte, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	delete(fields, "status")
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(fields["metadata"], &meta); err != nil {
		return nil, err
	}
	for _, k := range serverSet {
		delete(meta, k)
	}
	if fields["metadata"], err = json.Marshal(meta); err != nil {
		return nil, err
	}
	return json.Marshal(fields)
}

func itemPath(kind v1alpha1.Kind, name string) string {
	return "/api/v1/" + api.Plural(kind) + "/" + url.PathEscape(name)
}

func ref(kind v1alpha1.Kind, name string) string {
	return strings.ToLower(string(kind)) + "/" + name
}

func dryRunQuery(dryRun bool) url.Values {
	if !dryRun {
		return nil
	}
	return url.Values{"dryRun": {"true"}}
}

// request is one API call.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	// public requests carry no bearer token and are never refreshed and
	// retried: bootstrap, login, refresh and logout, whose own 401 means
	// what it says.
	public bool
}

// do sends one request and decodes a 2xx JSON answer into out, or returns an
// *APIError for an error answer.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	_, err := c.exchange(ctx, request{method: method, path: path, query: q, body: body}, out)
	return err
}

// exchange sends r and decodes a 2xx JSON answer into out (nil, or a 204
// answer: nothing is decoded); it returns the answer's status.
func (c *Client) exchange(ctx context.Context, r request, out any) (int, error) {
	resp, err := c.sendRequest(ctx, r)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", r.method, r.path, err)
	}
	return resp.StatusCode, nil
}

// send sends one request; a failure to connect is an ErrUnreachable.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	return c.sendRequest(ctx, request{method: method, path: path, query: q, body: body})
}

// sendRequest sends r with the session's bearer token. An answer 401, when
// the client holds a refresh token, renews the session once and sends r
// again with the new access token.
func (c *Client) sendRequest(ctx context.Context, r request) (*http.Response, error) {
	resp, used, err := c.sendOnce(ctx, r)
	if err != nil || r.public || resp.StatusCode != http.StatusUnauthorized || !c.canRefresh() {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if err := c.renew(ctx, used); err != nil {
		return nil, err
	}
	resp, _, err = c.sendOnce(ctx, r)
	return resp, err
}

// sendOnce sends r and returns the bearer token it carried.
func (c *Client) sendOnce(ctx context.Context, r request) (*http.Response, string, error) {
	req, err := c.newRequest(ctx, r.method, r.path, r.query, r.body)
	if err != nil {
		return nil, "", err
	}
	var bearer string
	if !r.public {
		bearer = c.bearer()
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, bearer, c.transportError(err)
	}
	return resp, bearer, nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Request, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// transportError turns a failure to connect into an ErrUnreachable that names
// the address; other errors (context cancelled, broken answer) pass through.
func (c *Client) transportError(err error) error {
	var de *dialError
	if errors.As(err, &de) {
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.addr, de.err)
	}
	return err
}

// decodeError reads an error answer: a problem+json body when there is one,
// else the status and the start of the body.
func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &APIError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	if json.Unmarshal(data, &ae.Problem) == nil && (ae.Problem.Title != "" || ae.Problem.Detail != "" || len(ae.Problem.Errors) > 0) {
		if ae.Problem.Status == 0 {
			ae.Problem.Status = resp.StatusCode
		}
		return ae
	}
	text := strings.TrimSpace(string(data))
	if len(text) > maxErrorBody {
		text = text[:maxErrorBody]
	}
	ae.Problem = api.Problem{Title: http.StatusText(resp.StatusCode), Status: resp.StatusCode, Detail: text}
	return ae
}

// retryAfter reads a Retry-After header: delay-seconds, or an HTTP date
// counted from the answer's Date header (the server's clock, not ours).
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	now, err := http.ParseTime(h.Get("Date"))
	if err != nil || !at.After(now) {
		return 0
	}
	return at.Sub(now)
}
