package v1alpha1

import (
	"strconv"
	"strings"
)

// nodeKind is the type of a parsed value, the same for YAML and JSON input.
type nodeKind uint8

const (
	nodeNull nodeKind = iota
	nodeBool
	nodeInt
	nodeFloat
	nodeString
	nodeMap
	nodeSeq
)

// String names the kind in messages: "got list".
func (k nodeKind) String() string {
	return [...]string{"null", "boolean", "integer", "number", "string", "mapping", "list"}[k]
}

// node is one value of a manifest with the position it came from: the
// input to the strict decoder, and the map from a field path to a line.
type node struct {
	kind      nodeKind
	line, col int
	text      string // strings: the value; numbers and booleans: as written
	boolean   bool
	integer   int64
	overflow  bool     // an integer beyond int64
	invalid   *problem // set on a value refused while parsing
	keys      []*node  // mapping keys (string nodes), parallel to items
	items     []*node  // mapping values or list elements
}

// pos is a line and column in the input; zero when unknown.
type pos struct{ line, col int }

// lookup follows a field path ("spec.aliases[1]", "metadata.labels[a.b/c]")
// as far as the document has it, and returns the position of the deepest
// node found: the key's position for a mapping entry.
func (n *node) lookup(path string) pos {
	at := pos{n.line, n.col}
	cur := n
	for _, seg := range splitPath(path) {
		next, p, ok := cur.child(seg)
		if !ok {
			break
		}
		cur, at = next, p
	}
	return at
}

// child returns the entry seg of a mapping or the element seg of a list.
func (n *node) child(seg string) (*node, pos, bool) {
	switch n.kind {
	case nodeMap:
		for i, k := range n.keys {
			if k.text == seg {
				return n.items[i], pos{k.line, k.col}, true
			}
		}
	case nodeSeq:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.items) {
			it := n.items[i]
			return it, pos{it.line, it.col}, true
		}
	default: // scalars have no children
	}
	return nil, pos{}, false
}

// get returns the value of key in a mapping, or nil.
func (n *node) get(key string) *node {
	if n == nil || n.kind != nodeMap {
		return nil
	}
	for i, k := range n.keys {
		if k.text == key {
			return n.items[i]
		}
	}
	return nil
}

// splitPath splits "a.b[1].c[x.y]" into "a", "b", "1", "c", "x.y".
func splitPath(path string) []string {
	var segs []string
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(segs, path[1:])
			}
			segs = append(segs, path[1:end])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, path[:end])
			path = path[end:]
		}
	}
	return segs
}
