package users

import (
	"slices"
	"strconv"
)

// MaxID is the highest UID or GID that is written; (uid_t)-1 is reserved.
const MaxID = 1<<32 - 2

// User is a passwd entry and, when shadow has one, its shadow entry.
type User struct {
	Name string
	// Password is passwd's second field: "x" when the hash is in shadow.
	// Empty means "x" when adding and "unchanged" when updating; an empty
	// field (no password at all) is never written.
	Password string
	UID      int
	GID      int
	// Comment is the GECOS field, where callers put ownership markers
	// (see HasMarker).
	Comment string
	Home    string
	// Shell may be empty (login uses /bin/sh).
	Shell string
	// Shadow is the shadow entry; nil when there is none. When adding,
	// nil means Tx.NewShadow(false); when updating, nil keeps the entry.
	Shadow *Shadow
}

// Shadow is a shadow entry without its name (the user's).
type Shadow struct {
	// Password is the hash, or "!"/"*" for an account without a usable
	// password. Empty (no password needed) is never written.
	Password   string
	LastChange Days // days since 1970-01-01 of the last password change
	Min        Days
	Max        Days
	Warn       Days
	Inactive   Days
	Expire     Days
	// Flag is the reserved ninth field, normally empty.
	Flag string
}

// Days is a number of days in a shadow field; the zero value is an empty
// field (which is not the same as 0: an Expire of 0 disables the account).
type Days struct {
	N   int64
	Set bool
}

// DaysOf is a set field of n days.
func DaysOf(n int64) Days { return Days{N: n, Set: true} }

// String is the field as written: empty, or the decimal number.
func (d Days) String() string {
	if !d.Set {
		return ""
	}
	return strconv.FormatInt(d.N, 10)
}

// Group is a group entry and, when gshadow has one, its gshadow entry.
type Group struct {
	Name string
	// Password is group's second field, "x" when gshadow is used. Empty
	// means "x" when adding and "unchanged" when updating.
	Password string
	GID      int
	Members  []string
	// Shadow is the gshadow entry; nil when there is none. When adding,
	// nil means {Password: "!", Members: Members}; when updating, nil keeps
	// the gshadow entry and sets its members to Members.
	Shadow *GShadow
}

// GShadow is a gshadow entry without its name (the group's).
type GShadow struct {
	Password string
	Admins   []string
	Members  []string
}

func (g *GShadow) clone() *GShadow {
	if g == nil {
		return nil
	}
	c := *g
	c.Admins = slices.Clone(g.Admins)
	c.Members = slices.Clone(g.Members)
	return &c
}
