// Package jsondiff lists field-level differences between two JSON documents,
// with kubectl-style paths ("spec.aliases[1]", "metadata.labels.plan").
package jsondiff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Change is one difference. Old is nil for an added field, New for a removed one.
type Change struct {
	Path string
	Old  json.RawMessage
	New  json.RawMessage
}

// Diff compares a and b (either may be empty, meaning absent) under prefix.
func Diff(prefix string, a, b []byte) ([]Change, error) {
	var va, vb any
	if len(bytes.TrimSpace(a)) > 0 {
		if err := json.Unmarshal(a, &va); err != nil {
			return nil, fmt.Errorf("jsondiff: old document: %w", err)
		}
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &vb); err != nil {
			return nil, fmt.Errorf("jsondiff: new document: %w", err)
		}
	}
	var out []Change
	walk(prefix, va, vb, &out)
	return out, nil
}

// Values compares two decoded values (maps, slices, scalars) under prefix.
func Values(prefix string, a, b any) []Change {
	var out []Change
	walk(prefix, a, b, &out)
	return out
}

func walk(path string, a, b any, out *[]Change) {
	ma, aIsMap := a.(map[string]any)
	mb, bIsMap := b.(map[string]any)
	if aIsMap && bIsMap {
		walkMap(path, ma, mb, out)
		return
	}
	sa, aIsSlice := a.([]any)
	sb, bIsSlice := b.([]any)
	if aIsSlice && bIsSlice {
		walkSlice(path, sa, sb, out)
		return
	}
	if equal(a, b) {
		return
	}
	*out = append(*out, Change{Path: path, Old: raw(a), New: raw(b)})
}

func walkMap(path string, a, b map[string]any, out *[]Change) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		walk(join(path, k), a[k], b[k], out)
	}
}

func walkSlice(path string, a, b []any, out *[]Change) {
	n := max(len(a), len(b))
	for i := range n {
		var va, vb any
		if i < len(a) {
			va = a[i]
		}
		if i < len(b) {
			vb = b[i]
		}
		walk(fmt.Sprintf("%s[%d]", path, i), va, vb, out)
	}
}

func join(path, key string) string {
	if strings.ContainsAny(key, ".[]") {
		key = "[" + strconvQuote(key) + "]"
		return path + key
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func raw(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}
