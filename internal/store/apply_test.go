package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestApplyCreateUpdateUnchanged(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	created := apply(t, s, tenantReq("acme", `{"quota": {"bytes": 10}, "php": "8.3"}`))
	if !created.Created || !created.SpecChanged || created.MetaChanged || created.Unchanged() {
		t.Fatalf("create result = %+v", created)
	}
	r := created.Resource
	if r.Generation != 1 || r.ResourceVersion != 1 || r.ObservedGeneration != 0 || r.UID == "" ||
		r.Tenant != "acme" || r.Node != "node1" || r.DeletionRequestedAt != nil || r.CreatedAt.IsZero() {
		t.Fatalf("created resource = %+v", r)
	}

	// The same spec, written differently: jsonb compares equal, nothing is written.
	same := apply(t, s, tenantReq("acme", `{"php":"8.3","quota":{"bytes":10}}`))
	if !same.Unchanged() {
		t.Fatalf("identical apply = %+v, want Unchanged", same)
	}
	if diff := cmp.Diff(r, same.Resource); diff != "" {
		t.Fatalf("identical apply changed the row (-before +after):\n%s", diff)
	}

	updated := apply(t, s, tenantReq("acme", `{"php":"8.4","quota":{"bytes":10}}`))
	if updated.Created || !updated.SpecChanged || updated.MetaChanged {
		t.Fatalf("update result = %+v", updated)
	}
	if updated.Resource.Generation != 2 || updated.Resource.ResourceVersion != 2 || updated.Resource.UID != r.UID {
		t.Fatalf("updated resource = %+v", updated.Resource)
	}
	if diff := cmp.Diff(`{"php": "8.3", "quota": {"bytes": 10}}`, string(updated.PreviousSpec)); diff != "" {
		t.Fatalf("PreviousSpec (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(updated.Resource, get(t, s, v1alpha1.KindTenant, "acme")); diff != "" {
		t.Fatalf("Get differs from the apply result (-apply +get):\n%s", diff)
	}
	revs, err := s.Revisions(ctx, v1alpha1.KindTenant, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 2 {
		t.Fatalf("revisions = %d, want 2 (an identical apply records none)", len(revs))
	}
}

func TestApplyLabelsBumpResourceVersionNotGeneration(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	apply(t, s, tenantReq("acme", `{}`))

	req := tenantReq("acme", `{}`)
	req.Labels = map[string]string{"plan": "gold"}
	res := apply(t, s, req)
	if res.SpecChanged || !res.MetaChanged || res.Created {
		t.Fatalf("label change = %+v", res)
	}
	if res.Resource.Generation != 1 || res.Resource.ResourceVersion != 2 {
		t.Fatalf("generation/resourceVersion = %d/%d, want 1/2", res.Resource.Generation, res.Resource.ResourceVersion)
	}
	if diff := cmp.Diff(map[string]string{"plan": "gold"}, res.Resource.Labels); diff != "" {
		t.Fatalf("labels (-want +got):\n%s", diff)
	}

	req.Annotations = map[string]string{"note": "x"}
	res = apply(t, s, req)
	if res.Resource.Generation != 1 || res.Resource.ResourceVersion != 3 || !res.MetaChanged {
		t.Fatalf("annotation change = %+v", res)
	}
	if !apply(t, s, req).Unchanged() {
		t.Fatal("re-applying the same labels and annotations changed something")
	}
	revs, err := s.Revisions(context.Background(), v1alpha1.KindTenant, "acme")
	if err != nil || len(revs) != 1 {
		t.Fatalf("revisions = %d, %v; want 1", len(revs), err)
	}
}

func TestApplyStaleResourceVersion(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"v":1}`))
	apply(t, s, tenantReq("acme", `{"v":2}`)) // resourceVersion 2

	req := tenantReq("acme", `{"v":3}`)
	req.ResourceVersion = 1
	_, err := s.Apply(ctx, req)
	fe := wantFieldError(t, err, store.ErrConflict, "metadata.resourceVersion")
	if fe.Value != "1" {
		t.Errorf("value = %q", fe.Value)
	}

	req.ResourceVersion = 2
	if res := apply(t, s, req); res.Resource.Generation != 3 {
		t.Fatalf("apply with the current resourceVersion: %+v", res)
	}

	// A resourceVersion for something that does not exist is a conflict too.
	create := tenantReq("other", `{}`)
	create.ResourceVersion = 4
	_, err = s.Apply(ctx, create)
	wantFieldError(t, err, store.ErrConflict, "metadata.resourceVersion")
}

func TestApplyMissingTenant(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for _, req := range []store.ApplyRequest{domainReq("www", "ghost", "www.example.com"), databaseReq("db", "ghost", "ghost_db")} {
		_, err := s.Apply(ctx, req)
		fe := wantFieldError(t, err, store.ErrDependency, "spec.tenant")
		if fe.Value != "ghost" || !strings.Contains(fe.Error(), `"ghost" does not exist`) {
			t.Errorf("%s: %v (value %q)", req.Kind, fe, fe.Value)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM domain_hostnames`); n != 0 {
		t.Fatalf("hostnames left behind: %d", n)
	}
}

func TestApplyTenantIsImmutable(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	apply(t, s, tenantReq("a", `{}`))
	apply(t, s, tenantReq("b", `{}`))
	apply(t, s, domainReq("www", "a", "www.example.com"))

	_, err := s.Apply(context.Background(), domainReq("www", "b", "www.example.com"))
	fe := wantFieldError(t, err, store.ErrImmutable, "spec.tenant")
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("ErrImmutable should match ErrConflict too: %v", err)
	}
	if !strings.Contains(fe.Msg, `tenant "a"`) {
		t.Errorf("message does not name the current tenant: %v", fe)
	}
}

func TestApplyDuplicateHostname(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))
	apply(t, s, domainReq("first", "acme", "first.example.com", "www.example.com"))

	tests := []struct {
		name  string
		hosts []string
		field string
		value string
	}{
		{"server name", []string{"first.example.com"}, "spec.serverName", "first.example.com"},
		{"alias", []string{"second.example.com", "ok.example.com", "www.example.com"}, "spec.aliases[1]", "www.example.com"},
		{"case-insensitive", []string{"WWW.Example.COM"}, "spec.serverName", "www.example.com"},
		{"twice in one domain", []string{"x.example.com", "x.example.com"}, "spec.aliases[0]", "x.example.com"},
	}
	for _, tc := range tests {
		_, err := s.Apply(ctx, domainReq("second", "acme", tc.hosts...))
		fe := wantFieldError(t, err, store.ErrDuplicate, tc.field)
		if fe.Value != tc.value {
			t.Errorf("%s: value = %q, want %q", tc.name, fe.Value, tc.value)
		}
		if tc.name != "twice in one domain" && !strings.Contains(fe.Msg, `Domain "first"`) {
			t.Errorf("%s: message does not name the other domain: %v", tc.name, fe)
		}
	}
	if _, err := s.Get(ctx, v1alpha1.KindDomain, "second"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused create left a row: %v", err)
	}

	// Once first gives www up, second can have it; first keeps the rest.
	apply(t, s, domainReq("first", "acme", "first.example.com"))
	apply(t, s, domainReq("second", "acme", "second.example.com", "www.example.com"))
	rows, err := s.Pool().Query(ctx, `SELECT h.hostname || '=' || d.name FROM domain_hostnames h JOIN domains d ON d.id = h.domain_id ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	want := []string{"first.example.com=first", "second.example.com=second", "www.example.com=second"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("hostnames (-want +got):\n%s", diff)
	}
}

func TestApplyHostnameRace(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{}`))

	const racers = 20
	var wg sync.WaitGroup
	errs := make([]error, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			// Each racer has a hostname of its own and the contested one, in
			// different positions, to also exercise lock ordering.
			hosts := []string{fmt.Sprintf("own%d.example.com", i), "shared.example.com"}
			if i%2 == 0 {
				hosts[0], hosts[1] = hosts[1], hosts[0]
			}
			_, errs[i] = s.Apply(ctx, domainReq(fmt.Sprintf("d%02d", i), "acme", hosts...))
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrDuplicate):
			var fe *store.FieldError
			if !errors.As(err, &fe) || fe.Value != "shared.example.com" {
				t.Errorf("racer %d: %v", i, err)
			}
		default:
			t.Errorf("racer %d: unexpected error %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racers won, want exactly 1", wins)
	}
	if n := count(t, s, `SELECT count(*) FROM domains`); n != 1 {
		t.Fatalf("domains = %d, want 1", n)
	}
	if n := count(t, s, `SELECT count(*) FROM domain_hostnames`); n != 2 {
		t.Fatalf("hostnames = %d, want 2", n)
	}
}

func TestApplyDuplicateDatabaseName(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	apply(t, s, tenantReq("acme", `{}`))
	apply(t, s, databaseReq("shop", "acme", "acme_shop"))

	_, err := s.Apply(context.Background(), databaseReq("shop2", "acme", "acme_shop"))
	fe := wantFieldError(t, err, store.ErrDuplicate, "spec.databaseName")
	if fe.Value != "acme_shop" || !strings.Contains(fe.Msg, `Database "shop"`) {
		t.Fatalf("error = %v", fe)
	}
	// The same name on the other engine is another database.
	req := databaseReq("shop2", "acme", "acme_shop")
	req.Engine = "postgresql"
	apply(t, s, req)
}

func TestApplyDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	s, url := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"v":1}`))
	l := listen(t, url)

	snapshot := func() string {
		return fmt.Sprint(
			count(t, s, `SELECT count(*) FROM tenants`), count(t, s, `SELECT count(*) FROM domains`),
			count(t, s, `SELECT count(*) FROM domain_hostnames`), count(t, s, `SELECT count(*) FROM revisions`),
			count(t, s, `SELECT max(resource_version) FROM tenants`))
	}
	before := snapshot()

	create := domainReq("www", "acme", "www.example.com")
	create.DryRun = true
	res, err := s.Apply(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Resource.Generation != 1 || res.Resource.UID == "" {
		t.Fatalf("dry-run create = %+v", res)
	}
	update := tenantReq("acme", `{"v":2}`)
	update.DryRun = true
	if res = apply(t, s, update); !res.SpecChanged || res.Resource.Generation != 2 {
		t.Fatalf("dry-run update = %+v", res)
	}
	// A dry run still runs every check.
	bad := domainReq("www", "ghost", "www.example.com")
	bad.DryRun = true
	_, err = s.Apply(ctx, bad)
	wantFieldError(t, err, store.ErrDependency, "spec.tenant")

	if after := snapshot(); after != before {
		t.Fatalf("dry run wrote: before %s, after %s", before, after)
	}
	if r := get(t, s, v1alpha1.KindTenant, "acme"); r.Generation != 1 {
		t.Fatalf("generation = %d after a dry run", r.Generation)
	}
	l.nothingBefore(t, s, 1)
}

func TestApplyConcurrentUpdatesSerialise(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	apply(t, s, tenantReq("acme", `{"n":0}`))

	const writers = 10
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			_, errs[i] = s.Apply(ctx, tenantReq("acme", fmt.Sprintf(`{"n":%d}`, i+1)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	r := get(t, s, v1alpha1.KindTenant, "acme")
	if r.Generation != writers+1 || r.ResourceVersion != writers+1 {
		t.Fatalf("generation/resourceVersion = %d/%d, want %d", r.Generation, r.ResourceVersion, writers+1)
	}
	revs, err := s.Revisions(ctx, v1alpha1.KindTenant, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for i, rev := range revs {
		if rev.Number != int64(i+1) || rev.Generation != int64(i+1) {
			t.Fatalf("revision %d = number %d generation %d", i, rev.Number, rev.Generation)
		}
	}
	if len(revs) != writers+1 {
		t.Fatalf("revisions = %d, want %d", len(revs), writers+1)
	}
}

func TestApplyConcurrentCreates(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	const writers = 10
	var wg sync.WaitGroup
	results := make([]store.ApplyResult, writers)
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() { results[i], errs[i] = s.Apply(ctx, tenantReq("acme", `{"same":true}`)) })
	}
	wg.Wait()
	created := 0
	for i := range writers {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if results[i].Created {
			created++
		} else if !results[i].Unchanged() {
			t.Errorf("writer %d: %+v, want Unchanged", i, results[i])
		}
	}
	if created != 1 {
		t.Fatalf("%d creates, want 1", created)
	}
	if n := count(t, s, `SELECT count(*) FROM revisions`); n != 1 {
		t.Fatalf("revisions = %d, want 1", n)
	}
}

func TestApplyRefusesMalformedRequests(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	tests := []struct {
		name  string
		req   store.ApplyRequest
		err   error
		field string
	}{
		{"no name", tenantReq("", `{}`), store.ErrInvalid, "metadata.name"},
		{"spec not an object", tenantReq("a", `[1]`), store.ErrInvalid, "spec"},
		{"spec not JSON", tenantReq("a", `{`), store.ErrInvalid, "spec"},
		{"no tenant", store.ApplyRequest{Kind: v1alpha1.KindDomain, Name: "d", Spec: json.RawMessage(`{}`)}, store.ErrInvalid, "spec.tenant"},
		{"unknown kind", store.ApplyRequest{Kind: "Mailbox", Name: "m", Spec: json.RawMessage(`{}`)}, store.ErrNotFound, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Apply(context.Background(), tc.req)
			wantFieldError(t, err, tc.err, tc.field)
		})
	}
}
