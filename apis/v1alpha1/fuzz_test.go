package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode: Decode never panics, and what it accepts is valid and
// survives ToYAML -> Decode and JSON -> DecodeObjectJSON unchanged.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data, "fuzz")
		if err != nil {
			if objs != nil {
				t.Fatal("objects returned with an error")
			}
			return
		}
		for _, o := range objs {
			checkRoundTrip(t, o)
		}
	})
}

func checkRoundTrip(t *testing.T, o Object) {
	t.Helper()
	if errs := o.Validate(); len(errs) > 0 {
		t.Fatalf("decoded object does not validate: %v", errs)
	}
	y, err := ToYAML(o)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(y, "round-trip")
	if err != nil {
		t.Fatalf("ToYAML output does not decode:\n%s\n%v", y, err)
	}
	if len(back) != 1 {
		t.Fatalf("ToYAML output holds %d objects:\n%s", len(back), y)
	}
	if diff := cmp.Diff(o, back[0]); diff != "" {
		t.Fatalf("YAML round trip changed the object (-before +after):\n%s\n%s", diff, y)
	}
	j, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := DecodeObjectJSON(o.GetKind(), j)
	if err != nil {
		t.Fatalf("JSON does not decode:\n%s\n%v", j, err)
	}
	if diff := cmp.Diff(o, fromJSON); diff != "" {
		t.Fatalf("JSON round trip changed the object (-before +after):\n%s", diff)
	}
}

// FuzzQuantity: ParseQuantity never panics, never returns a negative size,
// and agrees with its own output written without a suffix or with one.
func FuzzQuantity(f *testing.F) {
	for _, s := range []string{"0", "1", "512Mi", "1.5Gi", "2G", "1k", "1K", "7Ei", "8Ei", "1.0001k", "-1", "1e3", "0.5Ki", "150%", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseCPUPercent(s); err == nil && (n < 1 || n > MaxCPUPercent) {
			t.Fatalf("ParseCPUPercent(%q) = %d", s, n)
		}
		n, err := ParseQuantity(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseQuantity(%q) = %d", s, n)
		}
		for _, again := range []string{formatBytes(n)} {
			m, err := ParseQuantity(again)
			if err != nil || m != n {
				t.Fatalf("ParseQuantity(%q) = %d, but ParseQuantity(%q) = %d, %v", s, n, again, m, err)
			}
		}
	})
}

// FuzzYAMLStrings: any string a tenant can hold in its display name or
// annotations comes back from ToYAML -> Decode unchanged.
func FuzzYAMLStrings(f *testing.F) {
	for _, s := range []string{"", "plain", "8.10", "true", "- x", "a: b", "#c", "line\nline\n", " lead", "tab\there",
		"\u2028", "\ufeff", "\x85", "😀", "\"quoted\"", "'single'", "|", ">", "*alias", "&anchor", "!tag", "%dir", "@at", "`tick`",
		"---", "...", "a\n---\nb\n", "\\", "null", "~", "0x1F", "1e3", ".inf", "{a: b}", "[a]", "a\r\nb"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, display, note string) {
		tn := &Tenant{Metadata: ObjectMeta{Name: "t", Annotations: map[string]string{"wcp360.io/note": note}},
			Spec: TenantSpec{DisplayName: display}}
		tn.Default()
		if len(tn.Validate()) > 0 {
			return
		}
		checkRoundTrip(t, tn)
	})
}
