package users

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest user or group name we create (useradd's limit
// on Debian is 32).
const MaxNameLen = 32

// ValidateName checks a name for a new user or group: 1 to 32 characters,
// a lowercase letter or '_' first, then lowercase letters, digits, '_' or
// '-', and an optional final '$' (Samba machine accounts). This is the
// portable rule of shadow-utils' is_valid_name without --badname; it is
// stricter than Debian's useradd, which accepts more.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q is longer than %d characters", ErrInvalidName, name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		case i > 0 && i == len(name)-1 && c == '$':
		default:
			return fmt.Errorf("%w: %q: character %q at %d not allowed", ErrInvalidName, name, c, i)
		}
	}
	return nil
}

// checkRefName checks a name that refers to an existing entry (a member,
// or a lookup key): anything that can be a field of a list without
// corrupting it.
func checkRefName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if strings.ContainsAny(name, ":,\n\r\x00") || name[0] == '+' || name[0] == '-' || name[0] == '#' {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// checkField checks a free-text field: no ':' (field separator), no line
// break, no NUL.
func checkField(what, v string) error {
	if strings.ContainsAny(v, ":\n\r\x00") {
		return fmt.Errorf("%w: %s %q contains ':', a line break or NUL", ErrInvalidEntry, what, v)
	}
	return nil
}

func checkID(what string, id int) error {
	if id < 0 || id > MaxID {
		return fmt.Errorf("%w: %s %d out of range 0..%d", ErrInvalidEntry, what, id, MaxID)
	}
	return nil
}

func checkPath(what, p string, optional bool) error {
	if err := checkField(what, p); err != nil {
		return err
	}
	if p == "" && optional {
		return nil
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %s %q is not an absolute path", ErrInvalidEntry, what, p)
	}
	return nil
}

// checkUser checks the passwd fields of u (its name is checked by the
// caller: strictly for a new user, loosely for an existing one). When old
// is not nil (an update), fields equal to old's are not checked: an odd
// value that is already in the file may stay.
func checkUser(u, old *User) error {
	if old == nil || u.Password != old.Password {
		if err := checkField("password", u.Password); err != nil {
			return err
		}
	}
	if err := checkID("uid", u.UID); err != nil {
		return err
	}
	if err := checkID("gid", u.GID); err != nil {
		return err
	}
	if old == nil || u.Comment != old.Comment {
		if err := checkField("comment", u.Comment); err != nil {
			return err
		}
	}
	if old == nil || u.Home != old.Home {
		if err := checkPath("home", u.Home, false); err != nil {
			return err
		}
	}
	if old == nil || u.Shell != old.Shell {
		return checkPath("shell", u.Shell, true)
	}
	return nil
}

func checkShadow(s *Shadow) error {
	if s.Password == "" {
		return fmt.Errorf("%w: empty shadow password (no password at all); use \"!\" or \"*\" for none", ErrInvalidEntry)
	}
	if err := checkField("shadow password", s.Password); err != nil {
		return err
	}
	if s.Flag != "" {
		if _, err := parseID(s.Flag); err != nil {
			return fmt.Errorf("%w: shadow flag %q", ErrInvalidEntry, s.Flag)
		}
	}
	return nil
}

func checkList(what string, names []string) error {
	for _, n := range names {
		if err := checkRefName(n); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

func checkGroup(g, old *Group) error {
	if old == nil || g.Password != old.Password {
		if err := checkField("group password", g.Password); err != nil {
			return err
		}
	}
	if err := checkID("gid", g.GID); err != nil {
		return err
	}
	if err := checkList("members", g.Members); err != nil {
		return err
	}
	return nil
}

// checkGShadow checks a gshadow entry. An empty password is allowed: in
// gshadow it means only members may use newgrp.
func checkGShadow(s *GShadow) error {
	if err := checkField("gshadow password", s.Password); err != nil {
		return err
	}
	if err := checkList("gshadow admins", s.Admins); err != nil {
		return err
	}
	return checkList("gshadow members", s.Members)
}
