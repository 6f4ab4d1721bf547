package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// call sends one request to the API as root on the local socket (an
// admin) and returns status, content type and body.
func call(t *testing.T, d *clienttest.Daemon, method, path, body string) (int, string, []byte) {
	t.Helper()
	return callAs(t, d, "", method, path, body)
}

// callAs sends one request over TCP with the bearer token ("" for none).
// With no token and no TCP it goes over the local socket.
func callAs(t *testing.T, d *clienttest.Daemon, bearer, method, path, body string) (int, string, []byte) {
	t.Helper()
	client, base := unixClient(d.Socket), "http://wcpd"
	if bearer != "" || strings.HasPrefix(method, "TCP ") {
		client, base = http.DefaultClient, d.URL
		method = strings.TrimPrefix(method, "TCP ")
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
}

func problem(t *testing.T, ctype string, b []byte) api.Problem {
	t.Helper()
	if ctype != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ctype, b)
	}
	var p api.Problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	return p
}

func applyResp(t *testing.T, b []byte) api.ApplyResponse {
	t.Helper()
	var r api.ApplyResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("apply response %s: %v", b, err)
	}
	return r
}

const tenantJSON = `{"apiVersion":"wcp360.io/v1alpha1","kind":"Tenant","metadata":{"name":"acme"%s},"spec":{"displayName":"%s"}}`

func TestApplyIsIdempotentAndReportsChanges(t *testing.T) {
	d := clienttest.Start(t)

	code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme"))
	if code != http.StatusCreated || applyResp(t, b).Outcome != api.OutcomeCreated {
		t.Fatalf("first apply: %d %s", code, b)
	}
	code, _, b = call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme"))
	r := applyResp(t, b)
	if code != http.StatusOK || r.Outcome != api.OutcomeUnchanged || len(r.Changes) != 0 {
		t.Fatalf("identical apply: %d %+v", code, r)
	}
	if gen := generation(t, r.Object); gen != 1 {
		t.Fatalf("identical apply moved generation to %d", gen)
	}

	// A label change is a metadata change: listed, but no new generation.
	code, _, b = call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, `,"labels":{"plan":"gold"}`, "Acme"))
	r = applyResp(t, b)
	if code != http.StatusOK || r.Outcome != api.OutcomeConfigured {
		t.Fatalf("label apply: %d %s", code, b)
	}
	if len(r.Changes) != 1 || r.Changes[0].Path != "metadata.labels.plan" || string(r.Changes[0].New) != `"gold"` {
		t.Errorf("label apply changes = %+v, want metadata.labels.plan → gold", r.Changes)
	}
	if gen := generation(t, r.Object); gen != 1 {
		t.Errorf("a label change moved generation to %d", gen)
	}

	// A spec change bumps generation and records a revision.
	_, _, b = call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, `,"labels":{"plan":"gold"}`, "Acme Ltd"))
	r = applyResp(t, b)
	if len(r.Changes) != 1 || r.Changes[0].Path != "spec.displayName" {
		t.Errorf("spec apply changes = %+v", r.Changes)
	}
	if gen := generation(t, r.Object); gen != 2 {
		t.Errorf("spec change: generation %d, want 2", gen)
	}
	code, _, b = call(t, d, http.MethodGet, "/api/v1/tenants/acme/revisions", "")
	var revs []api.RevisionItem
	if err := json.Unmarshal(b, &revs); code != http.StatusOK || err != nil || len(revs) != 2 {
		t.Fatalf("revisions: %d %s (%v)", code, b, err)
	}

	// Dry run: the answer shows the change, the store keeps the old spec.
	_, _, b = call(t, d, http.MethodPut, "/api/v1/tenants/acme?dryRun=true", jsonf(tenantJSON, `,"labels":{"plan":"gold"}`, "Other"))
	if r = applyResp(t, b); !r.DryRun || len(r.Changes) != 1 {
		t.Errorf("dry run answer %+v", r)
	}
	_, _, b = call(t, d, http.MethodGet, "/api/v1/tenants/acme", "")
	if !bytes.Contains(b, []byte(`"Acme Ltd"`)) {
		t.Errorf("dry run wrote the spec: %s", b)
	}
}

func TestErrorsNameTheField(t *testing.T) {
	d := clienttest.Start(t)
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, b)
	}
	domain := func(name, tenant, alias string) string {
		return `{"apiVersion":"wcp360.io/v1alpha1","kind":"Domain","metadata":{"name":"` + name +
			`"},"spec":{"tenant":"` + tenant + `","aliases":["` + alias + `"]}}`
	}
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/domains/one.test", domain("one.test", "acme", "www.one.test")); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, b)
	}

	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"unknown field", http.MethodPut, "/api/v1/tenants/acme", `{"apiVersion":"wcp360.io/v1alpha1","kind":"Tenant","metadata":{"name":"acme"},"spec":{"colour":"red"}}`, 422, "spec.colour"},
		{"bad name", http.MethodPut, "/api/v1/tenants/root", strings.Replace(jsonf(tenantJSON, "", "x"), `"acme"`, `"root"`, 1), 422, "metadata.name"},
		{"name mismatch", http.MethodPut, "/api/v1/tenants/other", jsonf(tenantJSON, "", "x"), 400, "metadata.name"},
		{"missing tenant", http.MethodPut, "/api/v1/domains/two.test", domain("two.test", "ghost", "www.two.test"), 422, "spec.tenant"},
		{"duplicate hostname", http.MethodPut, "/api/v1/domains/two.test", domain("two.test", "acme", "www.one.test"), 409, "spec.aliases[0]"},
		{"tenant is immutable", http.MethodPut, "/api/v1/domains/one.test", domain("one.test", "other", "www.one.test"), 422, "spec.tenant"},
		{"stale resourceVersion", http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, `,"resourceVersion":99`, "New"), 409, "metadata.resourceVersion"},
		{"not found", http.MethodGet, "/api/v1/tenants/nobody", "", 404, ""},
		{"unknown kind", http.MethodGet, "/api/v1/widgets", "", 404, ""},
		{"no route", http.MethodPost, "/api/v1/tenants/acme", "{}", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, b := call(t, d, tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, b)
			}
			p := problem(t, ctype, b)
			if p.Status != code || p.Title == "" || p.Detail == "" {
				t.Errorf("problem %+v", p)
			}
			if tc.field == "" {
				return
			}
			if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Fatalf("problem errors %+v do not name %s", p.Errors, tc.field)
			}
			if strings.HasPrefix(p.Errors[0].Message, tc.field) {
				t.Errorf("message repeats the field name: %q", p.Errors[0].Message)
			}
		})
	}

	// Nothing was half-written: the domain kept its tenant, the tenant its spec.
	_, _, b := call(t, d, http.MethodGet, "/api/v1/domains/one.test", "")
	if !bytes.Contains(b, []byte(`"tenant":"acme"`)) {
		t.Errorf("domain changed by a refused apply: %s", b)
	}
	if code, _, _ := call(t, d, http.MethodGet, "/api/v1/domains/two.test", ""); code != http.StatusNotFound {
		t.Errorf("refused domain exists: %d", code)
	}
}

func TestDeleteAndOpenAPI(t *testing.T) {
	d := clienttest.Start(t)
	call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme"))
	code, _, b := call(t, d, http.MethodDelete, "/api/v1/tenants/acme", "")
	if code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, b)
	}
	_, _, b = call(t, d, http.MethodGet, "/api/v1/tenants/acme", "")
	if !bytes.Contains(b, []byte(`"deletionTimestamp"`)) {
		t.Errorf("deleted tenant has no deletionTimestamp: %s", b)
	}
	code, _, b = call(t, d, http.MethodGet, "/api/v1/tenants/acme/events", "")
	if code != http.StatusOK {
		t.Errorf("events: %d %s", code, b)
	}

	// The document is public: over TCP, without a token.
	code, ctype, b := callAs(t, d, "", "TCP GET", "/openapi.json", "")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("openapi: %d %s", code, ctype)
	}
	var doc struct {
		OpenAPI    string                     `json:"openapi"`
		Paths      map[string]json.RawMessage `json:"paths"`
		Security   []map[string][]string      `json:"security"`
		Components struct {
			Schemas         map[string]json.RawMessage `json:"schemas"`
			SecuritySchemes map[string]struct {
				Type   string `json:"type"`
				Scheme string `json:"scheme"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s.Type != "http" || s.Scheme != "bearer" ||
		len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("OpenAPI security: %+v %+v, want the bearer scheme required by default", doc.Components.SecuritySchemes, doc.Security)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	for _, p := range []string{"/api/v1/tenants", "/api/v1/domains/{name}", "/api/v1/databases/{name}/events", "/metrics"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("openapi lacks path %s", p)
		}
	}
	if _, ok := doc.Components.Schemas["Tenant"]; !ok {
		t.Errorf("openapi lacks the Tenant schema; has %d schemas", len(doc.Components.Schemas))
	}
}

func TestMetrics(t *testing.T) {
	d := clienttest.StartWith(t, clienttest.Options{Metrics: func(w io.Writer) error {
		_, err := io.WriteString(w, "# TYPE wcp360_nginx_reloads_total counter\nwcp360_nginx_reloads_total 2\n")
		return err
	}})
	code, ctype, b := call(t, d, http.MethodGet, "/metrics", "")
	if code != http.StatusOK || ctype != metrics.ContentType || !bytes.HasSuffix(b, []byte("\nwcp360_nginx_reloads_total 2\n")) {
		t.Errorf("GET /metrics: %d %q %s", code, ctype, b)
	}
	bare := clienttest.Start(t)
	code, ctype, b = call(t, bare, http.MethodGet, "/metrics", "")
	if p := problem(t, ctype, b); code != http.StatusNotImplemented || p.Title != "No metrics" {
		t.Errorf("GET /metrics without metrics: %d %+v", code, p)
	}
	failing := clienttest.StartWith(t, clienttest.Options{Metrics: func(io.Writer) error { return errors.New("broken counter") }})
	code, ctype, b = call(t, failing, http.MethodGet, "/metrics", "")
	if p := problem(t, ctype, b); code != http.StatusInternalServerError || !strings.Contains(p.Detail, "broken counter") {
		t.Errorf("GET /metrics failing: %d %+v", code, p)
	}
}

func jsonf(format string, args ...any) string {
	return fmt.Sprintf(format, args...)
}

func generation(t *testing.T, obj json.RawMessage) int64 {
	t.Helper()
	var o struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		t.Fatal(err)
	}
	return o.Metadata.Generation
}
