package users

import (
	"fmt"
	"slices"
)

// AddUser adds a passwd entry and, when the shadow file exists, a shadow
// entry (u.Shadow, or NewShadow(false) when nil). The name must pass
// ValidateName and be unused in passwd (ErrUserExists), the UID unused
// (ErrUIDTaken), and the primary group must exist (ErrNotFound). A
// well-formed shadow entry of the same name without a passwd entry (left
// by an interrupted writer) is replaced.
func (tx *Tx) AddUser(u User) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if err := ValidateName(u.Name); err != nil {
		return err
	}
	if u.Password == "" {
		u.Password = "x"
	}
	if err := checkUser(&u, nil); err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	if tx.has(passwdFile, u.Name) {
		return fmt.Errorf("user %q: %w", u.Name, ErrUserExists)
	}
	if tx.idUsed(passwdFile, 2, u.UID, "") {
		return fmt.Errorf("user %q: uid %d: %w", u.Name, u.UID, ErrUIDTaken)
	}
	if err := tx.needGID(u.GID); err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	si := -1
	var sh Shadow
	if tx.files[shadowFile].exists {
		if u.Shadow != nil {
			sh = *u.Shadow
		} else {
			sh = tx.NewShadow(false)
		}
		if err := checkShadow(&sh); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
		var err error
		if si, err = tx.find(shadowFile, u.Name); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	tx.put(passwdFile, -1, userFields(&u))
	if tx.files[shadowFile].exists {
		tx.put(shadowFile, si, shadowFields(u.Name, &sh))
	}
	return nil
}

// needGID checks that a well-formed group has gid.
func (tx *Tx) needGID(gid int) error {
	for _, r := range tx.files[groupFile].recs {
		if r.valid() && groupOf(r.fields).GID == gid {
			return nil
		}
	}
	return fmt.Errorf("primary group gid %d: %w", gid, ErrNotFound)
}

// UpdateUser sets the passwd entry named u.Name to u (an empty Password
// keeps the current one) and, when u.Shadow is not nil, the shadow entry
// (adding one if shadow exists but has none). Nothing changes when the
// values are the same. ErrNotFound when there is no such user.
func (tx *Tx) UpdateUser(u User) error {
	if err := tx.check(true); err != nil {
		return err
	}
	i, err := tx.find(passwdFile, u.Name)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("user %q: %w", u.Name, ErrNotFound)
	}
	old := userOf(tx.files[passwdFile].recs[i].fields)
	if u.Password == "" {
		u.Password = old.Password
	}
	if err := checkUser(&u, &old); err != nil {
		return fmt.Errorf("user %q: %w", u.Name, err)
	}
	if u.UID != old.UID && tx.idUsed(passwdFile, 2, u.UID, u.Name) {
		return fmt.Errorf("user %q: uid %d: %w", u.Name, u.UID, ErrUIDTaken)
	}
	if u.GID != old.GID {
		if err := tx.needGID(u.GID); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	si := -1
	writeShadow := false
	if u.Shadow != nil {
		if !tx.files[shadowFile].exists {
			return fmt.Errorf("user %q: %s: %w", u.Name, tx.files[shadowFile].path, ErrNotFound)
		}
		if si, err = tx.find(shadowFile, u.Name); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
		if si < 0 || shadowOf(tx.files[shadowFile].recs[si].fields) != *u.Shadow {
			if err := checkShadow(u.Shadow); err != nil {
				return fmt.Errorf("user %q: %w", u.Name, err)
			}
			writeShadow = true
		}
	}
	sh := u.Shadow
	u.Shadow = nil
	if u != old {
		tx.put(passwdFile, i, userFields(&u))
	}
	if writeShadow {
		tx.put(shadowFile, si, shadowFields(u.Name, sh))
	}
	return nil
}

// DeleteUser removes the passwd and shadow entries named name and removes
// name from the member and admin lists of group and gshadow, as userdel
// does. The user's private group, if any, is the caller's to delete.
// ErrNotFound when neither passwd nor shadow has the name.
func (tx *Tx) DeleteUser(name string) error {
	if err := tx.check(true); err != nil {
		return err
	}
	pi, err := tx.find(passwdFile, name)
	if err != nil {
		return err
	}
	si := -1
	if tx.files[shadowFile].exists {
		if si, err = tx.find(shadowFile, name); err != nil {
			return err
		}
	}
	if pi < 0 && si < 0 {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if pi >= 0 {
		tx.remove(passwdFile, pi)
	}
	if si >= 0 {
		tx.remove(shadowFile, si)
	}
	tx.dropMember(groupFile, name)
	tx.dropMember(gshadowFile, name)
	return nil
}

// dropMember removes name from the lists of the well-formed lines of file
// k (group: members; gshadow: admins and members).
func (tx *Tx) dropMember(k fileKind, name string) {
	f := tx.files[k]
	for i, r := range f.recs {
		if !r.valid() {
			continue
		}
		switch k {
		case groupFile:
			g := groupOf(r.fields)
			if slices.Contains(g.Members, name) {
				g.Members = without(g.Members, name)
				tx.put(k, i, groupFields(&g))
			}
		case gshadowFile:
			g := gshadowOf(r.fields)
			if slices.Contains(g.Members, name) || slices.Contains(g.Admins, name) {
				g.Members, g.Admins = without(g.Members, name), without(g.Admins, name)
				tx.put(k, i, gshadowFields(r.name(), &g))
			}
		case passwdFile, shadowFile, numFiles:
		}
	}
}

func without(list []string, name string) []string {
	out := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// AddGroup adds a group entry and, when the gshadow file exists, a gshadow
// entry (g.Shadow, or {Password: "!", Members: g.Members} when nil). The
// name must pass ValidateName and be unused (ErrGroupExists), the GID
// unused (ErrGIDTaken), and every member must be a user (ErrNotFound).
func (tx *Tx) AddGroup(g Group) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if err := ValidateName(g.Name); err != nil {
		return err
	}
	if g.Password == "" {
		g.Password = "x"
	}
	if err := checkGroup(&g, nil); err != nil {
		return fmt.Errorf("group %q: %w", g.Name, err)
	}
	if tx.has(groupFile, g.Name) {
		return fmt.Errorf("group %q: %w", g.Name, ErrGroupExists)
	}
	if tx.idUsed(groupFile, 2, g.GID, "") {
		return fmt.Errorf("group %q: gid %d: %w", g.Name, g.GID, ErrGIDTaken)
	}
	gs, si, err := tx.groupShadow(&g, nil, true)
	if err != nil {
		return err
	}
	if err := tx.needUsers(g.Name, g.Members, nil); err != nil {
		return err
	}
	tx.put(groupFile, -1, groupFields(&g))
	if gs != nil {
		tx.put(gshadowFile, si, gshadowFields(g.Name, gs))
	}
	return nil
}

// groupShadow works out the gshadow entry to write for g (nil: none) and
// the index of the existing one (-1: none). old is the current gshadow
// entry for an update; an update does not create a missing one unless
// g.Shadow asks for it.
func (tx *Tx) groupShadow(g *Group, old *GShadow, adding bool) (*GShadow, int, error) {
	if !tx.files[gshadowFile].exists {
		if g.Shadow != nil {
			return nil, -1, fmt.Errorf("group %q: %s: %w", g.Name, tx.files[gshadowFile].path, ErrNotFound)
		}
		return nil, -1, nil
	}
	si, err := tx.find(gshadowFile, g.Name)
	if err != nil {
		return nil, -1, fmt.Errorf("group %q: %w", g.Name, err)
	}
	var gs GShadow
	switch {
	case g.Shadow != nil:
		gs = *g.Shadow.clone()
	case old != nil:
		gs = *old.clone()
		gs.Members = slices.Clone(g.Members)
	case !adding:
		return nil, -1, nil
	default:
		gs = GShadow{Password: "!", Members: slices.Clone(g.Members)}
	}
	if err := checkGShadow(&gs); err != nil {
		return nil, -1, fmt.Errorf("group %q: %w", g.Name, err)
	}
	var oldMembers, oldAdmins []string
	if old != nil {
		oldMembers, oldAdmins = old.Members, old.Admins
	}
	if err := tx.needUsers(g.Name, gs.Members, oldMembers); err != nil {
		return nil, -1, err
	}
	if err := tx.needUsers(g.Name, gs.Admins, oldAdmins); err != nil {
		return nil, -1, err
	}
	return &gs, si, nil
}

// needUsers checks that every name in list that is not in old (already
// there) is a well-formed user.
func (tx *Tx) needUsers(group string, list, old []string) error {
	for _, n := range list {
		if slices.Contains(old, n) {
			continue
		}
		i, err := tx.find(passwdFile, n)
		if err != nil {
			return fmt.Errorf("group %q: member %q: %w", group, n, err)
		}
		if i < 0 {
			return fmt.Errorf("group %q: member %q: %w", group, n, ErrNotFound)
		}
	}
	return nil
}

// UpdateGroup sets the group entry named g.Name to g (an empty Password
// keeps the current one). When g.Shadow is nil an existing gshadow entry
// keeps its password and admins and takes g.Members as members; otherwise
// it is set to g.Shadow. Nothing changes when the values are the same.
// ErrNotFound when there is no such group.
func (tx *Tx) UpdateGroup(g Group) error {
	if err := tx.check(true); err != nil {
		return err
	}
	i, err := tx.find(groupFile, g.Name)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("group %q: %w", g.Name, ErrNotFound)
	}
	old := tx.groupAt(i)
	if g.Password == "" {
		g.Password = old.Password
	}
	if err := checkGroup(&g, &old); err != nil {
		return fmt.Errorf("group %q: %w", g.Name, err)
	}
	if g.GID != old.GID && tx.idUsed(groupFile, 2, g.GID, g.Name) {
		return fmt.Errorf("group %q: gid %d: %w", g.Name, g.GID, ErrGIDTaken)
	}
	if err := tx.needUsers(g.Name, g.Members, old.Members); err != nil {
		return err
	}
	gs, si, err := tx.groupShadow(&g, old.Shadow, false)
	if err != nil {
		return err
	}
	if g.Password != old.Password || g.GID != old.GID || !slices.Equal(g.Members, old.Members) {
		tx.put(groupFile, i, groupFields(&g))
	}
	if gs != nil && (old.Shadow == nil || !equalGShadow(gs, old.Shadow)) {
		tx.put(gshadowFile, si, gshadowFields(g.Name, gs))
	}
	return nil
}

func equalGShadow(a, b *GShadow) bool {
	return a.Password == b.Password && slices.Equal(a.Admins, b.Admins) && slices.Equal(a.Members, b.Members)
}

// DeleteGroup removes the group and gshadow entries named name. It refuses
// (ErrGroupInUse) while a user has the group as primary group, like
// groupdel. ErrNotFound when neither file has the name.
func (tx *Tx) DeleteGroup(name string) error {
	if err := tx.check(true); err != nil {
		return err
	}
	gi, err := tx.find(groupFile, name)
	if err != nil {
		return err
	}
	si := -1
	if tx.files[gshadowFile].exists {
		if si, err = tx.find(gshadowFile, name); err != nil {
			return err
		}
	}
	if gi < 0 && si < 0 {
		return fmt.Errorf("group %q: %w", name, ErrNotFound)
	}
	if gi >= 0 {
		gid := groupOf(tx.files[groupFile].recs[gi].fields).GID
		for _, r := range tx.files[passwdFile].recs {
			if v, ok := r.idField(3); ok && v == gid {
				return fmt.Errorf("group %q: primary group of user %q: %w", name, r.name(), ErrGroupInUse)
			}
		}
		tx.remove(groupFile, gi)
	}
	if si >= 0 {
		tx.remove(gshadowFile, si)
	}
	return nil
}

// AddMember adds user to the members of group (and of its gshadow entry),
// like usermod -aG. Nothing changes when it is a member already.
func (tx *Tx) AddMember(group, user string) error {
	return tx.editMembers(group, user, true)
}

// RemoveMember removes user from the members of group (and of its gshadow
// entry). Nothing changes when it is not a member.
func (tx *Tx) RemoveMember(group, user string) error {
	return tx.editMembers(group, user, false)
}

func (tx *Tx) editMembers(group, user string, add bool) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if err := checkRefName(user); err != nil {
		return err
	}
	g, err := tx.Group(group)
	if err != nil {
		return err
	}
	if add {
		if err := tx.needUsers(group, []string{user}, nil); err != nil {
			return err
		}
		if !slices.Contains(g.Members, user) {
			g.Members = append(g.Members, user)
		}
		if g.Shadow != nil && !slices.Contains(g.Shadow.Members, user) {
			g.Shadow.Members = append(g.Shadow.Members, user)
		}
	} else {
		g.Members = without(g.Members, user)
		if g.Shadow != nil {
			g.Shadow.Members = without(g.Shadow.Members, user)
		}
	}
	return tx.UpdateGroup(g)
}
