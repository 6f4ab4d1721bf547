package users

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixedDay is 2024-06-01, in days since the epoch.
const fixedDay = 19875

func fixedClock() time.Time { return time.Unix(fixedDay*86400+3600, 0).UTC() }

func begin(t *testing.T, db *DB) *Tx {
	t.Helper()
	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Abort() })
	return tx
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tenant adds a tenant the way a controller would: a private group and a
// user with the same id, marked in the comment.
func tenant(t *testing.T, tx *Tx, name string, lo, hi int) int {
	t.Helper()
	id, err := tx.NextFreeID(lo, hi)
	mustOK(t, err)
	mustOK(t, tx.AddGroup(Group{Name: name, GID: id}))
	mustOK(t, tx.AddUser(User{Name: name, UID: id, GID: id, Comment: "WCP360 tenant " + name, Home: "/srv/www/" + name, Shell: "/usr/sbin/nologin"}))
	return id
}

func TestAddUpdateDelete(t *testing.T) {
	root := newRoot(t)
	db := &DB{Root: root, LockTimeout: time.Second, Now: fixedClock}
	before := map[string][]byte{}
	for _, n := range []string{"passwd", "shadow", "group", "gshadow"} {
		before[n] = readEtc(t, root, n)
	}

	tx := begin(t, db)
	id := tenant(t, tx, "acme", 20000, 29999)
	if id != 20000 {
		t.Errorf("first id = %d, want 20000", id)
	}
	mustOK(t, tx.Commit())

	want := map[string]string{
		"passwd":  "acme:x:20000:20000:WCP360 tenant acme:/srv/www/acme:/usr/sbin/nologin\n",
		"shadow":  "acme:!:19875:0:99999:7:::\n",
		"group":   "acme:x:20000:\n",
		"gshadow": "acme:!::\n",
	}
	for n, line := range want {
		got := readEtc(t, root, n)
		if !bytes.Equal(got, append(slices.Clone(before[n]), line...)) {
			t.Errorf("%s after add:\n%s", n, cmp.Diff(string(before[n])+line, string(got)))
		}
		if b := readEtc(t, root, n+"-"); !bytes.Equal(b, before[n]) {
			t.Errorf("%s- is not the previous %s", n, n)
		}
	}

	tx = begin(t, db)
	u, err := tx.User("acme")
	mustOK(t, err)
	if !u.HasMarker("WCP360 tenant acme") || u.HasMarker("WCP360 tenant acm") {
		t.Errorf("marker test on %q", u.Comment)
	}
	if u2, err := tx.UserByUID(20000); err != nil || u2.Name != "acme" {
		t.Errorf("UserByUID = %v, %v", u2.Name, err)
	}
	if g, err := tx.GroupByGID(20000); err != nil || g.Name != "acme" {
		t.Errorf("GroupByGID = %v, %v", g.Name, err)
	}
	u.Shell = "/bin/bash"
	u.Comment = "WCP360 tenant acme,,,"
	sh := *u.Shadow
	sh.Password = "$y$j9T$abc$def"
	u.Shadow = &sh
	mustOK(t, tx.UpdateUser(u))
	mustOK(t, tx.AddUser(User{Name: "bob", UID: 20001, GID: 20000, Home: "/srv/www/acme", Shell: "/usr/sbin/nologin"}))
	mustOK(t, tx.AddMember("acme", "bob"))
	mustOK(t, tx.AddMember("users", "bob"))
	mustOK(t, tx.Commit())

	if got := lastLine(readEtc(t, root, "passwd")); got != "bob:x:20001:20000::/srv/www/acme:/usr/sbin/nologin" {
		t.Errorf("passwd last line %q", got)
	}
	if !strings.Contains(string(readEtc(t, root, "passwd")), "\nacme:x:20000:20000:WCP360 tenant acme,,,:/srv/www/acme:/bin/bash\n") {
		t.Errorf("acme not updated in place:\n%s", readEtc(t, root, "passwd"))
	}
	if !strings.Contains(string(readEtc(t, root, "shadow")), "\nacme:$y$j9T$abc$def:19875:0:99999:7:::\n") {
		t.Errorf("shadow not updated:\n%s", readEtc(t, root, "shadow"))
	}
	if got := lastLine(readEtc(t, root, "group")); got != "acme:x:20000:bob" {
		t.Errorf("group last line %q", got)
	}
	if got := lastLine(readEtc(t, root, "gshadow")); got != "acme:!::bob" {
		t.Errorf("gshadow last line %q", got)
	}

	tx = begin(t, db)
	mustOK(t, tx.RemoveMember("acme", "bob"))
	mustOK(t, tx.DeleteUser("bob"))
	mustOK(t, tx.DeleteUser("acme"))
	if err := tx.DeleteGroup("acme"); err != nil {
		t.Fatal(err)
	}
	mustOK(t, tx.Commit())
	for n := range want {
		if got := readEtc(t, root, n); !bytes.Equal(got, before[n]) {
			t.Errorf("%s after delete:\n%s", n, cmp.Diff(string(before[n]), string(got)))
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

func TestNewUserShadowDefaults(t *testing.T) {
	root := newRoot(t)
	db := &DB{Root: root, Now: fixedClock}
	tx := begin(t, db)
	want := Shadow{Password: "!", LastChange: DaysOf(fixedDay), Min: DaysOf(0), Max: DaysOf(99999), Warn: DaysOf(7)}
	if diff := cmp.Diff(want, tx.NewShadow(false)); diff != "" {
		t.Errorf("regular (from the host's login.defs): %s", diff)
	}
	if diff := cmp.Diff(Shadow{Password: "!", LastChange: DaysOf(fixedDay)}, tx.NewShadow(true)); diff != "" {
		t.Errorf("system: %s", diff)
	}
}

func TestRefusals(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	ok := func() User {
		return User{Name: "newbie", UID: 20500, GID: 0, Home: "/srv/www/newbie", Shell: "/usr/sbin/nologin"}
	}
	tests := []struct {
		name string
		op   func(tx *Tx) error
		want error
	}{
		{"user exists", func(tx *Tx) error { u := ok(); u.Name = "root"; return tx.AddUser(u) }, ErrUserExists},
		{"uid taken", func(tx *Tx) error { u := ok(); u.UID = 0; return tx.AddUser(u) }, ErrUIDTaken},
		{"no primary group", func(tx *Tx) error { u := ok(); u.GID = 4242; return tx.AddUser(u) }, ErrNotFound},
		{"group exists", func(tx *Tx) error { return tx.AddGroup(Group{Name: "root", GID: 4242}) }, ErrGroupExists},
		{"gid taken", func(tx *Tx) error { return tx.AddGroup(Group{Name: "newgrp", GID: 0}) }, ErrGIDTaken},
		{"member not a user", func(tx *Tx) error { return tx.AddGroup(Group{Name: "newgrp", GID: 4242, Members: []string{"ghost"}}) }, ErrNotFound},
		{"add member not a user", func(tx *Tx) error { return tx.AddMember("root", "ghost") }, ErrNotFound},
		{"add member no group", func(tx *Tx) error { return tx.AddMember("ghostgrp", "root") }, ErrNotFound},
		{"delete missing user", func(tx *Tx) error { return tx.DeleteUser("ghost") }, ErrNotFound},
		{"delete missing group", func(tx *Tx) error { return tx.DeleteGroup("ghost") }, ErrNotFound},
		{"update missing user", func(tx *Tx) error { u := ok(); return tx.UpdateUser(u) }, ErrNotFound},
		{"update missing group", func(tx *Tx) error { return tx.UpdateGroup(Group{Name: "ghost", GID: 1}) }, ErrNotFound},
		{"delete primary group", func(tx *Tx) error { return tx.DeleteGroup("root") }, ErrGroupInUse},
		{"update uid taken", func(tx *Tx) error {
			u, err := tx.User("daemon")
			if err != nil {
				return err
			}
			u.UID = 0
			return tx.UpdateUser(u)
		}, ErrUIDTaken},
		{"update gid taken", func(tx *Tx) error {
			g, err := tx.Group("daemon")
			if err != nil {
				return err
			}
			g.GID = 0
			return tx.UpdateGroup(g)
		}, ErrGIDTaken},
		{"empty shadow password", func(tx *Tx) error { u := ok(); u.Shadow = &Shadow{}; return tx.AddUser(u) }, ErrInvalidEntry},
		{"bad shadow flag", func(tx *Tx) error { u := ok(); u.Shadow = &Shadow{Password: "!", Flag: "x"}; return tx.AddUser(u) }, ErrInvalidEntry},
		{"comment with colon", func(tx *Tx) error { u := ok(); u.Comment = "a:b"; return tx.AddUser(u) }, ErrInvalidEntry},
		{"comment with newline", func(tx *Tx) error { u := ok(); u.Comment = "a\nroot2:x:0:0::/:/bin/sh"; return tx.AddUser(u) }, ErrInvalidEntry},
		{"relative home", func(tx *Tx) error { u := ok(); u.Home = "srv/www"; return tx.AddUser(u) }, ErrInvalidEntry},
		{"empty home", func(tx *Tx) error { u := ok(); u.Home = ""; return tx.AddUser(u) }, ErrInvalidEntry},
		{"relative shell", func(tx *Tx) error { u := ok(); u.Shell = "bash"; return tx.AddUser(u) }, ErrInvalidEntry},
		{"negative uid", func(tx *Tx) error { u := ok(); u.UID = -1; return tx.AddUser(u) }, ErrInvalidEntry},
		{"uid too big", func(tx *Tx) error { u := ok(); u.UID = MaxID + 1; return tx.AddUser(u) }, ErrInvalidEntry},
		{"member with comma", func(tx *Tx) error { return tx.AddGroup(Group{Name: "newgrp", GID: 4242, Members: []string{"a,b"}}) }, ErrInvalidName},
		{"bad range", func(tx *Tx) error { _, err := tx.NextFreeID(10, 5); return err }, ErrInvalidEntry},
	}
	for _, bad := range []string{"", "-ab", "a:b", "a\nb", "Ab", strings.Repeat("a", 33), "a b", "1abc", "+nis", "#x", "a$b", "a.b", "é", ".", ".."} {
		tests = append(tests,
			struct {
				name string
				op   func(tx *Tx) error
				want error
			}{"user name " + bad, func(tx *Tx) error { u := ok(); u.Name = bad; return tx.AddUser(u) }, ErrInvalidName},
			struct {
				name string
				op   func(tx *Tx) error
				want error
			}{"group name " + bad, func(tx *Tx) error { return tx.AddGroup(Group{Name: bad, GID: 4242}) }, ErrInvalidName})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx := begin(t, db)
			err := tt.op(tx)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tx.Changed() {
				t.Error("a refused operation changed something")
			}
		})
	}
	// Names that pass.
	for _, good := range []string{"a", "_x", "a-b_c", "machine$", strings.Repeat("a", 32), "t1"} {
		if err := ValidateName(good); err != nil {
			t.Errorf("ValidateName(%q) = %v", good, err)
		}
	}
}

func TestNextFreeID(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	tx := begin(t, db)
	if _, err := tx.NextFreeID(0, 0); !errors.Is(err, ErrRangeFull) {
		t.Errorf("[0,0] = %v, want ErrRangeFull (root)", err)
	}
	ids := []int{}
	for _, n := range []string{"t1", "t2", "t3"} {
		ids = append(ids, tenant(t, tx, n, 30000, 30002))
	}
	if diff := cmp.Diff([]int{30000, 30001, 30002}, ids); diff != "" {
		t.Error(diff)
	}
	if _, err := tx.NextFreeID(30000, 30002); !errors.Is(err, ErrRangeFull) {
		t.Errorf("full range = %v, want ErrRangeFull", err)
	}
	// A freed id below the highest is reused only when the top is taken.
	mustOK(t, tx.DeleteUser("t2"))
	mustOK(t, tx.DeleteGroup("t2"))
	if id, err := tx.NextFreeID(30000, 30002); err != nil || id != 30001 {
		t.Errorf("after freeing 30001: %d, %v", id, err)
	}
	if id, err := tx.NextFreeID(30000, 30010); err != nil || id != 30003 {
		t.Errorf("with room above: %d, %v", id, err)
	}
	// A GID in use counts even without a user.
	mustOK(t, tx.AddGroup(Group{Name: "onlygroup", GID: 30003}))
	if id, err := tx.NextFreeID(30003, 30010); err != nil || id != 30004 {
		t.Errorf("gid in use: %d, %v", id, err)
	}
}

func TestUnchangedTransactionWritesNothing(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	tx := begin(t, db)
	tenant(t, tx, "acme", 20000, 29999)
	mustOK(t, tx.AddMember("users", "acme"))
	mustOK(t, tx.Commit())
	listing := etcListing(t, root)

	changed, err := db.Update(context.Background(), func(tx *Tx) error {
		u, err := tx.User("acme")
		if err != nil {
			return err
		}
		if err := tx.UpdateUser(u); err != nil {
			return err
		}
		u.Shadow = nil
		if err := tx.UpdateUser(u); err != nil {
			return err
		}
		g, err := tx.Group("acme")
		if err != nil {
			return err
		}
		if err := tx.UpdateGroup(g); err != nil {
			return err
		}
		g.Shadow = nil
		if err := tx.UpdateGroup(g); err != nil {
			return err
		}
		if err := tx.AddMember("users", "acme"); err != nil {
			return err
		}
		if err := tx.RemoveMember("acme", "root"); err != nil {
			return err
		}
		_ = tx.Users()
		_ = tx.Groups()
		return nil
	})
	mustOK(t, err)
	if changed {
		t.Error("Update reported a change")
	}
	if diff := cmp.Diff(listing, etcListing(t, root)); diff != "" {
		t.Errorf("files touched by an unchanged transaction:\n%s", diff)
	}
}

func TestModesOwnersBackups(t *testing.T) {
	root := newRoot(t)
	// Odd modes and owners must survive too.
	mustOK(t, os.Chmod(filepath.Join(root, "etc", "gshadow"), 0o600))
	mustOK(t, os.Chown(filepath.Join(root, "etc", "group"), 0, 4))
	type meta struct {
		mode     os.FileMode
		uid, gid uint32
	}
	stat := func(name string) (meta, syscall.Stat_t) {
		st, err := os.Stat(filepath.Join(root, "etc", name))
		mustOK(t, err)
		sys := *st.Sys().(*syscall.Stat_t)
		return meta{st.Mode(), sys.Uid, sys.Gid}, sys
	}
	before := map[string]meta{}
	beforeSys := map[string]syscall.Stat_t{}
	for _, n := range []string{"passwd", "shadow", "group", "gshadow"} {
		before[n], beforeSys[n] = stat(n)
	}
	if before["shadow"].mode != 0o640 {
		t.Logf("host shadow mode is %v", before["shadow"].mode)
	}

	db := newDB(root)
	tx := begin(t, db)
	tenant(t, tx, "acme", 20000, 29999)
	mustOK(t, tx.Commit())

	for n, m := range before {
		got, sys := stat(n)
		if got != m {
			t.Errorf("%s: %+v, want %+v", n, got, m)
		}
		if sys.Ino == beforeSys[n].Ino {
			t.Errorf("%s: same inode; not replaced by rename", n)
		}
		bk, bsys := stat(n + "-")
		if bk != m {
			t.Errorf("%s-: %+v, want %+v", n, bk, m)
		}
		if bsys.Mtim != beforeSys[n].Mtim {
			t.Errorf("%s-: mtime %v, want the original's %v", n, bsys.Mtim, beforeSys[n].Mtim)
		}
	}
	// Nothing else is left behind: no lock files, no temporary files.
	entries, err := os.ReadDir(filepath.Join(root, "etc"))
	mustOK(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{".pwd.lock", "group", "group-", "gshadow", "gshadow-", "login.defs", "passwd", "passwd-", "shadow", "shadow-"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("etc holds:\n%s", diff)
	}
	noLockFiles(t, root)
}

func TestOddFilesKeptByteForByte(t *testing.T) {
	root := newRootFrom(t, "testdata/odd")
	db := newDB(root)
	orig := map[string][]byte{}
	for _, n := range []string{"passwd", "shadow", "group", "gshadow"} {
		orig[n] = readEtc(t, root, n)
	}
	tx := begin(t, db)
	var problems []string
	for _, p := range tx.Problems() {
		if !errors.Is(p, ErrMalformed) {
			t.Errorf("problem %v is not ErrMalformed", p)
		}
		problems = append(problems, filepath.Base(p.Path)+":"+strconv.Itoa(p.Line))
	}
	if diff := cmp.Diff([]string{"passwd:5", "passwd:6", "shadow:3", "group:5"}, problems); diff != "" {
		t.Errorf("problems:\n%s", diff)
	}

	// Malformed lines still own their names and ids, and are not changed.
	if err := tx.AddUser(User{Name: "oldstyle", UID: 20500, GID: 100, Home: "/x"}); !errors.Is(err, ErrUserExists) {
		t.Errorf("name of a malformed line: %v", err)
	}
	if err := tx.UpdateUser(User{Name: "badid", UID: 20500, GID: 100, Home: "/x"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("update of a malformed line: %v", err)
	}
	if err := tx.DeleteUser("oldstyle"); !errors.Is(err, ErrMalformed) {
		t.Errorf("delete of a malformed line: %v", err)
	}
	if _, err := tx.User("badid"); !errors.Is(err, ErrMalformed) {
		t.Errorf("lookup of a malformed line: %v", err)
	}
	if err := tx.AddUser(User{Name: "newbie", UID: 7, GID: 100, Home: "/x"}); !errors.Is(err, ErrUIDTaken) {
		t.Errorf("uid of a malformed line: %v", err)
	}
	if err := tx.AddUser(User{Name: "newbie2", UID: 30, GID: 100, Home: "/x"}); !errors.Is(err, ErrUIDTaken) {
		t.Errorf("uid 30 written as 0030: %v", err)
	}
	mustOK(t, tx.AddUser(User{Name: "newbie", UID: 20001, GID: 100, Home: "/srv/www/newbie", Shell: "/usr/sbin/nologin"}))
	mustOK(t, tx.AddMember("nonl", "newbie"))
	mustOK(t, tx.AddGroup(Group{Name: "newgrp", GID: 20001}))
	mustOK(t, tx.Commit())

	wantPasswd := strings.Replace(string(orig["passwd"]), "+@admins::::::\n",
		"newbie:x:20001:100::/srv/www/newbie:/usr/sbin/nologin\n+@admins::::::\n", 1)
	if diff := cmp.Diff(wantPasswd, string(readEtc(t, root, "passwd"))); diff != "" {
		t.Errorf("passwd (new entry before the NIS lines, nothing else changed):\n%s", diff)
	}
	wantShadow := strings.Replace(string(orig["shadow"]), "+::::::::\n", "newbie:!:"+strconv.Itoa(int(tx.Today()))+"::::::\n+::::::::\n", 1)
	// No login.defs in this root: min/max/warn are empty, as useradd writes them.
	if diff := cmp.Diff(wantShadow, string(readEtc(t, root, "shadow"))); diff != "" {
		t.Errorf("shadow:\n%s", diff)
	}
	wantGroup := strings.Replace(string(orig["group"]), "nonl:x:31:tenant1", "nonl:x:31:tenant1,newbie\nnewgrp:x:20001:\n", 1)
	if diff := cmp.Diff(wantGroup, string(readEtc(t, root, "group"))); diff != "" {
		t.Errorf("group:\n%s", diff)
	}
	// gshadow has no entry for nonl: membership is only in group, and no
	// gshadow entry is invented for it.
	wantGShadow := string(orig["gshadow"]) + "newgrp:!::\n"
	if diff := cmp.Diff(wantGShadow, string(readEtc(t, root, "gshadow"))); diff != "" {
		t.Errorf("gshadow:\n%s", diff)
	}
}

func TestDeleteUserDropsMemberships(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	tx := begin(t, db)
	tenant(t, tx, "acme", 20000, 29999)
	tenant(t, tx, "bob", 20000, 29999)
	mustOK(t, tx.AddMember("acme", "bob"))
	mustOK(t, tx.AddMember("users", "bob"))
	g, err := tx.Group("acme")
	mustOK(t, err)
	g.Shadow.Admins = []string{"bob"}
	mustOK(t, tx.UpdateGroup(g))
	mustOK(t, tx.Commit())

	tx = begin(t, db)
	mustOK(t, tx.DeleteUser("bob"))
	mustOK(t, tx.DeleteGroup("bob"))
	for _, name := range []string{"acme", "users"} {
		g, err := tx.Group(name)
		mustOK(t, err)
		if slices.Contains(g.Members, "bob") || (g.Shadow != nil && (slices.Contains(g.Shadow.Members, "bob") || slices.Contains(g.Shadow.Admins, "bob"))) {
			t.Errorf("%s still lists bob: %+v %+v", name, g, g.Shadow)
		}
	}
	mustOK(t, tx.Commit())
	checkPwck(t, root, nil)
}

func TestOrphanShadowEntryIsReplaced(t *testing.T) {
	root := newRoot(t)
	// An interrupted writer left a shadow entry without its passwd entry.
	f, err := os.OpenFile(filepath.Join(root, "etc", "shadow"), os.O_APPEND|os.O_WRONLY, 0)
	mustOK(t, err)
	_, err = f.WriteString("acme:$6$old$hash:1::::::\n")
	mustOK(t, err)
	mustOK(t, f.Close())
	db := newDB(root)
	tx := begin(t, db)
	tenant(t, tx, "acme", 20000, 29999)
	mustOK(t, tx.Commit())
	if n := entryNames(t, root, shadowFile)["acme"]; n != 1 {
		t.Errorf("%d shadow entries for acme", n)
	}
	if strings.Contains(string(readEtc(t, root, "shadow")), "$6$old$hash") {
		t.Error("the old hash survived")
	}
}

func TestDuplicateNamesNeedAHuman(t *testing.T) {
	root := newRoot(t)
	f, err := os.OpenFile(filepath.Join(root, "etc", "passwd"), os.O_APPEND|os.O_WRONLY, 0)
	mustOK(t, err)
	_, err = f.WriteString("daemon:x:1:1:again:/:/bin/false\n")
	mustOK(t, err)
	mustOK(t, f.Close())
	tx := begin(t, newDB(root))
	if err := tx.DeleteUser("daemon"); !errors.Is(err, ErrMalformed) {
		t.Errorf("delete of a duplicated name: %v", err)
	}
	if _, err := tx.User("daemon"); !errors.Is(err, ErrMalformed) {
		t.Errorf("lookup of a duplicated name: %v", err)
	}
}

func TestModifiedBehindOurBack(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	tx := begin(t, db)
	tenant(t, tx, "acme", 20000, 29999)
	// Somebody edits passwd without the locks (an editor, not vipw).
	p := filepath.Join(root, "etc", "passwd")
	b := readEtc(t, root, "passwd")
	mustOK(t, os.WriteFile(p+".tmp", append(b, "intruder:x:4000:4000::/:/bin/sh\n"...), 0o644))
	mustOK(t, os.Rename(p+".tmp", p))
	listing := etcListing(t, root)
	if err := tx.Commit(); !errors.Is(err, ErrModified) {
		t.Fatalf("Commit = %v, want ErrModified", err)
	}
	// Nothing written, locks released.
	if diff := cmp.Diff(listing, etcListing(t, root)); diff != "" {
		t.Errorf("Commit wrote after detecting the change:\n%s", diff)
	}
	noLockFiles(t, root)
}

func TestTxLifecycle(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	tx := begin(t, db)
	mustOK(t, tx.Commit())
	if err := tx.Commit(); !errors.Is(err, ErrTxDone) {
		t.Errorf("second Commit = %v", err)
	}
	if _, err := tx.User("root"); !errors.Is(err, ErrTxDone) {
		t.Errorf("lookup after Commit = %v", err)
	}
	mustOK(t, tx.Abort())

	err := db.View(context.Background(), func(tx *Tx) error {
		if _, err := tx.User("root"); err != nil {
			return err
		}
		if err := tx.AddGroup(Group{Name: "x", GID: 4242}); !errors.Is(err, ErrReadOnly) {
			t.Errorf("change in View = %v", err)
		}
		return nil
	})
	mustOK(t, err)

	boom := errors.New("boom")
	changed, err := db.Update(context.Background(), func(tx *Tx) error {
		tenant(t, tx, "acme", 20000, 29999)
		return boom
	})
	if !errors.Is(err, boom) || changed {
		t.Errorf("failed Update = %v, %v", changed, err)
	}
	if n := entryNames(t, root, passwdFile)["acme"]; n != 0 {
		t.Error("a failed Update wrote")
	}
	if (&DB{Root: root}).View(context.Background(), func(*Tx) error { return nil }) == nil {
		t.Error("a DB without a clock works")
	}
}

func TestHasMarker(t *testing.T) {
	tests := []struct {
		gecos, marker string
		want          bool
	}{
		{"WCP360 tenant acme", "WCP360 tenant acme", true},
		{"WCP360 tenant acme,,,", "WCP360 tenant acme", true},
		{"Full Name,room,,,WCP360 tenant acme", "WCP360 tenant acme", true},
		{"WCP360 tenant acme2", "WCP360 tenant acme", false},
		{"WCP360 tenant acm", "WCP360 tenant acme", false},
		{"", "", false},
		{"x", "", false},
	}
	for _, tt := range tests {
		if got := HasMarker(tt.gecos, tt.marker); got != tt.want {
			t.Errorf("HasMarker(%q, %q) = %v", tt.gecos, tt.marker, got)
		}
	}
	for _, bad := range []string{"", "a,b", "a:b", "a\nb"} {
		if err := ValidateMarker(bad); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("ValidateMarker(%q) = %v", bad, err)
		}
	}
	mustOK(t, ValidateMarker("WCP360 tenant acme"))
}

// View parses a file again exactly when it changed, however it changed.
func TestViewSeesEveryChange(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	ctx := t.Context()
	count := func() int {
		n := 0
		if err := db.View(ctx, func(tx *Tx) error { n = len(tx.Users()); return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	base := count()
	if _, err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.AddGroup(Group{Name: "cachetest", GID: 4242}); err != nil {
			return err
		}
		return tx.AddUser(User{Name: "cachetest", UID: 4242, GID: 4242, Home: "/nonexistent", Shell: "/usr/sbin/nologin"})
	}); err != nil {
		t.Fatal(err)
	}
	if got := count(); got != base+1 {
		t.Fatalf("after a commit (rename): %d users, want %d", got, base+1)
	}
	// An in-place edit of the same size keeps the inode: ctime still moves.
	p := filepath.Join(root, "etc", "passwd")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte("\ncachetest:"), []byte("\ncachetesX:"), 1)
	if err := os.WriteFile(p, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	var found bool
	if err := db.View(ctx, func(tx *Tx) error {
		_, err := tx.User("cachetesX")
		found = err == nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("View served a stale parse after an in-place edit")
	}
}
