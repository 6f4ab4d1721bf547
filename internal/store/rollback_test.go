package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

// fromSpec is the Prepare of these tests: it derives from the revision's
// spec what the API derives (the tenant and, for a Domain, the hostnames) as
// domainReq writes them.
func fromSpec(_ store.Resource, rev store.Revision) (store.ApplyRequest, error) {
	var spec struct {
		Tenant     string   `json:"tenant"`
		ServerName string   `json:"serverName"`
		Aliases    []string `json:"aliases"`
	}
	if err := json.Unmarshal(rev.Spec, &spec); err != nil {
		return store.ApplyRequest{}, err
	}
	req := store.ApplyRequest{Spec: rev.Spec, Tenant: spec.Tenant}
	if spec.ServerName != "" {
		req.Hostnames = append([]string{spec.ServerName}, spec.Aliases...)
	}
	return req, nil
}

func rollbackReq(kind v1alpha1.Kind, name string, revision int64) store.RollbackRequest {
	return store.RollbackRequest{Kind: kind, Name: name, Revision: revision, Actor: "root@unix", Prepare: fromSpec}
}

type revSummary struct {
	Number, Generation int64
	Spec, Actor        string
}

func revisions(t *testing.T, s *store.Store, kind v1alpha1.Kind, name string) []revSummary {
	t.Helper()
	revs, err := s.Revisions(context.Background(), kind, name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]revSummary, 0, len(revs))
	for _, r := range revs {
		out = append(out, revSummary{r.Number, r.Generation, string(r.Spec), r.Actor})
	}
	return out
}

func TestRollbackIsANewGeneration(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	for _, spec := range []string{`{"v": 1}`, `{"v": 2}`, `{"v": 3}`} {
		req := tenantReq("acme", spec)
		req.Labels = map[string]string{"plan": "gold"}
		apply(t, s, req)
	}
	l := listen(t, url)

	res, err := s.Rollback(ctx, rollbackReq(v1alpha1.KindTenant, "acme", 1))
	if err != nil {
		t.Fatal(err)
	}
	if !res.SpecChanged || res.MetaChanged || res.Created || string(res.PreviousSpec) != `{"v": 3}` {
		t.Errorf("result = %+v, want a spec change from {\"v\": 3}", res)
	}
	r := res.Resource
	if r.Generation != 4 || r.ResourceVersion != 4 || string(r.Spec) != `{"v": 1}` || r.Node != "node1" ||
		!cmp.Equal(r.Labels, map[string]string{"plan": "gold"}) {
		t.Errorf("rolled back row = %+v; want generation 4, spec v=1, labels and node kept", r)
	}
	if diff := cmp.Diff(r, get(t, s, v1alpha1.KindTenant, "acme")); diff != "" {
		t.Errorf("the result is not what is stored (-result +stored):\n%s", diff)
	}
	l.expect(t, "Tenant/acme")
	want := []revSummary{
		{1, 1, `{"v": 1}`, "test"}, {2, 2, `{"v": 2}`, "test"}, {3, 3, `{"v": 3}`, "test"},
		{4, 4, `{"v": 1}`, "root@unix (rollback to 1)"},
	}
	if diff := cmp.Diff(want, revisions(t, s, v1alpha1.KindTenant, "acme")); diff != "" {
		t.Errorf("revisions (-want +got):\n%s", diff)
	}

	// Back to a revision whose spec is the current one: nothing is written.
	for _, n := range []int64{1, 4} {
		res, err = s.Rollback(ctx, rollbackReq(v1alpha1.KindTenant, "acme", n))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Unchanged() || res.Resource.Generation != 4 || res.Resource.ResourceVersion != 4 {
			t.Errorf("rollback to %d, the current spec: %+v, want unchanged at generation 4", n, res)
		}
	}
	if got := revisions(t, s, v1alpha1.KindTenant, "acme"); len(got) != 4 {
		t.Errorf("an unchanged rollback recorded a revision: %+v", got)
	}
	l.nothingBefore(t, s, 1)

	// A dry run answers what would be and writes nothing.
	dry := rollbackReq(v1alpha1.KindTenant, "acme", 2)
	dry.DryRun = true
	res, err = s.Rollback(ctx, dry)
	if err != nil || !res.SpecChanged || res.Resource.Generation != 5 || string(res.Resource.Spec) != `{"v": 2}` {
		t.Fatalf("dry run = %+v, %v; want generation 5 with v=2", res, err)
	}
	if r := get(t, s, v1alpha1.KindTenant, "acme"); r.Generation != 4 || string(r.Spec) != `{"v": 1}` {
		t.Errorf("a dry run wrote: %+v", r)
	}
	if got := revisions(t, s, v1alpha1.KindTenant, "acme"); len(got) != 4 {
		t.Errorf("a dry run recorded a revision: %+v", got)
	}
	l.nothingBefore(t, s, 2)
}

func TestRollbackRefusals(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"v": 1}`))
	apply(t, s, tenantReq("acme", `{"v": 2}`))
	apply(t, s, tenantReq("gone", `{}`))
	if _, err := s.Delete(ctx, v1alpha1.KindTenant, "gone", 0); err != nil {
		t.Fatal(err)
	}
	prepareFailed := errors.New("spec no longer valid")

	for _, tc := range []struct {
		name     string
		req      store.RollbackRequest
		sentinel error
		field    string
	}{
		{"missing revision", rollbackReq(v1alpha1.KindTenant, "acme", 3), store.ErrNotFound, "revision"},
		{"revision zero", rollbackReq(v1alpha1.KindTenant, "acme", 0), store.ErrNotFound, "revision"},
		{"missing resource", rollbackReq(v1alpha1.KindTenant, "nobody", 1), store.ErrNotFound, "metadata.name"},
		{"unknown kind", rollbackReq("Widget", "acme", 1), store.ErrNotFound, "kind"},
		{"terminating", rollbackReq(v1alpha1.KindTenant, "gone", 1), store.ErrTerminating, "metadata.name"},
		{"stale resourceVersion", func() store.RollbackRequest {
			r := rollbackReq(v1alpha1.KindTenant, "acme", 1)
			r.ResourceVersion = 1 // it is 2
			return r
		}(), store.ErrConflict, "metadata.resourceVersion"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Rollback(ctx, tc.req)
			wantFieldError(t, err, tc.sentinel, tc.field)
		})
	}

	_, err := s.Rollback(ctx, store.RollbackRequest{Kind: v1alpha1.KindTenant, Name: "acme", Revision: 1,
		Prepare: func(store.Resource, store.Revision) (store.ApplyRequest, error) {
			return store.ApplyRequest{}, prepareFailed
		}})
	if !errors.Is(err, prepareFailed) {
		t.Errorf("a Prepare error came back as %v", err)
	}

	current := rollbackReq(v1alpha1.KindTenant, "acme", 1)
	current.ResourceVersion = 2
	if res, err := s.Rollback(ctx, current); err != nil || res.Resource.Generation != 3 {
		t.Errorf("rollback at the current resourceVersion = %+v, %v; want generation 3", res, err)
	}
	if r := get(t, s, v1alpha1.KindTenant, "gone"); r.Generation != 1 {
		t.Errorf("the terminating tenant changed: %+v", r)
	}
}

// A Domain's old spec names a hostname another Domain serves now: refused
// as any apply would be, naming the field, and nothing is written.
func TestRollbackDuplicateHostname(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))
	apply(t, s, domainReq("a", "acme", "a.test", "www.a.test"))
	apply(t, s, domainReq("a", "acme", "a.test"))
	apply(t, s, domainReq("b", "acme", "b.test", "www.a.test"))
	before := get(t, s, v1alpha1.KindDomain, "a")

	_, err := s.Rollback(ctx, rollbackReq(v1alpha1.KindDomain, "a", 1))
	fe := wantFieldError(t, err, store.ErrDuplicate, "spec.aliases[0]")
	if fe.Value != "www.a.test" {
		t.Errorf("value = %q, want www.a.test", fe.Value)
	}
	if diff := cmp.Diff(before, get(t, s, v1alpha1.KindDomain, "a")); diff != "" {
		t.Errorf("a refused rollback changed the domain (-before +after):\n%s", diff)
	}
	if got := revisions(t, s, v1alpha1.KindDomain, "a"); len(got) != 2 {
		t.Errorf("a refused rollback recorded a revision: %+v", got)
	}
	if n := count(t, s, `SELECT count(*) FROM domain_hostnames h JOIN domains d ON d.id = h.domain_id
		WHERE d.name = 'a'`); n != 1 {
		t.Errorf("domain a has %d hostnames, want 1 (a.test)", n)
	}

	// Once b lets the hostname go, the same rollback goes through.
	apply(t, s, domainReq("b", "acme", "b.test"))
	res, err := s.Rollback(ctx, rollbackReq(v1alpha1.KindDomain, "a", 1))
	if err != nil || res.Resource.Generation != 3 {
		t.Fatalf("rollback = %+v, %v; want generation 3", res, err)
	}
	if n := count(t, s, `SELECT count(*) FROM domain_hostnames WHERE hostname = 'www.a.test' AND domain_id =
		(SELECT id FROM domains WHERE name = 'a')`); n != 1 {
		t.Errorf("www.a.test is not served by domain a after the rollback")
	}
}

// The revision is read before the row is locked; a row deleted and
// re-created in between (by another transaction, here from inside Prepare)
// is refused rather than given the old row's spec.
func TestRollbackRowReplacedConcurrently(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"v": 1}`))
	apply(t, s, tenantReq("acme", `{"v": 2}`))

	req := rollbackReq(v1alpha1.KindTenant, "acme", 1)
	req.Prepare = func(cur store.Resource, rev store.Revision) (store.ApplyRequest, error) {
		if _, err := s.Delete(ctx, v1alpha1.KindTenant, "acme", 0); err != nil {
			return store.ApplyRequest{}, err
		}
		if err := s.Finalize(ctx, v1alpha1.KindTenant, "acme", cur.UID); err != nil {
			return store.ApplyRequest{}, err
		}
		if _, err := s.Apply(ctx, tenantReq("acme", `{"v": "new"}`)); err != nil {
			return store.ApplyRequest{}, err
		}
		return fromSpec(cur, rev)
	}
	_, err := s.Rollback(ctx, req)
	wantFieldError(t, err, store.ErrConflict, "metadata.uid")
	if r := get(t, s, v1alpha1.KindTenant, "acme"); r.Generation != 1 || string(r.Spec) != `{"v": "new"}` {
		t.Errorf("the re-created tenant was changed: %+v", r)
	}
}
