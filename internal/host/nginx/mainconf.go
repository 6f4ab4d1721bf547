package nginx

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// The main nginx.conf belongs to the distribution and the admin. WCP360
// only adds one include line for its http-level file, inside the http
// block, and keeps every other byte as it was. This is a tokenizer for
// nginx's syntax, just enough to find the http block, the include line and
// the pid and user directives.

// directive is one parsed directive with its byte offsets in the file.
type directive struct {
	name     string
	args     []string
	start    int          // offset of the name
	children []*directive // for block directives
	block    bool
	closeAt  int // offset of the block's '}'
}

type token struct {
	text   string
	start  int
	quoted bool
}

// tokenize splits nginx configuration syntax into tokens: words (quotes
// removed, escapes kept as nginx keeps them), ";", "{" and "}"; comments
// are dropped.
func tokenize(data []byte) ([]token, error) {
	var toks []token
	i := 0
	for i < len(data) {
		c := data[i]
		switch c {
		case ' ', '\t', '\r', '\n':
			i++
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case ';', '{', '}':
			toks = append(toks, token{text: string(c), start: i})
			i++
		case '"', '\'':
			start := i
			i++
			var b strings.Builder
			for ; i < len(data) && data[i] != c; i++ {
				if data[i] == '\\' && i+1 < len(data) {
					b.WriteByte(data[i])
					i++
				}
				b.WriteByte(data[i])
			}
			if i >= len(data) {
				return nil, fmt.Errorf("line %d: unterminated quote", lineOf(data, start))
			}
			i++
			toks = append(toks, token{text: b.String(), start: start, quoted: true})
		default:
			start := i
			for i < len(data) && strings.IndexByte(" \t\r\n;{}", data[i]) < 0 {
				if data[i] == '\\' && i+1 < len(data) {
					i++
				}
				i++
			}
			toks = append(toks, token{text: string(data[start:i]), start: start})
		}
	}
	return toks, nil
}

func lineOf(data []byte, off int) int { return bytes.Count(data[:off], []byte("\n")) + 1 }

// parseConf parses a whole file into its top-level directives.
func parseConf(data []byte) ([]*directive, error) {
	toks, err := tokenize(data)
	if err != nil {
		return nil, err
	}
	pos := 0
	dirs, err := parseBlock(data, toks, &pos, false)
	if err != nil {
		return nil, err
	}
	return dirs, nil
}

func parseBlock(data []byte, toks []token, pos *int, nested bool) ([]*directive, error) {
	var dirs []*directive
	var cur *directive
	for *pos < len(toks) {
		t := toks[*pos]
		*pos++
		if !t.quoted {
			switch t.text {
			case ";":
				if cur == nil {
					return nil, fmt.Errorf("line %d: unexpected ';'", lineOf(data, t.start))
				}
				dirs, cur = append(dirs, cur), nil
				continue
			case "{":
				if cur == nil {
					return nil, fmt.Errorf("line %d: unexpected '{'", lineOf(data, t.start))
				}
				children, err := parseBlock(data, toks, pos, true)
				if err != nil {
					return nil, err
				}
				cur.block, cur.children = true, children
				cur.closeAt = toks[*pos-1].start
				dirs, cur = append(dirs, cur), nil
				continue
			case "}":
				if !nested || cur != nil {
					return nil, fmt.Errorf("line %d: unexpected '}'", lineOf(data, t.start))
				}
				return dirs, nil
			}
		}
		if cur == nil {
			cur = &directive{name: t.text, start: t.start}
		} else {
			cur.args = append(cur.args, t.text)
		}
	}
	if nested || cur != nil {
		return nil, errors.New("unexpected end of file")
	}
	return dirs, nil
}

// mainConf is what WCP360 reads from nginx.conf.
type mainConf struct {
	http *directive
	// pid, user and errorLog are the main-context directives' first
	// values ("" if absent).
	pid, user, errorLog string
	// hasInclude: the http block already includes our file.
	hasInclude bool
	// hashSizes: the http block sets server_names_hash_* itself.
	hashSizes bool
}

func readMainConf(data []byte, include string) (mainConf, error) {
	dirs, err := parseConf(data)
	if err != nil {
		return mainConf{}, err
	}
	var mc mainConf
	for _, d := range dirs {
		switch {
		case d.name == "pid" && len(d.args) > 0:
			mc.pid = d.args[0]
		case d.name == "user" && len(d.args) > 0:
			mc.user = d.args[0]
		case d.name == "error_log" && len(d.args) > 0 && mc.errorLog == "":
			mc.errorLog = d.args[0]
		case d.name == "http" && d.block:
			if mc.http != nil {
				return mainConf{}, errors.New("two http blocks")
			}
			mc.http = d
		}
	}
	if mc.http == nil {
		return mainConf{}, errors.New("no http block")
	}
	for _, d := range mc.http.children {
		switch {
		case d.name == "include" && len(d.args) == 1 && d.args[0] == include:
			mc.hasInclude = true
		case strings.HasPrefix(d.name, "server_names_hash_"):
			mc.hashSizes = true
		}
	}
	return mc, nil
}

// includeLine is what EnsureRunning adds to the http block.
func includeLine(path string) string {
	return "\tinclude " + path + "; # WCP360: its sites and default server\n"
}

// withInclude returns nginx.conf with our include line added at the end of
// the http block (or unchanged when it is there), and whether it changed.
// Every other byte is kept.
func withInclude(data []byte, include string) ([]byte, bool, error) {
	mc, err := readMainConf(data, include)
	if err != nil {
		return nil, false, err
	}
	if mc.hasInclude {
		return data, false, nil
	}
	at := mc.http.closeAt
	lineStart := bytes.LastIndexByte(data[:at], '\n') + 1
	line := includeLine(include)
	if len(bytes.TrimSpace(data[lineStart:at])) == 0 {
		at = lineStart // the '}' is alone on its line: insert a line before it
	} else {
		line = "\n" + line
	}
	out := make([]byte, 0, len(data)+len(line))
	out = append(out, data[:at]...)
	out = append(out, line...)
	out = append(out, data[at:]...)
	return out, true, nil
}
