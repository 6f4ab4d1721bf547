package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ToYAML writes an object as a YAML document (without "---"), going
// through its JSON form so that the json tags decide names and omissions.
// Fields keep their declaration order; strings that YAML could read as
// anything but the same string are double-quoted.
func ToYAML(obj Object) ([]byte, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", obj.GetKind(), err)
	}
	root, perr := parseJSON(data)
	if perr != nil {
		return nil, fmt.Errorf("marshal %s: %s", obj.GetKind(), perr.msg)
	}
	var b strings.Builder
	writeYAMLMap(&b, root, 0)
	return []byte(b.String()), nil
}

// writeYAMLMap writes the entries of a non-empty mapping, each on its own line.
func writeYAMLMap(b *strings.Builder, n *node, indent int) {
	for i, k := range n.keys {
		if i > 0 {
			b.WriteString(strings.Repeat(" ", indent))
		}
		b.WriteString(yamlString(k.text))
		b.WriteByte(':')
		writeYAMLValue(b, n.items[i], indent+2)
	}
}

// writeYAMLValue writes a value after "key:" or "-": scalars and empty
// collections on the same line, other collections on the lines below.
func writeYAMLValue(b *strings.Builder, n *node, indent int) {
	pad := strings.Repeat(" ", indent)
	switch {
	case n.kind == nodeMap && len(n.keys) > 0:
		b.WriteString("\n" + pad)
		writeYAMLMap(b, n, indent)
	case n.kind == nodeSeq && len(n.items) > 0:
		b.WriteByte('\n')
		for _, it := range n.items {
			b.WriteString(pad + "-")
			if it.kind == nodeMap && len(it.keys) > 0 {
				b.WriteByte(' ')
				writeYAMLMap(b, it, indent+2)
				continue
			}
			writeYAMLValue(b, it, indent+2)
		}
	default:
		v := yamlScalar(n, indent)
		b.WriteString(" " + v)
		if !strings.HasSuffix(v, "\n") {
			b.WriteByte('\n')
		}
	}
}

// yamlScalar writes a scalar or an empty collection; a multi-line string
// becomes a literal block indented by indent.
func yamlScalar(n *node, indent int) string {
	switch n.kind {
	case nodeMap:
		return "{}"
	case nodeSeq:
		return "[]"
	case nodeNull:
		return "null"
	case nodeString:
		if isLiteralSafe(n.text) {
			return "|\n" + indentLines(n.text, indent)
		}
		return yamlString(n.text)
	default:
		return n.text // JSON numbers and booleans read the same in YAML
	}
}

// yamlPlainWords read as something other than a string in YAML 1.2 or 1.1.
var yamlPlainWords = map[string]bool{
	"true": true, "false": true, "null": true, "yes": true, "no": true,
	"on": true, "off": true, "y": true, "n": true,
}

// yamlString writes s plain when it is unmistakably a string, else double-quoted.
func yamlString(s string) string {
	if isPlainSafe(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError, r == 0x85, r == 0x2028, r == 0x2029, r == 0xFEFF,
			r != ' ' && !unicode.IsPrint(r):
			if r > 0xFFFF {
				fmt.Fprintf(&b, `\U%08X`, r)
			} else {
				fmt.Fprintf(&b, `\u%04X`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// plainQuantityRE matches sizes like "512Mi" and "1.5G": strings to YAML,
// since a number never ends in those suffixes.
var plainQuantityRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(k|K|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)$`)

// isPlainSafe: starts with a letter or '/', then only letters, digits and
// ._/-, and is not a YAML keyword; or is a size with a suffix.
func isPlainSafe(s string) bool {
	if plainQuantityRE.MatchString(s) {
		return true
	}
	if s == "" || (!isLetter(rune(s[0])) && s[0] != '/') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '/' && c != '-' {
			return false
		}
	}
	return !yamlPlainWords[strings.ToLower(s)]
}

// isLiteralSafe: several lines of printable text (PEM blocks), each without
// leading or trailing blanks, ending in exactly one newline, so that a "|"
// block scalar reads back the same.
func isLiteralSafe(s string) bool {
	body, ok := strings.CutSuffix(s, "\n")
	if !ok || !strings.Contains(body, "\n") {
		return false
	}
	for l := range strings.SplitSeq(body, "\n") {
		if l == "" || strings.TrimSpace(l) != l {
			return false
		}
		for _, r := range l {
			if !unicode.IsPrint(r) || r == utf8.RuneError || r == 0xFEFF {
				return false
			}
		}
	}
	return true
}

func indentLines(s string, indent int) string {
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	for l := range strings.Lines(s) {
		b.WriteString(pad + l)
	}
	return b.String()
}
