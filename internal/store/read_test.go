package store_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/store"
)

func TestGetListCount(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for _, tn := range []string{"zeta", "acme"} {
		apply(t, s, tenantReq(tn, `{}`))
	}
	for _, d := range []struct{ name, tenant, node, plan string }{
		{"c-site", "acme", "node1", "gold"}, {"a-site", "acme", "node2", "gold"},
		{"b-site", "acme", "node1", "free"}, {"z-site", "zeta", "node1", "gold"},
	} {
		req := domainReq(d.name, d.tenant, d.name+".example.com")
		req.Node = d.node
		req.Labels = map[string]string{"plan": d.plan, "team": "web"}
		apply(t, s, req)
	}

	names := func(rs []store.Resource) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	tests := []struct {
		name string
		opts store.ListOptions
		want []string
	}{
		{"all, by name", store.ListOptions{}, []string{"a-site", "b-site", "c-site", "z-site"}},
		{"tenant", store.ListOptions{Tenant: "acme"}, []string{"a-site", "b-site", "c-site"}},
		{"node", store.ListOptions{Node: "node1"}, []string{"b-site", "c-site", "z-site"}},
		{"labels", store.ListOptions{Labels: map[string]string{"plan": "gold", "team": "web"}}, []string{"a-site", "c-site", "z-site"}},
		{"everything", store.ListOptions{Tenant: "acme", Node: "node1", Labels: map[string]string{"plan": "gold"}}, []string{"c-site"}},
		{"nothing", store.ListOptions{Tenant: "nobody"}, []string{}},
	}
	for _, tc := range tests {
		got, err := s.List(ctx, v1alpha1.KindDomain, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, names(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	list, err := s.List(ctx, v1alpha1.KindDomain, store.ListOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(get(t, s, v1alpha1.KindDomain, "a-site"), list[0]); diff != "" {
		t.Fatalf("List and Get disagree (-get +list):\n%s", diff)
	}

	keys, err := s.ListKeys(ctx, v1alpha1.KindDomain, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b-site", "c-site", "z-site"}, keys); diff != "" {
		t.Fatalf("ListKeys (-want +got):\n%s", diff)
	}
	if keys, _ := s.ListKeys(ctx, v1alpha1.KindTenant, ""); !cmp.Equal([]string{"acme", "zeta"}, keys) {
		t.Fatalf("ListKeys of every node = %v", keys)
	}
	if n, err := s.Count(ctx, v1alpha1.KindDomain); err != nil || n != 4 {
		t.Fatalf("Count = %d, %v", n, err)
	}
	if n, err := s.Count(ctx, v1alpha1.KindDatabase); err != nil || n != 0 {
		t.Fatalf("Count of databases = %d, %v", n, err)
	}

	_, err = s.Get(ctx, v1alpha1.KindDomain, "nope")
	fe := wantFieldError(t, err, store.ErrNotFound, "metadata.name")
	if fe.Value != "nope" {
		t.Errorf("value = %q", fe.Value)
	}
	_, err = s.List(ctx, "Mailbox", store.ListOptions{})
	wantFieldError(t, err, store.ErrNotFound, "kind")
}
