package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client/clienttest"
	"github.com/wcp360/wcp360/internal/host"
)

// homeObserver is a small real Observer: a tenant's home is dir/<name>, a
// directory of mode 0750. (The server checks that the resource exists.)
type homeObserver struct{ dir string }

func (o *homeObserver) Observe(_ context.Context, kind v1alpha1.Kind, name string) ([]host.Difference, error) {
	if kind != v1alpha1.KindTenant {
		return nil, fmt.Errorf("%w: no host steps for %s", api.ErrNotObserved, kind)
	}
	fi, err := os.Stat(filepath.Join(o.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []host.Difference{{Field: "home", Want: "present", Have: "absent"}}, nil
	case err != nil:
		return nil, err
	case fi.Mode().Perm() != 0o750:
		return []host.Difference{{Field: "home mode", Want: "0750", Have: fmt.Sprintf("%04o", fi.Mode().Perm())}}, nil
	}
	return nil, nil
}

// startObserved starts a daemon whose Observer is a homeObserver over a
// fresh directory, which it returns.
func startObserved(t *testing.T) (*clienttest.Daemon, string) {
	t.Helper()
	dir := t.TempDir()
	return clienttest.StartWith(t, clienttest.Options{Observer: &homeObserver{dir: dir}}), dir
}

func driftReport(t *testing.T, code int, b []byte) api.DriftReport {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("drift: %d %s", code, b)
	}
	var rep api.DriftReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("drift answer %s: %v", b, err)
	}
	return rep
}

func TestDriftIsObservedLive(t *testing.T) {
	d, dir := startObserved(t)
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme")); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, b)
	}
	home := filepath.Join(dir, "acme")
	for _, tc := range []struct {
		name  string
		setup func() error
		want  []api.Difference
	}{
		{"no home", func() error { return nil }, []api.Difference{{Field: "home", Want: "present", Have: "absent"}}},
		{"in sync", func() error { return os.Mkdir(home, 0o750) }, []api.Difference{}},
		{"mode changed by hand", func() error { return os.Chmod(home, 0o777) },
			[]api.Difference{{Field: "home mode", Want: "0750", Have: "0777"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.setup(); err != nil {
				t.Fatal(err)
			}
			before := time.Now().Add(-time.Second)
			code, ctype, b := call(t, d, http.MethodGet, "/api/v1/tenants/acme/drift", "")
			if !strings.HasPrefix(ctype, "application/json") {
				t.Errorf("Content-Type %q", ctype)
			}
			rep := driftReport(t, code, b)
			if diff := cmp.Diff(tc.want, rep.Differences); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
			if rep.ObservedAt.Before(before) || rep.ObservedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("observedAt %v is not now", rep.ObservedAt)
			}
			if len(tc.want) == 0 && !strings.Contains(string(b), `"differences":[]`) {
				t.Errorf("in sync is not an empty list: %s", b)
			}
		})
	}
	// Looking changed nothing.
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("home after observing: %v, %v", fi, err)
	}
}

func TestDriftAndReconcileErrors(t *testing.T) {
	d, _ := startObserved(t)
	bare := clienttest.StartWith(t, clienttest.Options{NoControllers: true})
	for _, dd := range []*clienttest.Daemon{d, bare} {
		if code, _, b := call(t, dd, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme")); code != http.StatusCreated {
			t.Fatalf("apply: %d %s", code, b)
		}
	}
	elsewhere := `{"apiVersion":"wcp360.io/v1alpha1","kind":"Tenant","metadata":{"name":"far"},"spec":{"node":"elsewhere"}}`
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/far", elsewhere); code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, b)
	}
	domain := `{"apiVersion":"wcp360.io/v1alpha1","kind":"Domain","metadata":{"name":"acme.test"},"spec":{"tenant":"acme"}}`
	if code, _, b := call(t, d, http.MethodPut, "/api/v1/domains/acme.test", domain); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, b)
	}

	for _, tc := range []struct {
		name, method, path string
		d                  *clienttest.Daemon
		code               int
		detail             string
	}{
		{"drift of a missing tenant", http.MethodGet, "/api/v1/tenants/nobody/drift", d, 404, `Tenant "nobody" not found`},
		{"reconcile of a missing tenant", http.MethodPost, "/api/v1/tenants/nobody/reconcile", d, 404, `Tenant "nobody" not found`},
		{"drift of an unknown kind", http.MethodGet, "/api/v1/widgets/acme/drift", d, 404, "unknown resource type"},
		{"drift of a kind without host steps", http.MethodGet, "/api/v1/domains/acme.test/drift", d, 501, "no host steps for Domain"},
		{"drift on another node", http.MethodGet, "/api/v1/tenants/far/drift", d, 409, "lives on node elsewhere"},
		{"reconcile on another node", http.MethodPost, "/api/v1/tenants/far/reconcile", d, 409, "lives on node elsewhere"},
		{"drift without an observer", http.MethodGet, "/api/v1/tenants/acme/drift", bare, 501, "this daemon does not observe the host"},
		{"reconcile without controllers", http.MethodPost, "/api/v1/tenants/acme/reconcile", bare, 501, "runs no controllers"},
		{"drift is read-only", http.MethodPost, "/api/v1/tenants/acme/drift", d, 404, "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, b := call(t, tc.d, tc.method, tc.path, "")
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, b)
			}
			if p := problem(t, ctype, b); p.Status != code || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("problem %+v, want its detail to contain %q", p, tc.detail)
			}
		})
	}
	if got := d.Enqueued(); len(got) != 0 {
		t.Errorf("refused reconciles were enqueued: %v", got)
	}
}

func TestReconcileEnqueues(t *testing.T) {
	d := clienttest.Start(t)
	code, _, b := call(t, d, http.MethodPut, "/api/v1/tenants/acme", jsonf(tenantJSON, "", "Acme"))
	if code != http.StatusCreated {
		t.Fatalf("apply: %d %s", code, b)
	}
	before := time.Now().Add(-time.Second)
	code, ctype, b := call(t, d, http.MethodPost, "/api/v1/tenants/acme/reconcile", "")
	if code != http.StatusAccepted || !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("reconcile: %d %s %s", code, ctype, b)
	}
	var resp api.ReconcileResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatalf("reconcile answer %s: %v", b, err)
	}
	if resp.RequestedAt.Before(before) || generation(t, resp.Object) != 1 {
		t.Errorf("reconcile answer %s: want requestedAt now and the object at generation 1", b)
	}
	want := []clienttest.Key{{Kind: v1alpha1.KindTenant, Name: "acme"}}
	if diff := cmp.Diff(want, d.Enqueued()); diff != "" {
		t.Errorf("enqueued (-want +got):\n%s", diff)
	}
	// Asking changes nothing stored: no new generation, no revision.
	code, _, b = call(t, d, http.MethodGet, "/api/v1/tenants/acme/revisions", "")
	var revs []api.RevisionItem
	if err := json.Unmarshal(b, &revs); code != http.StatusOK || err != nil || len(revs) != 1 {
		t.Errorf("revisions after a reconcile: %d %s (%v)", code, b, err)
	}
}

func TestOpenAPIDriftAndReconcile(t *testing.T) {
	doc := api.OpenAPI("test")
	paths := doc["paths"].(map[string]any)
	for _, tc := range []struct{ path, method, code, schema string }{
		{"/api/v1/tenants/{name}/drift", "get", "200", "DriftReport"},
		{"/api/v1/domains/{name}/reconcile", "post", "202", "ReconcileResponse"},
		{"/api/v1/databases/{name}", "delete", "202", "Database"},
	} {
		p, ok := paths[tc.path].(map[string]any)
		if !ok {
			t.Errorf("no path %s", tc.path)
			continue
		}
		o, ok := p[tc.method].(map[string]any)
		if !ok {
			t.Errorf("no %s %s", tc.method, tc.path)
			continue
		}
		b, err := json.Marshal(o["responses"])
		if err != nil {
			t.Fatal(err)
		}
		var rs map[string]struct {
			Content map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				} `json:"schema"`
			} `json:"content"`
		}
		if err := json.Unmarshal(b, &rs); err != nil {
			t.Fatal(err)
		}
		if got := rs[tc.code].Content["application/json"].Schema.Ref; got != "#/components/schemas/"+tc.schema {
			t.Errorf("%s %s answers %s with %q, want %s", tc.method, tc.path, tc.code, got, tc.schema)
		}
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, name := range []string{"DriftReport", "ReconcileResponse"} {
		if _, ok := schemas[name]; !ok {
			t.Errorf("no schema %s", name)
		}
	}
}
