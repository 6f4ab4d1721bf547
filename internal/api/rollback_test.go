package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client/clienttest"
)

func revisionsOf(t *testing.T, d *clienttest.Daemon, path string) []api.RevisionItem {
	t.Helper()
	code, _, b := call(t, d, http.MethodGet, path+"/revisions", "")
	var revs []api.RevisionItem
	if err := json.Unmarshal(b, &revs); code != http.StatusOK || err != nil {
		t.Fatalf("revisions: %d %s (%v)", code, b, err)
	}
	return revs
}

func TestRollback(t *testing.T) {
	d := clienttest.Start(t)
	const labels = `,"labels":{"plan":"gold"}`
	for _, name := range []string{"Acme", "Acme Ltd"} {
		if code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, labels, name)); code >= 300 {
			t.Fatalf("apply %s: %d %s", name, code, b)
		}
	}

	code, _, b := call(t, d, http.MethodPost, "/api/v1/tenants/acme/rollback", `{"revision":1}`)
	r := applyResp(t, b)
	if code != http.StatusOK || r.Outcome != api.OutcomeConfigured || r.DryRun {
		t.Fatalf("rollback: %d %s", code, b)
	}
	want := []api.Change{{Path: "spec.displayName", Old: json.RawMessage(`"Acme Ltd"`), New: json.RawMessage(`"Acme"`)}}
	if diff := cmp.Diff(want, r.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if gen := generation(t, r.Object); gen != 3 {
		t.Errorf("generation %d after the rollback, want 3", gen)
	}
	if !bytes.Contains(r.Object, []byte(`"labels":{"plan":"gold"}`)) {
		t.Errorf("the rollback dropped the labels: %s", r.Object)
	}
	revs := revisionsOf(t, d, "/api/v1/tenants/acme")
	if len(revs) != 3 || revs[2].Number != 3 || revs[2].Actor != "root@unix (rollback to 1)" ||
		!bytes.Equal(revs[2].Spec, revs[0].Spec) {
		t.Fatalf("revisions after the rollback: %+v", revs)
	}

	// The current spec again: unchanged, no new generation or revision.
	code, _, b = call(t, d, http.MethodPost, "/api/v1/tenants/acme/rollback", `{"revision":3,"resourceVersion":3}`)
	if r = applyResp(t, b); code != http.StatusOK || r.Outcome != api.OutcomeUnchanged || len(r.Changes) != 0 || generation(t, r.Object) != 3 {
		t.Errorf("rollback to the current spec: %d %s", code, b)
	}

	// A dry run answers the change and writes nothing.
	code, _, b = call(t, d, http.MethodPost, "/api/v1/tenants/acme/rollback?dryRun=true", `{"revision":2}`)
	if r = applyResp(t, b); code != http.StatusOK || !r.DryRun || r.Outcome != api.OutcomeConfigured || len(r.Changes) != 1 {
		t.Errorf("dry run: %d %s", code, b)
	}
	if revs := revisionsOf(t, d, "/api/v1/tenants/acme"); len(revs) != 3 {
		t.Errorf("a dry run recorded a revision: %+v", revs)
	}
}

func TestRollbackErrorsNameTheField(t *testing.T) {
	d := clienttest.Start(t)
	domain := func(name, alias string) string {
		return `{"apiVersion":"wcp360.io/v1alpha1","kind":"Domain","metadata":{"name":"` + name + `"},"spec":{"tenant":"acme",` +
			`"aliases":[` + alias + `],"php":{"version":"8.2"},"http2":false,"tls":{"mode":"selfsigned"},` +
			`"redirects":[{"from":"/old","to":"/new","code":308}]}}`
	}
	for _, step := range []struct{ path, body string }{
		{"/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme")},
		{"/api/v1/tenants/gone", strings.Replace(jsonf(tenantJSON, "", "Gone"), `"acme"`, `"gone"`, 1)},
		{"/api/v1/domains/one.test", domain("one.test", `"www.one.test"`)},
		{"/api/v1/domains/one.test", domain("one.test", "")},
		{"/api/v1/domains/two.test", domain("two.test", `"www.one.test"`)},
	} {
		if code, _, b := call(t, d, http.MethodPut, step.path, step.body); code >= 300 {
			t.Fatalf("apply %s: %d %s", step.path, code, b)
		}
	}
	if code, _, b := call(t, d, http.MethodDelete, "/api/v1/tenants/gone", ""); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, b)
	}
	// A revision stored under rules that have changed since.
	if _, err := d.Store.Pool().Exec(t.Context(), `INSERT INTO revisions (kind, resource_uid, name, number, generation, spec)
		SELECT 'Tenant', uid, name, 2, 2, '{"colour":"red"}' FROM tenants WHERE name = 'acme'`); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, body string
		code             int
		field            string
	}{
		{"missing revision", "/api/v1/tenants/acme/rollback", `{"revision":9}`, 404, "revision"},
		{"revision zero", "/api/v1/tenants/acme/rollback", `{"revision":0}`, 422, "revision"},
		{"revision not a number", "/api/v1/tenants/acme/rollback", `{"revision":"1"}`, 422, "revision"},
		{"no revision", "/api/v1/tenants/acme/rollback", `{}`, 422, "revision"},
		{"unknown field", "/api/v1/tenants/acme/rollback", `{"colour":"red","revision":1}`, 422, "colour"},
		{"not JSON", "/api/v1/tenants/acme/rollback", `revision=1`, 400, ""},
		{"stale resourceVersion", "/api/v1/tenants/acme/rollback", `{"revision":1,"resourceVersion":99}`, 409, "metadata.resourceVersion"},
		{"missing resource", "/api/v1/tenants/nobody/rollback", `{"revision":1}`, 404, "metadata.name"},
		{"unknown kind", "/api/v1/widgets/acme/rollback", `{"revision":1}`, 404, ""},
		{"terminating", "/api/v1/tenants/gone/rollback", `{"revision":1}`, 409, "metadata.name"},
		{"duplicate hostname", "/api/v1/domains/one.test/rollback", `{"revision":1}`, 409, "spec.aliases[0]"},
		{"revision invalid now", "/api/v1/tenants/acme/rollback", `{"revision":2}`, 422, "spec.colour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, b := call(t, d, http.MethodPost, tc.path, tc.body)
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
	if revs := revisionsOf(t, d, "/api/v1/domains/one.test"); len(revs) != 2 {
		t.Errorf("a refused rollback recorded a revision: %+v", revs)
	}

	// Once two.test lets the alias go, the same rollback restores the whole
	// old spec, which decodes and validates as it did when it was applied.
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/domains/two.test", domain("two.test", "")); code != http.StatusOK {
		t.Fatalf("apply: %d %s", code, b)
	}
	code, _, b := call(t, d, http.MethodPost, "/api/v1/domains/one.test/rollback", `{"revision":1}`)
	r := applyResp(t, b)
	if code != http.StatusOK || len(r.Changes) != 1 || r.Changes[0].Path != "spec.aliases" || generation(t, r.Object) != 3 {
		t.Fatalf("rollback: %d %s", code, b)
	}
	revs := revisionsOf(t, d, "/api/v1/domains/one.test")
	if len(revs) != 3 || string(revs[2].Spec) != string(revs[0].Spec) {
		t.Errorf("the restored spec differs from revision 1: %+v", revs)
	}
}

func TestOpenAPIHasRollback(t *testing.T) {
	doc := api.OpenAPI("test")
	paths, _ := doc["paths"].(map[string]any)
	item, _ := paths["/api/v1/domains/{name}/rollback"].(map[string]any)
	if _, ok := item["post"]; !ok {
		t.Fatalf("openapi lacks POST /api/v1/domains/{name}/rollback: %v", item)
	}
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	rb, _ := schemas["RollbackRequest"].(map[string]any)
	if diff := cmp.Diff([]string{"revision"}, rb["required"]); diff != "" {
		t.Errorf("RollbackRequest required (-want +got):\n%s", diff)
	}
}
