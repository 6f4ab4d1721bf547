package pam

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// Identity is who authenticated.
type Identity struct {
	// Name is the account's name, as PAM has it after authenticating.
	Name string
	UID  int
	// Root is true for uid 0.
	Root bool
	// Admin is true for a member of Config.AdminGroup.
	Admin bool
}

// account is what the policy needs to know of a local user.
type account struct {
	Name string
	UID  int
	// GIDs are the user's groups: primary and supplementary.
	GIDs []int
}

// errNoSuchUser is what lookup returns for a user name that does not exist.
var errNoSuchUser = errors.New("no such user")

// policy decides which local users may log in to the panel.
type policy struct {
	denyRoot bool
	allow    func(name string) bool // Config.AllowUser
}

// decide returns the identity of a, and whether a may log in: root unless
// denied (then no uid 0 account may, whatever its groups), the members of
// the admin group (adminGID, -1 when there is none), and those allow lets.
func (p policy) decide(a account, adminGID int) (Identity, bool) {
	id := Identity{Name: a.Name, UID: a.UID, Root: a.UID == 0}
	id.Admin = adminGID >= 0 && slices.Contains(a.GIDs, adminGID)
	if id.Root {
		return id, !p.denyRoot
	}
	return id, id.Admin || p.allow != nil && p.allow(a.Name)
}

// lookupAccount reads a local user through the system's user database.
func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if errors.As(err, new(user.UnknownUserError)) {
			return account{}, errNoSuchUser
		}
		return account{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return account{}, fmt.Errorf("groups of user %q: %w", name, err)
	}
	a := account{Name: u.Username, UID: uid}
	for _, s := range append(ids, u.Gid) {
		if g, err := strconv.Atoi(s); err == nil {
			a.GIDs = append(a.GIDs, g)
		}
	}
	return a, nil
}

// lookupGroup returns the gid of a group, -1 when name is empty or there is
// no such group.
func lookupGroup(name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		if errors.As(err, new(user.UnknownGroupError)) {
			return -1, nil
		}
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}

// StillAdmin reports whether the local user name is, now, what made it an
// admin at its login: root (uid 0) or a member of Config.AdminGroup. A
// session outlives a login by weeks; its refreshes ask again, so that a
// user taken out of the group loses the panel too.
func (a *Authenticator) StillAdmin(name string) (bool, error) {
	acct, err := a.lookup(name)
	if errors.Is(err, errNoSuchUser) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if acct.UID == 0 {
		return !a.policy.denyRoot, nil
	}
	gid, err := a.lookupGroup(a.adminGroup)
	if err != nil {
		return false, err
	}
	return gid >= 0 && slices.Contains(acct.GIDs, gid), nil
}

// validUser reports whether name may be handed to PAM: not empty, at most
// 256 bytes, no control characters (a NUL would cut the C string short)
// and no leading '-' or '+' (NSS compat syntax).
func validUser(name string) bool {
	if name == "" || len(name) > 256 || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+") {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ':' || r == '/' })
}

// validPassword reports whether password may be handed to PAM: not empty
// (no null passwords, whatever common-auth's nullok says), at most 4096
// bytes, and no NUL (C would see only what comes before it).
func validPassword(password string) bool {
	return password != "" && len(password) <= 4096 && !strings.Contains(password, "\x00")
}
