package v1alpha1

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Public keys made with ssh-keygen for the tests.
const (
	testKeyEd25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKCzM2Rub6++zgN14M7RRrbwn43HLoPiFZ9A8E+HJGlO alice@laptop"
	testKeyECDSA   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBARntY5ISkFozNv4fLmnrOXsmqF0em8v8I6ppFWCEu0MfOSABduGESbtp1edtcDzjmqzcDkPFk7l7JA3SZiXrP0= bob"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func validTenant() *Tenant {
	return &Tenant{
		Metadata: ObjectMeta{Name: "shop", Labels: map[string]string{"plan": "gold"}},
		Spec: TenantSpec{
			DisplayName: "Shop",
			Access:      TenantAccess{SFTP: true, AuthorizedKeys: []string{testKeyEd25519, testKeyECDSA}},
			Limits:      TenantLimits{MemoryHigh: "1Gi", MemoryMax: "2Gi", CPU: "150%", Pids: 256},
			PHP:         TenantPHP{Version: "8.3", INI: map[string]string{"date.timezone": "Europe/Berlin"}},
		},
	}
}

func validDomain() *Domain {
	return &Domain{
		Metadata: ObjectMeta{Name: "shop.example.com"},
		Spec: DomainSpec{
			Tenant:    "shop",
			Aliases:   []string{"www.shop.example.com"},
			Redirects: []Redirect{{From: "/old", To: "/new"}},
		},
	}
}

func validDatabase() *Database {
	return &Database{Metadata: ObjectMeta{Name: "main"}, Spec: DatabaseSpec{Tenant: "shop"}}
}

// errorKeys lists the errors as "path Type", sorted.
func errorKeys(errs ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Path+" "+string(e.Type))
	}
	sort.Strings(out)
	return out
}

// checkValidate defaults obj, validates it and compares the errors ("path Type").
func checkValidate(t *testing.T, obj Object, want ...string) {
	t.Helper()
	obj.Default()
	errs := obj.Validate()
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	if diff := cmp.Diff(want, errorKeys(errs)); diff != "" {
		t.Errorf("Validate() errors mismatch (-want +got):\n%s\nall: %v", diff, errs)
	}
	for _, e := range errs {
		if e.Detail == "" && e.Type != ErrorTypeDuplicate && e.Type != ErrorTypeRequired {
			t.Errorf("%s: no detail", e)
		}
		if !strings.HasPrefix(e.Error(), e.Path+": ") {
			t.Errorf("%q does not start with its path", e)
		}
	}
}
