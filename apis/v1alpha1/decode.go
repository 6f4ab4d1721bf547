package v1alpha1

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Input limits of Decode.
const (
	MaxDocumentBytes = 1 << 20 // one document
	MaxManifestBytes = 8 << 20 // a whole file or request
	MaxDocuments     = 5000
	// MaxDecodeErrors stops a hopeless input from producing millions of messages.
	MaxDecodeErrors = 1000
)

// ErrUnknownKind is wrapped by ParseKind and New for a kind WCP360 does not know.
var ErrUnknownKind = errors.New("unknown kind")

// DecodeError is one problem of a manifest, located by document (1-based,
// counting documents that are not empty), line and column (1-based; 0 when
// unknown) and field path.
type DecodeError struct {
	Source   string
	Document int
	Line     int
	Column   int
	Path     string
	Msg      string
	// Field is the validation error this problem came from, if any.
	Field *FieldError
}

// Error returns e.g.
// `file.yaml: document 2, line 14: spec.aliases[1]: Invalid value "a;b": must be a valid hostname`.
func (e *DecodeError) Error() string {
	var where []string
	if e.Document > 0 {
		where = append(where, "document "+strconv.Itoa(e.Document))
	}
	if e.Line > 0 {
		where = append(where, "line "+strconv.Itoa(e.Line))
	}
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source + ": ")
	}
	if len(where) > 0 {
		b.WriteString(strings.Join(where, ", ") + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the validation error behind e, if any.
func (e *DecodeError) Unwrap() error {
	if e.Field == nil {
		return nil
	}
	return e.Field
}

// DecodeErrors is every problem found in an input.
type DecodeErrors []*DecodeError

// Error is one problem per line.
func (l DecodeErrors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find each *DecodeError (and each *FieldError).
func (l DecodeErrors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// ParseKind accepts a kind as users type it on a command line: "Tenant",
// "tenant", "tenants", "domain(s)", "database(s)" or "db".
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "tenant", "tenants":
		return KindTenant, nil
	case "domain", "domains":
		return KindDomain, nil
	case "database", "databases", "db", "dbs":
		return KindDatabase, nil
	}
	return "", fmt.Errorf("%w %q: want tenant, domain or database", ErrUnknownKind, s)
}

// New returns a new, empty object of the kind (exactly "Tenant", "Domain" or "Database").
func New(kind Kind) (Object, error) {
	switch kind {
	case KindTenant:
		return &Tenant{}, nil
	case KindDomain:
		return &Domain{}, nil
	case KindDatabase:
		return &Database{}, nil
	}
	return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknownKind, kind, kindList())
}

func kindList() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Decode reads one or more YAML (or JSON) documents, separated by "---"
// lines, into objects. It is strict: unknown or duplicate fields, wrong
// types, YAML aliases, read-only metadata, a status section and unknown
// apiVersions or kinds are errors. Every object is defaulted and validated.
// Empty documents are skipped. Either all objects are returned, or a
// DecodeErrors with every problem in every document; source names the
// input in messages.
func Decode(data []byte, source string) ([]Object, error) {
	if len(data) > MaxManifestBytes {
		return nil, DecodeErrors{{Source: source, Msg: fmt.Sprintf("input is larger than %d bytes", MaxManifestBytes)}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	raws := splitDocuments(data)
	if len(raws) > MaxDocuments {
		return nil, DecodeErrors{{Source: source, Msg: fmt.Sprintf("more than %d documents", MaxDocuments)}}
	}
	b := &batch{source: source}
	stopped := b.decodeAll(raws)
	b.errs = append(b.errs, crossCheck(source, b.objs, b.docOf, b.roots)...)
	errs := b.errs
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *DecodeError) int {
			if a.Document != b.Document {
				return a.Document - b.Document
			}
			return a.Line - b.Line
		})
		return nil, capErrors(errs, source, stopped)
	}
	return b.objs, nil
}

// batch collects the objects of one Decode call and the document and node
// tree of each, for the checks across documents.
type batch struct {
	source string
	errs   DecodeErrors
	objs   []Object
	docOf  []int
	roots  []*node
}

// decodeAll decodes every document; it reports whether it stopped early
// because of too many problems.
func (b *batch) decodeAll(raws []rawDocument) (stopped bool) {
	number := 0
	for _, raw := range raws {
		root, parseProbs := decodeRawDocument(raw)
		if root == nil && len(parseProbs) == 0 {
			continue // an empty document
		}
		number++
		var obj Object
		var probs []problem
		if root != nil {
			obj, probs = decodeObject(root, "")
		}
		for _, p := range parseProbs { // after decodeObject, which fills in their paths
			probs = append(probs, *p)
		}
		b.errs = appendProblems(b.errs, b.source, number, probs)
		if len(b.errs) >= MaxDecodeErrors {
			return true
		}
		if obj != nil {
			b.objs, b.docOf, b.roots = append(b.objs, obj), append(b.docOf, number), append(b.roots, root)
		}
	}
	return false
}

// decodeRawDocument parses one document; the node is nil when the
// document is empty or could not be parsed at all.
func decodeRawDocument(raw rawDocument) (*node, []*problem) {
	if len(raw.data) > MaxDocumentBytes {
		return nil, []*problem{{pos: pos{raw.firstLine, 1},
			msg: fmt.Sprintf("the document is larger than %d bytes", MaxDocumentBytes)}}
	}
	return parseYAMLDocument(raw)
}

// DecodeObjectJSON decodes a single JSON object of the given kind, as the
// REST API receives it, as strictly as Decode. apiVersion and kind may be
// left out; when present they must match. Errors are DecodeErrors whose
// Line and Column point into data.
func DecodeObjectJSON(kind Kind, data []byte) (Object, error) {
	if _, err := New(kind); err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentBytes {
		return nil, DecodeErrors{{Msg: fmt.Sprintf("the body is larger than %d bytes", MaxDocumentBytes)}}
	}
	root, perr := parseJSON(data)
	if perr != nil {
		return nil, appendProblems(nil, "", 0, []problem{*perr})
	}
	obj, probs := decodeObject(root, kind)
	if errs := appendProblems(nil, "", 0, probs); len(errs) > 0 {
		return nil, errs
	}
	return obj, nil
}

// readOnly are the fields a manifest may not set, with the reason.
var readOnly = map[string]string{
	"status":                     "status is written by wcpd; remove it from the manifest",
	"metadata.uid":               "set by wcpd; remove it (of the server-set fields only metadata.resourceVersion may be given)",
	"metadata.generation":        "set by wcpd; remove it (of the server-set fields only metadata.resourceVersion may be given)",
	"metadata.creationTimestamp": "set by wcpd; remove it (of the server-set fields only metadata.resourceVersion may be given)",
	"metadata.updateTimestamp":   "set by wcpd; remove it (of the server-set fields only metadata.resourceVersion may be given)",
	"metadata.deletionTimestamp": "set by wcpd; remove it (of the server-set fields only metadata.resourceVersion may be given)",
}

// decodeObject decodes, defaults and validates one document. want is the
// kind the caller expects ("" to take it from the document, which must then
// carry apiVersion and kind). The object is nil when the kind is unknown.
func decodeObject(root *node, want Kind) (Object, []problem) {
	if root.kind != nodeMap {
		return nil, []problem{{pos: pos{root.line, root.col},
			msg: "a manifest must be a mapping with apiVersion, kind, metadata and spec, not a " + root.kind.String()}}
	}
	kind, probs := checkTypeMeta(root, want)
	if kind == "" {
		return nil, probs
	}
	obj, _ := New(kind)
	d := &strictDecoder{refused: readOnly}
	d.decode(reflect.ValueOf(obj).Elem(), root, "")
	probs = append(probs, d.problems...)
	obj.Default()
	for _, fe := range obj.Validate() {
		if !coveredBy(fe.Path, probs) {
			probs = append(probs, problem{pos: root.lookup(fe.Path), path: fe.Path, msg: fe.ErrorBody(), field: fe})
		}
	}
	return obj, probs
}

// checkTypeMeta returns the document's kind with any problems of apiVersion
// and kind. The kind is "" when the document cannot be decoded further: an
// unknown kind or apiVersion. A missing apiVersion is reported but the
// document is still decoded, to find its other problems.
func checkTypeMeta(root *node, want Kind) (Kind, []problem) {
	var probs []problem
	report := func(path, msg string) {
		probs = append(probs, problem{pos: root.lookup(path), path: path, msg: msg})
	}
	apiVersion, kind := nonNull(root.get("apiVersion")), nonNull(root.get("kind"))
	got := want
	switch {
	case kind == nil && want == "":
		report("kind", "Required value: want one of "+kindList())
	case kind != nil:
		got = Kind(kind.text)
		if _, err := New(got); err != nil || kind.kind != nodeString || (want != "" && got != want) {
			report("kind", kindMismatch(kind.text, want))
			got = ""
		}
	}
	switch {
	case apiVersion == nil && want == "":
		report("apiVersion", "Required value: want "+APIVersion)
	case apiVersion != nil && (apiVersion.kind != nodeString || apiVersion.text != APIVersion):
		report("apiVersion", fmt.Sprintf("unknown apiVersion %s: want %s", formatValue(apiVersion.text), APIVersion))
		got = ""
	}
	return got, probs
}

func nonNull(n *node) *node {
	if n == nil || n.kind == nodeNull {
		return nil
	}
	return n
}

func kindMismatch(got string, want Kind) string {
	if want != "" {
		return fmt.Sprintf("kind %s does not match this endpoint: want %s", formatValue(got), want)
	}
	return fmt.Sprintf("unknown kind %s: want one of %s", formatValue(got), kindList())
}

// coveredBy reports whether a decode problem was already reported at path
// or above it, so that validation does not repeat it.
func coveredBy(path string, probs []problem) bool {
	for _, p := range probs {
		if p.path == "" {
			continue
		}
		if path == p.path || strings.HasPrefix(path, p.path+".") || strings.HasPrefix(path, p.path+"[") {
			return true
		}
	}
	return false
}

// appendProblems sorts a document's problems by position and appends them.
func appendProblems(errs DecodeErrors, source string, doc int, probs []problem) DecodeErrors {
	slices.SortStableFunc(probs, func(a, b problem) int {
		if a.pos.line != b.pos.line {
			return a.pos.line - b.pos.line
		}
		return a.pos.col - b.pos.col
	})
	for _, p := range probs {
		if p.hidden {
			continue
		}
		errs = append(errs, &DecodeError{Source: source, Document: doc, Line: p.pos.line,
			Column: p.pos.col, Path: p.path, Msg: p.msg, Field: p.field})
	}
	return errs
}

func capErrors(errs DecodeErrors, source string, stopped bool) DecodeErrors {
	if len(errs) <= MaxDecodeErrors && !stopped {
		return errs
	}
	return append(errs[:min(len(errs), MaxDecodeErrors):MaxDecodeErrors],
		&DecodeError{Source: source, Msg: fmt.Sprintf("%d problems or more; stopped", MaxDecodeErrors)})
}
