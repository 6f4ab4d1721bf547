package users

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// fileKind is one of the four files.
type fileKind int

const (
	passwdFile fileKind = iota
	shadowFile
	groupFile
	gshadowFile
	numFiles
)

func (k fileKind) String() string {
	switch k {
	case passwdFile:
		return "passwd"
	case shadowFile:
		return "shadow"
	case groupFile:
		return "group"
	case gshadowFile:
		return "gshadow"
	default:
		return "file" + strconv.Itoa(int(k))
	}
}

// nfields is the number of ':'-separated fields of an entry.
func (k fileKind) nfields() int {
	switch k {
	case passwdFile:
		return 7
	case shadowFile:
		return 9
	default:
		return 4
	}
}

// record is one line of a file.
type record struct {
	// raw is what is written for the line: the bytes read, with the '\n'
	// when the line had one, or the rendering of a new or changed entry.
	raw string
	// line is the 1-based line number in the file as read; 0 for new lines.
	line int
	// fields is the line split at ':', for entry lines.
	fields []string
	// entry is a line that names an entry: not blank, not a comment
	// ('#'), not a NIS line ('+' or '-').
	entry bool
	// nis is a NIS line; new entries go before the first one.
	nis bool
	// err says why an entry line does not parse; nil when it does.
	err error
}

func (r *record) name() string { return r.fields[0] }

// valid is an entry line that parses.
func (r *record) valid() bool { return r.entry && r.err == nil }

// idField returns field i as an id when the line has one that parses,
// even on a line that is otherwise malformed (ids in use must count).
func (r *record) idField(i int) (int, bool) {
	if !r.entry || len(r.fields) <= i {
		return 0, false
	}
	id, err := parseID(r.fields[i])
	return id, err == nil
}

// parseRecords splits data into lines (keeping each '\n') and parses them.
// It never fails: a line that does not parse is kept with its error.
func parseRecords(kind fileKind, data []byte) []*record {
	var recs []*record
	for n := 1; len(data) > 0; n++ {
		end := len(data)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			end = i + 1
		}
		r := parseLine(kind, string(data[:end]))
		r.line = n
		recs = append(recs, r)
		data = data[end:]
	}
	return recs
}

// parseLine parses one line, with or without its '\n'.
func parseLine(kind fileKind, raw string) *record {
	r := &record{raw: raw}
	text := strings.TrimSuffix(raw, "\n")
	if text == "" || text[0] == '#' {
		return r
	}
	if text[0] == '+' || text[0] == '-' {
		r.nis = true
		return r
	}
	r.entry = true
	r.fields = strings.Split(text, ":")
	r.err = checkFields(kind, r.fields)
	return r
}

// checkFields says whether fields are a well-formed entry of kind.
func checkFields(kind fileKind, f []string) error {
	if len(f) != kind.nfields() {
		return fmt.Errorf("%d fields, want %d", len(f), kind.nfields())
	}
	if f[0] == "" {
		return errors.New("empty name")
	}
	switch kind {
	case passwdFile:
		if _, err := parseID(f[2]); err != nil {
			return fmt.Errorf("uid: %w", err)
		}
		if _, err := parseID(f[3]); err != nil {
			return fmt.Errorf("gid: %w", err)
		}
	case shadowFile:
		for i := 2; i <= 7; i++ {
			if _, err := parseDays(f[i]); err != nil {
				return fmt.Errorf("field %d: %w", i+1, err)
			}
		}
	case groupFile:
		if _, err := parseID(f[2]); err != nil {
			return fmt.Errorf("gid: %w", err)
		}
	case gshadowFile, numFiles:
	}
	return nil
}

// parseID parses a uid or gid field: decimal digits, at most 2^32-1.
func parseID(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty id")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("id %q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("id %q out of range", s)
	}
	return int(n), nil
}

// parseDays parses a shadow day field: empty, or a (signed) decimal number
// as shadow-utils' getlong accepts it.
func parseDays(s string) (Days, error) {
	if s == "" {
		return Days{}, nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (i > 0 || c != '-') {
			return Days{}, fmt.Errorf("%q is not a number of days", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return Days{}, fmt.Errorf("%q is not a number of days", s)
	}
	return DaysOf(n), nil
}

// splitList splits a comma-separated member list; empty is no members.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// The typed views below are only called on valid records.

func userOf(f []string) User {
	uid, _ := parseID(f[2])
	gid, _ := parseID(f[3])
	return User{Name: f[0], Password: f[1], UID: uid, GID: gid, Comment: f[4], Home: f[5], Shell: f[6]}
}

func userFields(u *User) []string {
	return []string{u.Name, u.Password, strconv.Itoa(u.UID), strconv.Itoa(u.GID), u.Comment, u.Home, u.Shell}
}

func shadowOf(f []string) Shadow {
	d := func(i int) Days { v, _ := parseDays(f[i]); return v }
	return Shadow{Password: f[1], LastChange: d(2), Min: d(3), Max: d(4), Warn: d(5), Inactive: d(6), Expire: d(7), Flag: f[8]}
}

func shadowFields(name string, s *Shadow) []string {
	return []string{name, s.Password, s.LastChange.String(), s.Min.String(), s.Max.String(),
		s.Warn.String(), s.Inactive.String(), s.Expire.String(), s.Flag}
}

func groupOf(f []string) Group {
	gid, _ := parseID(f[2])
	return Group{Name: f[0], Password: f[1], GID: gid, Members: splitList(f[3])}
}

func groupFields(g *Group) []string {
	return []string{g.Name, g.Password, strconv.Itoa(g.GID), strings.Join(g.Members, ",")}
}

func gshadowOf(f []string) GShadow {
	return GShadow{Password: f[1], Admins: splitList(f[2]), Members: splitList(f[3])}
}

func gshadowFields(name string, g *GShadow) []string {
	return []string{name, g.Password, strings.Join(g.Admins, ","), strings.Join(g.Members, ",")}
}

// newRecord renders fields as a new line.
func newRecord(fields []string) *record {
	return &record{raw: strings.Join(fields, ":") + "\n", fields: slices.Clone(fields), entry: true}
}

// renumbered returns recs as parseRecords would read back render(recs):
// numbered lines, each but the last ending in '\n', and new or changed
// lines (line 0) parsed as read lines are. Records are never modified:
// one whose line number moves is copied.
func renumbered(kind fileKind, recs []*record) []*record {
	out := make([]*record, len(recs))
	for i, r := range recs {
		n := i + 1
		switch {
		case r.line == 0 || i < len(recs)-1 && !strings.HasSuffix(r.raw, "\n"):
			raw := r.raw
			if i < len(recs)-1 && !strings.HasSuffix(raw, "\n") {
				raw += "\n"
			}
			r = parseLine(kind, raw)
			r.line = n
		case r.line != n:
			c := *r
			c.line = n
			r = &c
		}
		out[i] = r
	}
	return out
}

// render joins records into file content. Only the last line may lack its
// '\n'; a line that lacked it and is no longer last gets one.
func render(recs []*record) []byte {
	var b bytes.Buffer
	for i, r := range recs {
		b.WriteString(r.raw)
		if i < len(recs)-1 && !strings.HasSuffix(r.raw, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
