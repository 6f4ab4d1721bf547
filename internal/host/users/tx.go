package users

import (
	"fmt"
	"slices"
	"time"
)

// Tx is a transaction over the four files: lookups and changes in memory,
// written by Commit. A Tx is not safe for concurrent use.
type Tx struct {
	db       *DB
	locks    *locks
	readOnly bool
	done     bool
	now      time.Time
	defs     defs
	files    [numFiles]*dbFile
}

// Today is the current day since 1970-01-01 by the DB's clock, the value
// useradd writes as "last password change".
func (tx *Tx) Today() int64 {
	d := tx.now.Unix() / 86400
	if d == 0 {
		// useradd: a 0 would force a password change; it writes -1 then.
		return -1
	}
	return d
}

// NewShadow is the shadow entry useradd writes for a new user: password
// "!" (locked, no password), last change today, and, unless system,
// PASS_MIN_DAYS, PASS_MAX_DAYS, PASS_WARN_AGE from login.defs and
// INACTIVE from default/useradd.
func (tx *Tx) NewShadow(system bool) Shadow {
	s := Shadow{Password: "!", LastChange: DaysOf(tx.Today())}
	if !system {
		s.Min, s.Max, s.Warn, s.Inactive = tx.defs.passMin, tx.defs.passMax, tx.defs.passWarn, tx.defs.inactive
	}
	return s
}

// Savepoint is the state of a transaction's changes, to go back to with
// RollbackTo: how one transaction carries the changes of several callers
// (a batch of tenants) and drops those of one whose change failed half-way.
type Savepoint struct {
	recs    [numFiles][]*record
	changed [numFiles]bool
}

// Savepoint records the changes made so far.
func (tx *Tx) Savepoint() Savepoint {
	var sp Savepoint
	for k, f := range tx.files {
		sp.recs[k], sp.changed[k] = slices.Clone(f.recs), f.changed
	}
	return sp
}

// RollbackTo undoes the changes made since sp was recorded.
func (tx *Tx) RollbackTo(sp Savepoint) error {
	if err := tx.check(true); err != nil {
		return err
	}
	for k, f := range tx.files {
		f.recs, f.changed = slices.Clone(sp.recs[k]), sp.changed[k]
	}
	return nil
}

// Changed reports whether Commit would write anything.
func (tx *Tx) Changed() bool {
	for _, f := range tx.files {
		if f.changed {
			return true
		}
	}
	return false
}

// Problems lists the lines of the four files that do not parse, as read.
// They are kept as they are; an operation that would have to change one
// fails with ErrMalformed.
func (tx *Tx) Problems() []*LineError {
	var out []*LineError
	for _, f := range tx.files {
		for _, r := range f.recs {
			if r.entry && r.err != nil && r.line > 0 {
				out = append(out, &LineError{Path: f.path, Line: r.line, Err: r.err})
			}
		}
	}
	return out
}

func (tx *Tx) check(write bool) error {
	if tx.done {
		return ErrTxDone
	}
	if write && tx.readOnly {
		return ErrReadOnly
	}
	return nil
}

// find returns the index of the only entry line named name in file k: -1
// when there is none, an ErrMalformed error when there are several or when
// it does not parse.
func (tx *Tx) find(k fileKind, name string) (int, error) {
	f := tx.files[k]
	idx := -1
	for i, r := range f.recs {
		if !r.entry || r.name() != name {
			continue
		}
		if idx >= 0 {
			return -1, fmt.Errorf("%w: %s has several entries named %q (fix with pwck/grpck)", ErrMalformed, f.path, name)
		}
		idx = i
	}
	if idx >= 0 && f.recs[idx].err != nil {
		r := f.recs[idx]
		return -1, &LineError{Path: f.path, Line: r.line, Err: r.err}
	}
	return idx, nil
}

// has reports whether file k has an entry line named name, parsed or not.
func (tx *Tx) has(k fileKind, name string) bool {
	for _, r := range tx.files[k].recs {
		if r.entry && r.name() == name {
			return true
		}
	}
	return false
}

// idUsed reports whether an entry line of file k has id in field i
// (read even from lines that are otherwise malformed), ignoring the line
// named except.
func (tx *Tx) idUsed(k fileKind, i, id int, except string) bool {
	for _, r := range tx.files[k].recs {
		if v, ok := r.idField(i); ok && v == id && r.name() != except {
			return true
		}
	}
	return false
}

// put replaces record i of file k with fields, or inserts a new record
// before the first NIS line (like commonio) when i < 0.
func (tx *Tx) put(k fileKind, i int, fields []string) {
	f := tx.files[k]
	r := newRecord(fields)
	f.changed = true
	if i >= 0 {
		f.recs[i] = r
		return
	}
	at := slices.IndexFunc(f.recs, func(r *record) bool { return r.nis })
	if at < 0 {
		at = len(f.recs)
	}
	f.recs = slices.Insert(f.recs, at, r)
}

func (tx *Tx) remove(k fileKind, i int) {
	f := tx.files[k]
	f.recs = slices.Delete(f.recs, i, i+1)
	f.changed = true
}

// User returns the user named name, with its shadow entry when shadow has a
// well-formed one. ErrNotFound when there is none.
func (tx *Tx) User(name string) (User, error) {
	if err := tx.check(false); err != nil {
		return User{}, err
	}
	i, err := tx.find(passwdFile, name)
	if err != nil {
		return User{}, err
	}
	if i < 0 {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return tx.userAt(i), nil
}

// UserByUID returns the first well-formed user with uid.
func (tx *Tx) UserByUID(uid int) (User, error) {
	if err := tx.check(false); err != nil {
		return User{}, err
	}
	for i, r := range tx.files[passwdFile].recs {
		if r.valid() && userOf(r.fields).UID == uid {
			return tx.userAt(i), nil
		}
	}
	return User{}, fmt.Errorf("uid %d: %w", uid, ErrNotFound)
}

// Users returns the well-formed users in file order.
func (tx *Tx) Users() []User {
	var out []User
	for i, r := range tx.files[passwdFile].recs {
		if r.valid() {
			out = append(out, tx.userAt(i))
		}
	}
	return out
}

func (tx *Tx) userAt(i int) User {
	u := userOf(tx.files[passwdFile].recs[i].fields)
	if j, err := tx.find(shadowFile, u.Name); err == nil && j >= 0 {
		s := shadowOf(tx.files[shadowFile].recs[j].fields)
		u.Shadow = &s
	}
	return u
}

// Group returns the group named name, with its gshadow entry when gshadow
// has a well-formed one. ErrNotFound when there is none.
func (tx *Tx) Group(name string) (Group, error) {
	if err := tx.check(false); err != nil {
		return Group{}, err
	}
	i, err := tx.find(groupFile, name)
	if err != nil {
		return Group{}, err
	}
	if i < 0 {
		return Group{}, fmt.Errorf("group %q: %w", name, ErrNotFound)
	}
	return tx.groupAt(i), nil
}

// GroupByGID returns the first well-formed group with gid.
func (tx *Tx) GroupByGID(gid int) (Group, error) {
	if err := tx.check(false); err != nil {
		return Group{}, err
	}
	for i, r := range tx.files[groupFile].recs {
		if r.valid() && groupOf(r.fields).GID == gid {
			return tx.groupAt(i), nil
		}
	}
	return Group{}, fmt.Errorf("gid %d: %w", gid, ErrNotFound)
}

// Groups returns the well-formed groups in file order.
func (tx *Tx) Groups() []Group {
	var out []Group
	for i, r := range tx.files[groupFile].recs {
		if r.valid() {
			out = append(out, tx.groupAt(i))
		}
	}
	return out
}

func (tx *Tx) groupAt(i int) Group {
	g := groupOf(tx.files[groupFile].recs[i].fields)
	if j, err := tx.find(gshadowFile, g.Name); err == nil && j >= 0 {
		s := gshadowOf(tx.files[gshadowFile].recs[j].fields)
		g.Shadow = &s
	}
	return g
}

// NextFreeID returns an id in [lo, hi] that no passwd entry uses as UID or
// GID and no group entry uses as GID, so a user and its private group can
// share it. Like useradd it takes one more than the highest id in use in
// the range (ids of deleted accounts are not reused at once), and falls
// back to the lowest free id when that is past hi. ErrRangeFull when every
// id is in use.
func (tx *Tx) NextFreeID(lo, hi int) (int, error) {
	if err := tx.check(false); err != nil {
		return 0, err
	}
	if lo < 0 || hi > MaxID || lo > hi {
		return 0, fmt.Errorf("%w: id range [%d, %d]", ErrInvalidEntry, lo, hi)
	}
	used := map[int]bool{}
	highest := -1
	mark := func(id int, ok bool) {
		if ok && id >= lo && id <= hi {
			used[id] = true
			highest = max(highest, id)
		}
	}
	for _, r := range tx.files[passwdFile].recs {
		mark(r.idField(2))
		mark(r.idField(3))
	}
	for _, r := range tx.files[groupFile].recs {
		mark(r.idField(2))
	}
	if highest < hi {
		return max(highest+1, lo), nil
	}
	for id := lo; id <= hi; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("[%d, %d]: %w", lo, hi, ErrRangeFull)
}
