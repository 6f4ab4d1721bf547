package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// redacted replaces secrets in printed configuration.
const redacted = "xxxxx"

// YAML renders c as a configuration file, every key present, in the order of
// the package documentation; it is what `wcpd config print` shows. The
// password of database.url (user info or a password query parameter) is
// replaced by "xxxxx", and so are acme.eabHmacKey and every value of
// acme.dns.env (its names are shown). Apart from those secrets, loading the
// output gives back c.
func (c Config) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{}
	for _, f := range schema() {
		parts := strings.Split(f.key, ".")
		parent := root
		for i, section := range parts[:len(parts)-1] {
			path := strings.Join(parts[:i+1], ".")
			node := sections[path]
			if node == nil {
				node = &yaml.Node{Kind: yaml.MappingNode}
				sections[path] = node
				parent.Content = append(parent.Content, scalar("!!str", section), node)
			}
			parent = node
		}
		parent.Content = append(parent.Content, scalar("!!str", parts[len(parts)-1]), valueNode(f, &c))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// valueNode renders one value the way the decoder reads it back.
func valueNode(f field, c *Config) *yaml.Node {
	switch v := f.get(c).(type) {
	case string:
		switch {
		case f.key == "database.url":
			v = RedactURL(v)
		case f.key == "acme.eabHmacKey" && v != "":
			v = redacted
		}
		return scalar("!!str", v)
	case int:
		return scalar("!!int", strconv.Itoa(v))
	case time.Duration:
		return scalar("!!str", formatDuration(v))
	case fs.FileMode:
		return scalar("!!int", fmt.Sprintf("%04o", uint32(v)))
	case bool:
		return scalar("!!bool", strconv.FormatBool(v))
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, s := range v {
			n.Content = append(n.Content, scalar("!!str", s))
		}
		return n
	case map[string]string:
		// Every value may be a credential: the names only.
		n := &yaml.Node{Kind: yaml.MappingNode}
		if len(v) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			n.Content = append(n.Content, scalar("!!str", k), scalar("!!str", redacted))
		}
		return n
	default:
		return scalar("!!str", fmt.Sprint(v))
	}
}

// RedactURL returns a database URL fit for printing and logging: the password
// of the user info and any query parameter whose name contains "password"
// become "xxxxx". A string that is not a postgres URL is replaced whole.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return redacted
	}
	if q := u.Query(); len(q) > 0 {
		changed := false
		for name := range q {
			if strings.Contains(strings.ToLower(name), "password") {
				q.Set(name, redacted)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}
