package jsondiff

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want []Change
	}{
		{"identical", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, nil},
		{"scalar changed", `{"php":{"version":"8.1"}}`, `{"php":{"version":"8.2"}}`,
			[]Change{{Path: "spec.php.version", Old: json.RawMessage(`"8.1"`), New: json.RawMessage(`"8.2"`)}}},
		{"added and removed", `{"a":1}`, `{"b":2}`,
			[]Change{{Path: "spec.a", Old: json.RawMessage(`1`)}, {Path: "spec.b", New: json.RawMessage(`2`)}}},
		{"slice grows", `{"aliases":["x"]}`, `{"aliases":["x","y"]}`,
			[]Change{{Path: "spec.aliases[1]", New: json.RawMessage(`"y"`)}}},
		{"new document", ``, `{"a":1}`, []Change{{Path: "spec", New: json.RawMessage(`{"a":1}`)}}},
		{"dotted key", `{"ini":{"date.timezone":"UTC"}}`, `{"ini":{"date.timezone":"CET"}}`,
			[]Change{{Path: `spec.ini["date.timezone"]`, Old: json.RawMessage(`"UTC"`), New: json.RawMessage(`"CET"`)}}},
		{"type change", `{"a":{"b":1}}`, `{"a":[1]}`,
			[]Change{{Path: "spec.a", Old: json.RawMessage(`{"b":1}`), New: json.RawMessage(`[1]`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Diff("spec", []byte(tt.a), []byte(tt.b))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("Diff (-want +got):\n%s", d)
			}
		})
	}
}

func TestDiffBadJSON(t *testing.T) {
	if _, err := Diff("spec", []byte(`{`), []byte(`{}`)); err == nil {
		t.Fatal("want an error for malformed JSON")
	}
}
