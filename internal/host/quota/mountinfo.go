package quota

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrParse is returned for a mountinfo line this package cannot read.
var ErrParse = errors.New("quota: cannot parse")

// mount is one line of /proc/<pid>/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8)  (9)    (10)        (11)
type mount struct {
	id, parent   int
	major, minor uint32
	// root is the directory of the file system mounted here (not "/" for
	// a bind mount of a subdirectory); point is the mount point.
	root, point string
	fstype      string
	source      string
	// superOpts are the file system's own options ("rw,prjquota").
	superOpts []string
}

func (m mount) dev() string { return fmt.Sprintf("%d:%d", m.major, m.minor) }

// parseMountinfo parses the text of a mountinfo file.
func parseMountinfo(s string) ([]mount, error) {
	var out []mount
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		m, err := parseMountLine(l)
		if err != nil {
			return nil, fmt.Errorf("%w mountinfo line %q", ErrParse, strings.TrimSpace(l))
		}
		out = append(out, m)
	}
	return out, nil
}

func parseMountLine(l string) (mount, error) {
	// The kernel separates fields with one space, and escapes spaces,
	// tabs, newlines and backslashes inside them.
	f := strings.Split(strings.TrimSuffix(l, "\n"), " ")
	// The optional fields (7) end at the first "-" from the seventh field on.
	sep := -1
	if len(f) > 6 {
		if i := slices.Index(f[6:], "-"); i >= 0 {
			sep = 6 + i
		}
	}
	if sep < 0 || len(f) < sep+4 || slices.Contains(f, "") {
		return mount{}, ErrParse
	}
	var m mount
	var err error
	if m.id, err = strconv.Atoi(f[0]); err != nil {
		return mount{}, err
	}
	if m.parent, err = strconv.Atoi(f[1]); err != nil {
		return mount{}, err
	}
	maj, mnr, ok := strings.Cut(f[2], ":")
	if !ok {
		return mount{}, ErrParse
	}
	if m.major, err = parseUint32(maj); err != nil {
		return mount{}, err
	}
	if m.minor, err = parseUint32(mnr); err != nil {
		return mount{}, err
	}
	if m.root, err = unescape(f[3]); err != nil {
		return mount{}, err
	}
	if m.point, err = unescape(f[4]); err != nil {
		return mount{}, err
	}
	if !filepath.IsAbs(m.point) {
		return mount{}, ErrParse
	}
	m.point = filepath.Clean(m.point)
	if m.fstype, err = unescape(f[sep+1]); err != nil {
		return mount{}, err
	}
	if m.source, err = unescape(f[sep+2]); err != nil {
		return mount{}, err
	}
	opts, err := unescape(f[sep+3])
	if err != nil {
		return mount{}, err
	}
	m.superOpts = strings.Split(opts, ",")
	return m, nil
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// unescape undoes the kernel's octal escapes in mountinfo: "\040" for a
// space, "\011" tab, "\012" newline, "\134" backslash.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", strconv.ErrSyntax
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}

// escape is the kernel's escaping of a mountinfo field (mangle() in
// fs/proc_namespace.c): space, tab, newline and backslash as octal.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// mountOf is the mount that holds the absolute, clean, symlink-free path:
// the one with the longest mount point above it and, of mounts stacked on
// that point, the top one (the one no other of them is mounted on).
func mountOf(mounts []mount, path string) (mount, bool) {
	var stack []mount
	for _, m := range mounts {
		if !under(path, m.point) {
			continue
		}
		if len(stack) > 0 && len(m.point) > len(stack[0].point) {
			stack = stack[:0]
		}
		if len(stack) == 0 || m.point == stack[0].point {
			stack = append(stack, m)
		}
	}
	if len(stack) == 0 {
		return mount{}, false
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if !slices.ContainsFunc(stack, func(o mount) bool { return o.parent == stack[i].id }) {
			return stack[i], true
		}
	}
	return stack[len(stack)-1], true // a cycle: only in made-up input
}

// under says whether path is dir or inside it.
func under(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}
