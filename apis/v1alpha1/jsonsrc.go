package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
)

// jsonParser turns one JSON value into a node tree with line and column
// positions, keeping key order and duplicate keys (the decoder refuses them).
type jsonParser struct {
	data  []byte
	dec   *json.Decoder
	lines []int // offset of the start of each line
}

// errJSONDepth stops a document that nests deeper than maxDepth.
var errJSONDepth = errors.New("the document nests deeper than 32 levels")

func newJSONParser(data []byte) *jsonParser {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lines := []int{0}
	for i, c := range data {
		if c == '\n' {
			lines = append(lines, i+1)
		}
	}
	return &jsonParser{data: data, dec: dec, lines: lines}
}

// parseJSON parses data, which must hold exactly one JSON value.
func parseJSON(data []byte) (*node, *problem) {
	p := newJSONParser(data)
	root, err := p.value(0)
	if err != nil {
		return nil, &problem{pos: p.errorPos(err), msg: "JSON syntax error: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	at := p.posAt(p.next())
	if _, extra := p.dec.Token(); !errors.Is(extra, io.EOF) {
		return nil, &problem{pos: at, msg: "JSON syntax error: unexpected data after the JSON value"}
	}
	return root, nil
}

// posAt converts a byte offset into a 1-based line and column.
func (p *jsonParser) posAt(off int) pos {
	i := sort.Search(len(p.lines), func(i int) bool { return p.lines[i] > off }) - 1
	return pos{i + 1, off - p.lines[i] + 1}
}

func (p *jsonParser) errorPos(err error) pos {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return p.posAt(int(se.Offset))
	}
	return p.posAt(p.next())
}

// next is the offset of the next token: past whitespace, ',' and ':'.
func (p *jsonParser) next() int {
	off := int(p.dec.InputOffset())
	for off < len(p.data) && bytes.IndexByte([]byte(" \t\r\n,:"), p.data[off]) >= 0 {
		off++
	}
	return off
}

func (p *jsonParser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, errJSONDepth
	}
	at := p.posAt(p.next())
	tok, err := p.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &node{line: at.line, col: at.col}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return n, p.object(n, depth)
		}
		return n, p.array(n, depth)
	case string:
		n.kind, n.text = nodeString, t
	case bool:
		n.kind, n.boolean, n.text = nodeBool, t, strconv.FormatBool(t)
	case json.Number:
		setJSONNumber(n, t.String())
	case nil:
		n.kind = nodeNull
	}
	return n, nil
}

func setJSONNumber(n *node, s string) {
	n.text = s
	if strings.ContainsAny(s, ".eE") {
		n.kind = nodeFloat
		return
	}
	n.kind = nodeInt
	i, err := strconv.ParseInt(s, 10, 64)
	n.integer, n.overflow = i, err != nil
}

func (p *jsonParser) object(n *node, depth int) error {
	n.kind = nodeMap
	for p.dec.More() {
		at := p.posAt(p.next())
		tok, err := p.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string) // the decoder only returns strings for keys
		v, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		n.keys = append(n.keys, &node{kind: nodeString, text: key, line: at.line, col: at.col})
		n.items = append(n.items, v)
	}
	_, err := p.dec.Token() // '}'
	return err
}

func (p *jsonParser) array(n *node, depth int) error {
	n.kind = nodeSeq
	for p.dec.More() {
		v, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		n.items = append(n.items, v)
	}
	_, err := p.dec.Token() // ']'
	return err
}
