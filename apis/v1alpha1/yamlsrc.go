package v1alpha1

import (
	"bytes"
	"errors"
	"math"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// maxDepth bounds the nesting of a manifest; real ones need about 6.
// maxFlowNesting is checked before parsing, to keep the parser's recursion
// shallow; it counts brackets inside strings too, so it is set far higher.
const (
	maxDepth       = 32
	maxFlowNesting = 1000
)

// rawDocument is one YAML document of a stream, not parsed yet.
type rawDocument struct {
	data      []byte
	firstLine int // line of data[0] in the whole input, 1-based
}

// splitDocuments cuts a YAML stream before each "---" line and after each
// "..." line (YAML forbids those markers inside a document, even in block
// scalars, so no parsing is needed). Directives ("%YAML") stay with the
// document that follows them; documents with nothing in them are dropped.
func splitDocuments(data []byte) []rawDocument {
	var docs []rawDocument
	start, startLine, line := 0, 1, 1
	cut := func(end, nextLine int) {
		if !isBlankDocument(data[start:end]) {
			docs = append(docs, rawDocument{data: data[start:end], firstLine: startLine})
		}
		start, startLine = end, nextLine
	}
	for off := 0; off < len(data); line++ {
		end := off + bytes.IndexByte(data[off:], '\n') + 1
		if end == off {
			end = len(data)
		}
		l := data[off:end]
		switch {
		case isMarker(l, "---") && off > start && !isPreamble(data[start:off]):
			cut(off, line)
		case isMarker(l, "..."):
			cut(end, line+1)
		}
		off = end
	}
	cut(len(data), line)
	return docs
}

// isMarker reports whether line is the document marker m, alone or followed by a space.
func isMarker(line []byte, m string) bool {
	if !bytes.HasPrefix(line, []byte(m)) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n'
}

// isPreamble reports whether b holds directives and nothing but comments besides.
func isPreamble(b []byte) bool {
	directive := false
	for l := range strings.Lines(string(b)) {
		t := strings.TrimSpace(l)
		switch {
		case t == "" || strings.HasPrefix(t, "#"):
		case strings.HasPrefix(l, "%"):
			directive = true
		default:
			return false
		}
	}
	return directive
}

// isBlankDocument reports whether b holds only comments, blank lines and markers.
func isBlankDocument(b []byte) bool {
	for l := range strings.Lines(string(b)) {
		t := strings.TrimSpace(l)
		if isMarker([]byte(t), "---") || isMarker([]byte(t), "...") {
			t = strings.TrimSpace(t[3:])
		}
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// tokenError is what go-yaml's parse errors carry.
type tokenError interface {
	error
	GetToken() *token.Token
	GetMessage() string
}

// parseYAMLDocument parses one raw document into a node tree. A nil node
// with no problems means the document is empty.
func parseYAMLDocument(doc rawDocument) (*node, []*problem) {
	if nesting(doc.data) > maxFlowNesting {
		return nil, []*problem{{pos: pos{doc.firstLine, 1}, msg: "the document nests too deeply"}}
	}
	f, err := parser.ParseBytes(doc.data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		p := pos{doc.firstLine, 1}
		msg := err.Error()
		if te, ok := errors.AsType[tokenError](err); ok {
			msg = te.GetMessage()
			if tk := te.GetToken(); tk != nil && tk.Position != nil {
				p = pos{doc.firstLine + tk.Position.Line - 1, tk.Position.Column}
			}
		}
		return nil, []*problem{{pos: p, msg: "YAML syntax error: " + msg}}
	}
	c := &yamlConverter{lineOffset: doc.firstLine - 1}
	var root *node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, ok := d.Body.(*ast.DirectiveNode); ok {
			continue // %YAML before "---" comes as a document of its own
		}
		if root != nil {
			c.fail(d.Body, "a second document without a \"---\" line before it")
			break
		}
		root = c.convert(d.Body, 0)
	}
	return root, c.problems
}

// nesting is an upper bound of how deep flow collections nest in b, found
// before the parser recurses into them.
func nesting(b []byte) int {
	depth, deepest := 0, 0
	for _, c := range b {
		switch c {
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return deepest
}

// yamlConverter turns a go-yaml AST into nodes, refusing aliases, merge
// keys, unknown tags and complex keys.
type yamlConverter struct {
	lineOffset int
	problems   []*problem
}

func (c *yamlConverter) position(n ast.Node) pos {
	tk := n.GetToken()
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		tk = m.Values[0].Key.GetToken()
	}
	if tk == nil || tk.Position == nil {
		return pos{}
	}
	return pos{c.lineOffset + tk.Position.Line, tk.Position.Column}
}

// fail records a problem and returns a null node that stands for the
// refused value; the decoder gives the problem its field path.
func (c *yamlConverter) fail(n ast.Node, msg string) *node {
	p := c.position(n)
	prob := &problem{pos: p, msg: msg}
	c.problems = append(c.problems, prob)
	return &node{kind: nodeNull, line: p.line, col: p.col, invalid: prob}
}

func (c *yamlConverter) convert(n ast.Node, depth int) *node {
	if n == nil {
		return &node{kind: nodeNull}
	}
	if depth > maxDepth {
		return c.fail(n, "the document nests deeper than 32 levels")
	}
	p := c.position(n)
	out := &node{line: p.line, col: p.col}
	switch v := n.(type) {
	case *ast.MappingNode:
		out.kind = nodeMap
		for _, mv := range v.Values {
			c.addEntry(out, mv, depth)
		}
	case *ast.MappingValueNode:
		out.kind = nodeMap
		c.addEntry(out, v, depth)
	case *ast.SequenceNode:
		out.kind = nodeSeq
		for _, it := range v.Values {
			out.items = append(out.items, c.convert(it, depth+1))
		}
	case *ast.AnchorNode:
		return c.convert(v.Value, depth+1)
	case *ast.AliasNode:
		return c.fail(n, "YAML aliases (*name) are not accepted: write the value out")
	case *ast.TagNode:
		return c.convertTagged(v, depth)
	default:
		if !c.scalar(n, out) {
			return c.fail(n, "unsupported YAML construct "+n.Type().String())
		}
	}
	return out
}

// scalar fills out from a scalar node and reports whether n was one.
func (c *yamlConverter) scalar(n ast.Node, out *node) bool {
	switch v := n.(type) {
	case *ast.NullNode:
		out.kind = nodeNull
	case *ast.BoolNode:
		out.kind, out.boolean, out.text = nodeBool, v.Value, v.GetToken().Value
	case *ast.IntegerNode:
		out.kind, out.text = nodeInt, v.GetToken().Value
		switch i := v.Value.(type) {
		case int64:
			out.integer = i
		case uint64:
			if i > math.MaxInt64 {
				out.overflow = true
			} else {
				out.integer = int64(i)
			}
		}
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		out.kind, out.text = nodeFloat, n.GetToken().Value
	case *ast.StringNode:
		out.kind, out.text = nodeString, v.Value
	case *ast.LiteralNode:
		out.kind = nodeString
		if v.Value != nil {
			out.text = v.Value.Value
		}
	default:
		return false
	}
	return true
}

// convertTagged accepts the core schema tags; !!str turns any scalar into a string.
func (c *yamlConverter) convertTagged(t *ast.TagNode, depth int) *node {
	switch tag := t.Start.Value; tag {
	case "!!str":
		out := c.convert(t.Value, depth+1)
		switch out.kind {
		case nodeMap, nodeSeq:
			return c.fail(t, "!!str on a collection")
		case nodeNull:
			out.text = ""
		default: // a scalar keeps its text
		}
		out.kind = nodeString
		return out
	case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		return c.convert(t.Value, depth+1)
	default:
		return c.fail(t, "YAML tag "+tag+" is not supported")
	}
}

// addEntry adds one key: value pair to the mapping out.
func (c *yamlConverter) addEntry(out *node, mv *ast.MappingValueNode, depth int) {
	key := c.convertKey(mv.Key)
	if key == nil {
		return
	}
	out.keys = append(out.keys, key)
	out.items = append(out.items, c.convert(mv.Value, depth+1))
}

// convertKey returns a string node for a scalar key, or nil after a problem.
func (c *yamlConverter) convertKey(k ast.MapKeyNode) *node {
	var n ast.Node = k
	if mk, ok := k.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	if n == nil {
		c.fail(k, "a mapping key must not be empty")
		return nil
	}
	if _, ok := n.(*ast.MergeKeyNode); ok {
		c.fail(n, "merge keys (<<) are not accepted: write the fields out")
		return nil
	}
	if t, ok := n.(*ast.TagNode); ok && t.Start.Value == "!!str" {
		n = t.Value
	}
	p := c.position(n)
	out := &node{line: p.line, col: p.col}
	if !c.scalar(n, out) || out.kind == nodeNull {
		c.fail(n, "a mapping key must be a string")
		return nil
	}
	out.kind = nodeString
	return out
}
