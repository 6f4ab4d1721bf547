package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// LoadOptions says where [Load] reads the configuration from.
type LoadOptions struct {
	// Path is the YAML file; empty means [DefaultPath].
	Path string
	// Required makes a missing file an error (an explicit --config was
	// given). Otherwise a missing file means defaults plus environment.
	Required bool
	// Environ is the environment as "NAME=value" strings; nil means
	// os.Environ(). Pass an empty, non-nil slice for no environment.
	Environ []string
}

// Load builds the configuration from defaults, the file and the environment
// (see the package documentation for precedence and names) and validates it.
//
// Problems with keys and values are returned together as [Errors]. A file
// that cannot be read or is not well-formed YAML is returned as a plain error
// (errors.Is(err, fs.ErrNotExist) for a missing required file). On error the
// returned Config is the zero value.
func Load(opts LoadOptions) (Config, error) {
	path := opts.Path
	if path == "" {
		path = DefaultPath
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}

	fields := schema()
	def := Default()
	v := viper.New()
	for _, f := range fields {
		v.SetDefault(f.key, f.get(&def))
	}
	// sources maps a key to where its effective value came from.
	sources := map[string]string{"node": "default (host name)"}
	var problems Errors

	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		fd := newFileDecoder(path, fields)
		if err := fd.decode(data); err != nil {
			return Config{}, err
		}
		problems = append(problems, fd.problems...)
		if err := v.MergeConfigMap(nest(fd.values)); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		for key, line := range fd.lines {
			sources[key] = fmt.Sprintf("%s:%d", path, line)
		}
	case errors.Is(err, fs.ErrNotExist) && !opts.Required:
		// Defaults and environment only.
	default:
		return Config{}, fmt.Errorf("config: %w", err)
	}

	env := decodeEnv(environ, fields)
	problems = append(problems, env.problems...)
	for key, val := range env.values {
		v.Set(key, val)
		sources[key] = "env " + env.names[key]
	}

	var cfg Config
	for _, f := range fields {
		if !f.set(&cfg, v.Get(f.key)) {
			return Config{}, fmt.Errorf("config: internal error: %s has type %T", f.key, v.Get(f.key))
		}
	}
	if err := cfg.Validate(); err != nil {
		var invalid Errors
		if !errors.As(err, &invalid) {
			return Config{}, err
		}
		for _, e := range invalid {
			e.Source = sources[e.Key]
		}
		problems = append(problems, invalid...)
	}
	if len(problems) > 0 {
		return Config{}, problems
	}
	return cfg, nil
}

// nest turns {"a.b": 1, "a.c.d": 2, "e": 3} into {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
// for viper.
func nest(flat map[string]any) map[string]any {
	out := map[string]any{}
	for key, val := range flat {
		parts := strings.Split(key, ".")
		m := out
		for _, section := range parts[:len(parts)-1] {
			child, _ := m[section].(map[string]any)
			if child == nil {
				child = map[string]any{}
				m[section] = child
			}
			m = child
		}
		m[parts[len(parts)-1]] = val
	}
	return out
}

// fileDecoder checks a YAML document against the schema, key by key.
type fileDecoder struct {
	path     string
	fields   map[string]field    // by key
	children map[string][]string // names allowed under a section ("acme", "acme.dns"); "" is the top level
	values   map[string]any      // decoded leaf values by key
	lines    map[string]int      // line of each decoded key
	problems Errors
}

func newFileDecoder(path string, fields []field) *fileDecoder {
	fd := &fileDecoder{
		path:     path,
		fields:   map[string]field{},
		children: map[string][]string{},
		values:   map[string]any{},
		lines:    map[string]int{},
	}
	for _, f := range fields {
		fd.fields[f.key] = f
		parent := ""
		for i, name := range strings.Split(f.key, ".") {
			key := name
			if i > 0 {
				key = parent + "." + name
			}
			if !slices.Contains(fd.children[parent], name) {
				fd.children[parent] = append(fd.children[parent], name)
			}
			parent = key
		}
	}
	return fd
}

// decode reads one YAML document. It returns an error only when the file is
// not usable at all; problems with keys are collected in fd.problems.
func (fd *fileDecoder) decode(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file
		}
		return fmt.Errorf("config %s: %w", fd.path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config %s: %w", fd.path, err)
		}
		return fmt.Errorf("config %s:%d: only one YAML document is allowed", fd.path, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := resolve(doc.Content[0])
	switch {
	case root.Kind == yaml.MappingNode:
		fd.walk(root, "")
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		// A document holding only "~": no settings.
	default:
		return fmt.Errorf("config %s:%d: %w: the document must be a mapping of keys, got %s",
			fd.path, root.Line, ErrWrongType, describe(root))
	}
	return nil
}

// walk checks the keys of mapping m, which is the section prefix ("" for
// the top level).
func (fd *fileDecoder) walk(m *yaml.Node, prefix string) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := resolve(m.Content[i]), resolve(m.Content[i+1])
		name := kn.Value
		if kn.Kind != yaml.ScalarNode {
			name = "<" + describe(kn) + ">"
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if first, dup := seen[name]; dup {
			fd.add(key, kn.Line, ErrInvalidValue, fmt.Sprintf("duplicate key (first set at line %d)", first))
			continue
		}
		seen[name] = kn.Line

		if f, ok := fd.fields[key]; ok && kn.Kind == yaml.ScalarNode {
			val, p := decodeNode(f, vn)
			if p != nil {
				fd.add(key, kn.Line, p.class, p.msg)
				continue
			}
			fd.values[key] = val
			fd.lines[key] = kn.Line
			continue
		}
		if _, ok := fd.children[key]; ok && key != "" && kn.Kind == yaml.ScalarNode {
			switch {
			case vn.Kind == yaml.MappingNode:
				fd.walk(vn, key)
			case vn.Kind == yaml.ScalarNode && vn.ShortTag() == "!!null":
				// "section:" with every key commented out.
			default:
				fd.add(key, kn.Line, ErrWrongType, "want a mapping of keys, got "+describe(vn))
			}
			continue
		}
		hint := suggest(name, fd.children[prefix])
		if name == "<<" {
			hint = " (YAML merge keys are not supported)"
		}
		fd.add(key, kn.Line, ErrUnknownKey, "unknown key"+hint)
	}
}

func (fd *fileDecoder) add(key string, line int, class error, msg string) {
	fd.problems = append(fd.problems, &FieldError{
		Key:    key,
		Source: fmt.Sprintf("%s:%d", fd.path, line),
		Class:  class,
		Msg:    msg,
	})
}

// resolve follows an alias (*name) to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// describe names the YAML type and value of n for a message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag := n.ShortTag(); tag {
		case "!!str":
			return "string " + quote(n.Value)
		case "!!int":
			return "integer " + n.Value
		case "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "no value"
		default:
			return "a value tagged " + quote(tag)
		}
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "a value"
}

// problem is the class and message of a value that cannot be decoded.
type problem struct {
	class error
	msg   string
}

// decodeNode decodes a leaf value from the file.
func decodeNode(f field, n *yaml.Node) (any, *problem) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, &problem{ErrWrongType, "has no value (remove the key to use the default)"}
	}
	want := map[kind]string{
		kindString:   "a string",
		kindInt:      "an integer",
		kindDuration: "a duration such as 30s or 1h30m",
		kindMode:     "octal permission bits such as 0600",
		kindBool:     "true or false",
	}[f.kind]
	wrong := func() (any, *problem) {
		return nil, &problem{ErrWrongType, "want " + want + ", got " + describe(n)}
	}
	switch f.kind {
	case kindStrings:
		return decodeStrings(n)
	case kindStringMap:
		return decodeStringMap(n)
	case kindBool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return wrong()
		}
		return b, nil
	default: // a scalar
	}
	if n.Kind != yaml.ScalarNode {
		return wrong()
	}
	tag := n.ShortTag()
	switch f.kind {
	case kindString:
		if tag != "!!str" {
			return nil, &problem{ErrWrongType, "want " + want + ", got " + describe(n) + " (quote it)"}
		}
		return n.Value, nil
	case kindInt:
		if tag != "!!int" {
			return wrong()
		}
		var i int
		if err := n.Decode(&i); err != nil {
			return nil, &problem{ErrInvalidValue, "integer " + n.Value + " is out of range"}
		}
		return i, nil
	case kindDuration:
		if tag != "!!str" {
			return wrong()
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			return wrong()
		}
		return d, nil
	case kindMode:
		if tag != "!!str" && tag != "!!int" {
			return wrong()
		}
		return parseMode(n.Value)
	default: // decoded above
	}
	return wrong()
}

// decodeStrings decodes a list of strings; an empty list is nil.
func decodeStrings(n *yaml.Node) (any, *problem) {
	if n.Kind != yaml.SequenceNode {
		return nil, &problem{ErrWrongType, "want a list of strings, got " + describe(n)}
	}
	var out []string
	for i, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			return nil, &problem{ErrWrongType, fmt.Sprintf("item %d: want a string, got %s (quote it)", i+1, describe(item))}
		}
		out = append(out, item.Value)
	}
	return out, nil
}

// decodeStringMap decodes a mapping of names to strings (numbers and
// booleans are taken as written); an empty mapping is nil. The values are
// secrets: no message shows one.
func decodeStringMap(n *yaml.Node) (any, *problem) {
	if n.Kind != yaml.MappingNode {
		return nil, &problem{ErrWrongType, "want a mapping of names to strings, got " + describeKind(n)}
	}
	var out map[string]string
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), resolve(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode || kn.ShortTag() != "!!str" {
			return nil, &problem{ErrWrongType, "a name must be a string, got " + describe(kn)}
		}
		switch {
		case vn.Kind != yaml.ScalarNode:
			return nil, &problem{ErrWrongType, fmt.Sprintf("%s: want a string, got %s", kn.Value, describeKind(vn))}
		case vn.ShortTag() == "!!null":
			return nil, &problem{ErrWrongType, kn.Value + ": has no value"}
		}
		if _, dup := out[kn.Value]; dup {
			return nil, &problem{ErrInvalidValue, kn.Value + ": set twice"}
		}
		if out == nil {
			out = map[string]string{}
		}
		out[kn.Value] = vn.Value
	}
	return out, nil
}

// describeKind names n's YAML type without its value.
func describeKind(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return "a single value"
	}
	return describe(n)
}

// parseMode reads permission bits written in octal: 0600, 0o600, 600.
func parseMode(s string) (any, *problem) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if digits == "" || strings.Trim(digits, "01234567") != "" {
		return nil, &problem{ErrWrongType, "want octal permission bits such as 0600, got " + quote(s)}
	}
	m, err := strconv.ParseUint(digits, 8, 32)
	if err != nil {
		return nil, &problem{ErrInvalidValue, "must be permission bits at most 0777, got " + quote(s)}
	}
	return fs.FileMode(m), nil
}

// envResult is what the WCP_* environment variables set.
type envResult struct {
	values   map[string]any    // decoded values by key
	names    map[string]string // variable that set each key
	problems Errors
}

// decodeEnv decodes the WCP_* variables of environ. When a variable appears
// more than once the last one wins, as in os/exec.
func decodeEnv(environ []string, fields []field) envResult {
	res := envResult{values: map[string]any{}, names: map[string]string{}}
	byName := map[string]field{}
	for _, f := range fields {
		byName[EnvVar(f.key)] = f
	}
	aliases := envAliases()
	for alias, key := range aliases {
		for _, f := range fields {
			if f.key == key {
				byName[alias] = f
			}
		}
	}
	known := make([]string, 0, len(byName))
	for name := range byName {
		known = append(known, name)
	}
	slices.Sort(known)

	set := map[string]string{}
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, "WCP_") {
			set[name] = val
		}
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	slices.Sort(names)

	for _, name := range names {
		if isForeignEnv(name) {
			continue
		}
		f, ok := byName[name]
		if !ok {
			res.problems = append(res.problems, &FieldError{
				Key: name, Source: "env", Class: ErrUnknownKey,
				Msg: "not a configuration variable" + suggest(name, known),
			})
			continue
		}
		if _, isAlias := aliases[name]; isAlias {
			if _, both := set[EnvVar(f.key)]; both {
				res.problems = append(res.problems, &FieldError{
					Key: f.key, Source: "env " + name, Class: ErrInvalidValue,
					Msg: "set twice, by " + name + " and " + EnvVar(f.key) + "; keep one",
				})
				continue
			}
		}
		val, p := decodeEnvValue(f, set[name])
		if p != nil {
			res.problems = append(res.problems, &FieldError{Key: f.key, Source: "env " + name, Class: p.class, Msg: p.msg})
			continue
		}
		res.values[f.key] = val
		res.names[f.key] = name
	}
	return res
}

// decodeEnvValue decodes the string s of an environment variable for f.
func decodeEnvValue(f field, s string) (any, *problem) {
	switch f.kind {
	case kindInt:
		i, err := strconv.Atoi(s)
		if errors.Is(err, strconv.ErrRange) {
			return nil, &problem{ErrInvalidValue, "integer " + quote(s) + " is out of range"}
		}
		if err != nil {
			return nil, &problem{ErrWrongType, "want an integer, got " + quote(s)}
		}
		return i, nil
	case kindDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, &problem{ErrWrongType, "want a duration such as 30s or 1h30m, got " + quote(s)}
		}
		return d, nil
	case kindMode:
		return parseMode(s)
	case kindBool:
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, &problem{ErrWrongType, "want true or false, got " + quote(s)}
	case kindStrings:
		var out []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	case kindStringMap:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(s), &doc); err != nil || len(doc.Content) == 0 {
			return nil, &problem{ErrWrongType, "want a YAML mapping such as {NAME: value}"}
		}
		return decodeStringMap(resolve(doc.Content[0]))
	default:
		return s, nil
	}
}
