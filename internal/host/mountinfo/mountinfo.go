package mountinfo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrParse is wrapped by the errors of Parse, ParseLine, Read and Unescape
// for text that is not mountinfo.
var ErrParse = errors.New("mountinfo: cannot parse")

// Mount is one line of mountinfo.
type Mount struct {
	// ID is the mount's id (1), Parent its parent's (2); the parent of the
	// root of a namespace is outside it.
	ID, Parent int
	// Major and Minor are the device of the file system (3).
	Major, Minor uint32
	// Root is the directory of the file system mounted here (4): not "/"
	// for a bind mount of a subdirectory. Point is the mount point (5),
	// absolute and clean.
	Root, Point string
	// FSType is the file system's type (9), Source what was mounted (10):
	// a device, or anything the file system takes; it may be empty.
	FSType, Source string
	// Options are the mount's own options (6: "rw", "nosuid", "relatime");
	// SuperOptions the file system's (11: "rw", "prjquota").
	Options, SuperOptions []string
}

// Dev is the mount's device as major:minor ("8:1").
func (m Mount) Dev() string { return fmt.Sprintf("%d:%d", m.Major, m.Minor) }

// HasSuperOption says whether the file system is mounted with option o
// ("prjquota", "memory", "name=systemd").
func (m Mount) HasSuperOption(o string) bool { return slices.Contains(m.SuperOptions, o) }

// Read reads and parses the mountinfo file at path
// ("/proc/self/mountinfo").
func Read(path string) ([]Mount, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mounts, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return mounts, nil
}

// Parse parses the text of a mountinfo file, skipping blank lines; a line
// it cannot read is an error (ErrParse).
func Parse(s string) ([]Mount, error) {
	var out []Mount
	for l := range strings.Lines(s) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		m, err := ParseLine(l)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseLine parses one line of mountinfo, with or without its newline.
// Fields past the super options, which a later kernel may add, are
// ignored.
func ParseLine(l string) (Mount, error) {
	m, err := parseLine(strings.TrimSuffix(l, "\n"))
	if err != nil {
		return Mount{}, fmt.Errorf("%w line %q: %w", ErrParse, strings.TrimSpace(l), err)
	}
	return m, nil
}

var (
	errFields = errors.New("want fields (1) to (6), optional fields, \"-\" and three more, one space apart")
	errPoint  = errors.New("the mount point is not absolute")
)

func parseLine(l string) (Mount, error) {
	if strings.Contains(l, "\n") {
		return Mount{}, errors.New("more than one line")
	}
	f := strings.Split(l, " ")
	// The optional fields (7) end at the first "-" from the seventh field on.
	sep := -1
	if len(f) > 6 {
		if i := slices.Index(f[6:], "-"); i >= 0 {
			sep = 6 + i
		}
	}
	if sep < 0 || len(f) < sep+4 {
		return Mount{}, errFields
	}
	// Every field but the source (10) has something in it: mount(2) takes
	// "" for a source, which the kernel writes as is.
	for i, s := range f[:sep+4] {
		if s == "" && i != sep+2 {
			return Mount{}, errFields
		}
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return Mount{}, err
	}
	if m.Parent, err = strconv.Atoi(f[1]); err != nil {
		return Mount{}, err
	}
	maj, mnr, ok := strings.Cut(f[2], ":")
	if !ok {
		return Mount{}, errors.New("the device is not major:minor")
	}
	if m.Major, err = parseUint32(maj); err != nil {
		return Mount{}, err
	}
	if m.Minor, err = parseUint32(mnr); err != nil {
		return Mount{}, err
	}
	if m.Root, err = Unescape(f[3]); err != nil {
		return Mount{}, err
	}
	if m.Point, err = Unescape(f[4]); err != nil {
		return Mount{}, err
	}
	if !filepath.IsAbs(m.Point) {
		return Mount{}, errPoint
	}
	m.Point = filepath.Clean(m.Point)
	if m.Options, err = splitOptions(f[5]); err != nil {
		return Mount{}, err
	}
	if m.FSType, err = Unescape(f[sep+1]); err != nil {
		return Mount{}, err
	}
	if m.Source, err = Unescape(f[sep+2]); err != nil {
		return Mount{}, err
	}
	if m.SuperOptions, err = splitOptions(f[sep+3]); err != nil {
		return Mount{}, err
	}
	return m, nil
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// splitOptions splits a field of options at its commas, then unescapes
// each: a comma inside an option's value is escaped (seq_show_option).
func splitOptions(s string) ([]string, error) {
	opts := strings.Split(s, ",")
	for i, o := range opts {
		var err error
		if opts[i], err = Unescape(o); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// Unescape undoes the kernel's octal escapes in a field of mountinfo:
// "\040" for a space, "\011" tab, "\012" newline, "\134" backslash. A
// backslash not followed by three octal digits of a byte is an error
// (ErrParse).
func Unescape(s string) (string, error) {
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
			return "", fmt.Errorf("%w escape in %q: short", ErrParse, s)
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%w escape in %q: %w", ErrParse, s, err)
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}

// Escape is the kernel's escaping of a field of mountinfo (mangle() in
// fs/proc_namespace.c): space, tab, newline and backslash as octal.
func Escape(s string) string {
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

// Holding is the mount that holds the absolute, clean, symlink-free path:
// the one with the longest mount point above it and, of mounts stacked on
// that point, the top one (the one no other of them is mounted on).
func Holding(mounts []Mount, path string) (Mount, bool) {
	var stack []Mount
	for _, m := range mounts {
		if !under(path, m.Point) {
			continue
		}
		if len(stack) > 0 && len(m.Point) > len(stack[0].Point) {
			stack = stack[:0]
		}
		if len(stack) == 0 || m.Point == stack[0].Point {
			stack = append(stack, m)
		}
	}
	if len(stack) == 0 {
		return Mount{}, false
	}
	for i := len(stack) - 1; i >= 0; i-- {
		if !slices.ContainsFunc(stack, func(o Mount) bool { return o.Parent == stack[i].ID }) {
			return stack[i], true
		}
	}
	return stack[len(stack)-1], true // a cycle: only in made-up input
}

// under says whether path is dir or inside it.
func under(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}
