package v1alpha1

import (
	"encoding"
	"fmt"
	suggestpkg "github.com/wcp360/wcp360/internal/suggest"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// problem is one thing wrong with a document, before it gets a source and
// document number.
type problem struct {
	pos   pos
	path  string
	msg   string
	field *FieldError // set for problems found by Validate
	// hidden marks a path whose problem was reported without one (by the
	// YAML converter), so that no later problem repeats it.
	hidden bool
}

// strictDecoder fills a Go value from a node tree like encoding/json with
// DisallowUnknownFields would, but collects every problem with its path and
// position: unknown and duplicate fields, wrong types, integer overflow.
// Field names match exactly (encoding/json would ignore case).
type strictDecoder struct {
	problems []problem
	// refused maps a field path to why the field may not be given.
	refused map[string]string
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

func (d *strictDecoder) add(n *node, p Path, format string, args ...any) {
	d.problems = append(d.problems, problem{pos: pos{n.line, n.col}, path: p.String(), msg: fmt.Sprintf(format, args...)})
}

func (d *strictDecoder) decode(v reflect.Value, n *node, p Path) {
	if n.invalid != nil {
		if n.invalid.path == "" {
			n.invalid.path = p.String()
		}
		d.problems = append(d.problems, problem{path: p.String(), hidden: true})
		return
	}
	if n.kind == nodeNull {
		v.SetZero()
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
		d.decodeText(v, n, p)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(v.Elem(), n, p)
	case reflect.Struct:
		d.decodeStruct(v, n, p)
	case reflect.Map:
		d.decodeMap(v, n, p)
	case reflect.Slice:
		d.decodeSlice(v, n, p)
	case reflect.String:
		d.decodeString(v, n, p)
	case reflect.Bool:
		if n.kind != nodeBool {
			d.wrongType(n, p, "a boolean (true or false)")
			return
		}
		v.SetBool(n.boolean)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.decodeInt(v, n, p)
	default:
		d.add(n, p, "cannot decode into %s", v.Type())
	}
}

// skip is called for a value the decoder does not descend into (an unknown,
// refused or duplicate field, or a wrong type): problems the parser found
// inside it add nothing to the one reported for the field.
func skip(n *node) {
	if n.invalid != nil {
		n.invalid.hidden = true
	}
	for _, c := range n.items {
		skip(c)
	}
}

func (d *strictDecoder) wrongType(n *node, p Path, want string) {
	skip(n)
	got := n.kind.String()
	if n.kind != nodeMap && n.kind != nodeSeq {
		got += " " + formatValue(n.text)
	}
	d.add(n, p, "wrong type: want %s, got %s", want, got)
}

// decodeString takes any scalar as it is written, so that `version: 8.10`
// means "8.10" and `memoryMax: 1048576` means "1048576".
func (d *strictDecoder) decodeString(v reflect.Value, n *node, p Path) {
	switch {
	case n.kind == nodeMap || n.kind == nodeSeq:
		d.wrongType(n, p, "a string")
	case !utf8.ValidString(n.text) || strings.IndexByte(n.text, 0) >= 0:
		d.add(n, p, "strings must be valid UTF-8 without NUL characters")
	default:
		v.SetString(n.text)
	}
}

func (d *strictDecoder) decodeInt(v reflect.Value, n *node, p Path) {
	switch {
	case n.kind != nodeInt:
		d.wrongType(n, p, "an integer")
	case n.overflow || v.OverflowInt(n.integer):
		d.add(n, p, "integer %s is out of range", n.text)
	default:
		v.SetInt(n.integer)
	}
}

func (d *strictDecoder) decodeText(v reflect.Value, n *node, p Path) {
	if n.kind != nodeString {
		d.wrongType(n, p, "a string")
		return
	}
	if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.text)); err != nil {
		d.add(n, p, "invalid value %s: %v", formatValue(n.text), err)
	}
}

func (d *strictDecoder) decodeSlice(v reflect.Value, n *node, p Path) {
	if n.kind != nodeSeq {
		d.wrongType(n, p, "a list")
		return
	}
	if len(n.items) == 0 {
		v.SetZero() // [] and a missing list mean the same: keep one form
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.items), len(n.items))
	for i, it := range n.items {
		if it.kind == nodeNull && it.invalid == nil {
			d.add(it, p.Index(i), "a list entry must not be null")
			continue
		}
		d.decode(s.Index(i), it, p.Index(i))
	}
	v.Set(s)
}

func (d *strictDecoder) decodeMap(v reflect.Value, n *node, p Path) {
	if n.kind != nodeMap {
		d.wrongType(n, p, "a mapping")
		return
	}
	if len(n.keys) == 0 {
		v.SetZero() // {} and a missing mapping mean the same: keep one form
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.keys))
	first := map[string]*node{}
	for i, k := range n.keys {
		kp := p.Key(k.text)
		if f, dup := first[k.text]; dup {
			d.add(k, kp, "duplicate key %q (first at line %d)", k.text, f.line)
			skip(n.items[i])
			continue
		}
		first[k.text] = k
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(ev, n.items[i], kp)
		m.SetMapIndex(reflect.ValueOf(k.text).Convert(v.Type().Key()), ev)
	}
	v.Set(m)
}

func (d *strictDecoder) decodeStruct(v reflect.Value, n *node, p Path) {
	if n.kind != nodeMap {
		d.wrongType(n, p, "a mapping")
		return
	}
	fields := jsonFields(v.Type())
	first := map[string]*node{}
	for i, k := range n.keys {
		fp := p.Child(k.text)
		if f, dup := first[k.text]; dup {
			d.add(k, fp, "duplicate key %q (first at line %d)", k.text, f.line)
			skip(n.items[i])
			continue
		}
		first[k.text] = k
		if why, refused := d.refused[fp.String()]; refused {
			d.add(k, fp, "%s", why)
			skip(n.items[i])
			continue
		}
		idx, ok := fields.index[k.text]
		if !ok {
			d.add(k, fp, "unknown field %q%s", k.text, suggest(k.text, fields.names, d.refused, p))
			skip(n.items[i])
			continue
		}
		d.decode(v.FieldByIndex(idx), n.items[i], fp)
	}
}

// structFields maps the JSON names of a struct type to field indexes.
type structFields struct {
	index map[string][]int
	names []string // in declaration order
}

// fieldCache holds jsonFields per type, as encoding/json caches its own:
// derived from the types alone, it never changes what decoding does.
var fieldCache sync.Map // reflect.Type -> structFields

// jsonFields lists the fields encoding/json would use, flattening embedded
// structs without a name (`json:",inline"` or no tag).
func jsonFields(t reflect.Type) structFields {
	if sf, ok := fieldCache.Load(t); ok {
		return sf.(structFields)
	}
	sf := computeJSONFields(t)
	fieldCache.Store(t, sf)
	return sf
}

func computeJSONFields(t reflect.Type) structFields {
	sf := structFields{index: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			idx := append(append([]int(nil), prefix...), i)
			switch {
			case name == "-" || !f.IsExported():
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
				walk(f.Type, idx)
			default:
				if name == "" {
					name = f.Name
				}
				sf.index[name] = idx
				sf.names = append(sf.names, name)
			}
		}
	}
	walk(t, nil)
	return sf
}

// suggest proposes the closest known field name for a misspelt one, or lists them.
func suggest(got string, known []string, refused map[string]string, parent Path) string {
	var usable []string
	for _, k := range known {
		if _, r := refused[parent.Child(k).String()]; !r {
			usable = append(usable, k)
		}
	}
	best, bestDist := "", len(got)/2+1
	for _, k := range usable {
		if strings.EqualFold(k, got) {
			return fmt.Sprintf(" (did you mean %q?)", k)
		}
		if dist := suggestpkg.Distance(strings.ToLower(got), strings.ToLower(k)); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known fields: " + strings.Join(usable, ", ") + ")"
}
