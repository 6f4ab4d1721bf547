package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaults(t *testing.T) {
	yes := func() *bool { b := true; return &b }
	tests := []struct {
		name string
		in   Object
		want Object
	}{
		{
			name: "tenant",
			in:   &Tenant{Metadata: ObjectMeta{Name: "shop"}},
			want: &Tenant{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindTenant},
				Metadata: ObjectMeta{Name: "shop"},
				Spec: TenantSpec{DriftPolicy: DriftCorrect, HomeDeletionPolicy: HomeArchive,
					PHP: TenantPHP{ProcessManager: "ondemand", MaxChildren: 5}},
			},
		},
		{
			name: "tenant keeps what is set",
			in: &Tenant{Metadata: ObjectMeta{Name: "shop"}, Spec: TenantSpec{DriftPolicy: DriftIgnore,
				HomeDeletionPolicy: HomeRetain, PHP: TenantPHP{Version: "8.2", ProcessManager: "static", MaxChildren: 9}}},
			want: &Tenant{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindTenant},
				Metadata: ObjectMeta{Name: "shop"},
				Spec: TenantSpec{DriftPolicy: DriftIgnore, HomeDeletionPolicy: HomeRetain,
					PHP: TenantPHP{Version: "8.2", ProcessManager: "static", MaxChildren: 9}},
			},
		},
		{
			name: "domain",
			in: &Domain{Metadata: ObjectMeta{Name: "example.com"},
				Spec: DomainSpec{Tenant: "shop", Redirects: []Redirect{{From: "/a", To: "/b"}, {From: "/c", To: "/d", Code: 302}}}},
			want: &Domain{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindDomain},
				Metadata: ObjectMeta{Name: "example.com"},
				Spec: DomainSpec{Tenant: "shop", ServerName: "example.com", DocumentRoot: "domains/example.com/public",
					PHP: DomainPHP{Enabled: yes()}, HTTP2: yes(), HTTPSRedirect: yes(), WWWRedirect: WWWNone,
					Redirects: []Redirect{{From: "/a", To: "/b", Code: 301}, {From: "/c", To: "/d", Code: 302}},
					TLS:       DomainTLS{Mode: TLSACME, Challenge: ChallengeHTTP01}},
			},
		},
		{
			name: "domain with a wildcard server name and no acme",
			in: &Domain{Metadata: ObjectMeta{Name: "example.com"},
				Spec: DomainSpec{Tenant: "shop", ServerName: "*.example.com", TLS: DomainTLS{Mode: TLSSelfSigned}}},
			want: &Domain{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindDomain},
				Metadata: ObjectMeta{Name: "example.com"},
				Spec: DomainSpec{Tenant: "shop", ServerName: "*.example.com", DocumentRoot: "domains/_wildcard.example.com/public",
					PHP: DomainPHP{Enabled: yes()}, HTTP2: yes(), HTTPSRedirect: yes(), WWWRedirect: WWWNone,
					TLS: DomainTLS{Mode: TLSSelfSigned}},
			},
		},
		{
			name: "database",
			in:   &Database{Metadata: ObjectMeta{Name: "shop-main"}, Spec: DatabaseSpec{Tenant: "my-shop"}},
			want: &Database{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindDatabase},
				Metadata: ObjectMeta{Name: "shop-main"},
				Spec: DatabaseSpec{Tenant: "my-shop", Engine: EngineMariaDB, DatabaseName: "my_shop_shop_main",
					User: "my_shop_shop_main"},
			},
		},
		{
			name: "database with a name but no user",
			in:   &Database{Metadata: ObjectMeta{Name: "x"}, Spec: DatabaseSpec{Tenant: "t", Engine: EnginePostgreSQL, DatabaseName: "shopdb"}},
			want: &Database{
				TypeMeta: TypeMeta{APIVersion: APIVersion, Kind: KindDatabase},
				Metadata: ObjectMeta{Name: "x"},
				Spec:     DatabaseSpec{Tenant: "t", Engine: EnginePostgreSQL, DatabaseName: "shopdb", User: "shopdb"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Default()
			if diff := cmp.Diff(tt.want, tt.in); diff != "" {
				t.Fatalf("Default() mismatch (-want +got):\n%s", diff)
			}
			tt.in.Default()
			if diff := cmp.Diff(tt.want, tt.in); diff != "" {
				t.Fatalf("Default() twice differs from once (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultIdempotentOnTestdata(t *testing.T) {
	objs, err := Decode([]byte(readTestdata(t, "valid.yaml")), "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		before, _ := ToYAML(o)
		o.Default()
		after, _ := ToYAML(o)
		if diff := cmp.Diff(string(before), string(after)); diff != "" {
			t.Errorf("%s %s: Default() changed a defaulted object:\n%s", o.GetKind(), o.GetMeta().Name, diff)
		}
	}
}
