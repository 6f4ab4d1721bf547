package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestObjectAccessors(t *testing.T) {
	d := validDomain()
	d.Default()
	if got := d.Hostnames(); !cmp.Equal(got, []string{"shop.example.com", "www.shop.example.com"}) {
		t.Errorf("Hostnames() = %v", got)
	}
	objs := []Object{validTenant(), d, validDatabase()}
	for i, o := range objs {
		if o.TenantName() != "shop" {
			t.Errorf("%s: TenantName() = %q", o.GetKind(), o.TenantName())
		}
		if o.GetKind() != Kinds[i] || o.GetTypeMeta().APIVersion != APIVersion {
			t.Errorf("kind %s, want %s", o.GetKind(), Kinds[i])
		}
		o.GetStatus().ObservedGeneration = 4
		if o.GetStatus().ObservedGeneration != 4 {
			t.Errorf("%s: GetStatus does not point into the object", o.GetKind())
		}
		o.GetMeta().Generation = 5
		if o.GetMeta().Generation != 5 {
			t.Errorf("%s: GetMeta does not point into the object", o.GetKind())
		}
	}
	if _, ok := objs[1].SpecValue().(DomainSpec); !ok {
		t.Errorf("SpecValue() is %T", objs[1].SpecValue())
	}
}

// A stored object (uid, timestamps, status) prints as YAML that Decode
// refuses with a message per server-set field: wcp get -o yaml shows it,
// wcp apply wants a manifest.
func TestToYAMLStoredObject(t *testing.T) {
	ts := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tn := validTenant()
	tn.Default()
	tn.Metadata.UID, tn.Metadata.Generation, tn.Metadata.ResourceVersion = "0b7e", 3, 9
	tn.Metadata.CreationTimestamp = &ts
	tn.Status = Status{ObservedGeneration: 3, Conditions: []Condition{{Type: ConditionReady, Status: ConditionTrue,
		Reason: "Converged", LastTransitionTime: ts, ObservedGeneration: 3}}}
	y, err := ToYAML(tn)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"  uid: \"0b7e\"\n", "  creationTimestamp: \"2025-03-01T12:00:00Z\"\n",
		"status:\n  observedGeneration: 3\n  conditions:\n    - type: Ready\n      status: \"True\"\n"} {
		if !strings.Contains(string(y), want) {
			t.Errorf("missing %q in\n%s", want, y)
		}
	}
	errs := decodeErrors(t, string(y))
	var paths []string
	for _, e := range errs {
		paths = append(paths, e.Path)
	}
	want := []string{"metadata.uid", "metadata.generation", "metadata.creationTimestamp", "status"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
