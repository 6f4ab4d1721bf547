package users

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var etcFiles = []string{"passwd", "shadow", "group", "gshadow"}

// compareRoots fails the test when the four files (and their backups)
// differ between two roots.
func compareRoots(t *testing.T, theirs, ours string, backups bool) {
	t.Helper()
	names := etcFiles
	if backups {
		for _, n := range etcFiles {
			names = append(names, n+"-")
		}
	}
	for _, n := range names {
		a, b := readEtc(t, theirs, n), readEtc(t, ours, n)
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs (-useradd +ours):\n%s", n, cmp.Diff(string(a), string(b)))
		}
	}
}

// The entries we write are byte for byte what Debian's useradd/userdel
// write for the same account, and so are the backups.
func TestIndistinguishableFromShadowUtils(t *testing.T) {
	tests := []struct {
		name   string
		system bool
		args   []string
		user   User
	}{
		{
			name: "tenant",
			args: []string{"-M", "-u", "23456", "-c", "WCP360 tenant acme", "-d", "/srv/www/acme", "-s", "/usr/sbin/nologin", "acme"},
			user: User{Name: "acme", UID: 23456, GID: 23456, Comment: "WCP360 tenant acme", Home: "/srv/www/acme", Shell: "/usr/sbin/nologin"},
		},
		{
			name:   "system",
			system: true,
			args:   []string{"-r", "-M", "-u", "905", "-c", "WCP360 service", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "wcpsvc"},
			user:   User{Name: "wcpsvc", UID: 905, GID: 905, Comment: "WCP360 service", Home: "/nonexistent", Shell: "/usr/sbin/nologin"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			theirs, ours := newRoot(t), newRoot(t)
			runTool(t, "useradd", append([]string{"--prefix", theirs}, tt.args...)...)
			db := newDB(ours)
			_, err := db.Update(context.Background(), func(tx *Tx) error {
				if err := tx.AddGroup(Group{Name: tt.user.Name, GID: tt.user.GID}); err != nil {
					return err
				}
				u := tt.user
				sh := tx.NewShadow(tt.system)
				u.Shadow = &sh
				return tx.AddUser(u)
			})
			mustOK(t, err)
			compareRoots(t, theirs, ours, true)

			runTool(t, "userdel", "--prefix", theirs, tt.user.Name)
			_, err = db.Update(context.Background(), func(tx *Tx) error {
				if err := tx.DeleteUser(tt.user.Name); err != nil {
					return err
				}
				return tx.DeleteGroup(tt.user.Name)
			})
			mustOK(t, err)
			compareRoots(t, theirs, ours, false)
		})
	}
}

func TestMembershipLikeUsermod(t *testing.T) {
	theirs, ours := newRoot(t), newRoot(t)
	for _, root := range []string{theirs, ours} {
		runTool(t, "useradd", "--prefix", root, "-M", "-u", "23456", "-d", "/srv/www/acme", "-s", "/usr/sbin/nologin", "acme")
	}
	runTool(t, "usermod", "--prefix", theirs, "-a", "-G", "users", "acme")
	_, err := newDB(ours).Update(context.Background(), func(tx *Tx) error { return tx.AddMember("users", "acme") })
	mustOK(t, err)
	compareRoots(t, theirs, ours, false)
}

// pwck and grpck accept what we write, after a mix of operations.
func TestPwckAcceptsOurFiles(t *testing.T) {
	root := newRoot(t)
	db := newDB(root)
	_, err := db.Update(context.Background(), func(tx *Tx) error {
		for _, n := range []string{"acme", "bob", "carol"} {
			tenant(t, tx, n, 20000, 29999)
		}
		if err := tx.AddGroup(Group{Name: "webadmins", GID: 30000, Members: []string{"acme", "bob"}}); err != nil {
			return err
		}
		if err := tx.AddMember("users", "carol"); err != nil {
			return err
		}
		u, err := tx.User("bob")
		if err != nil {
			return err
		}
		u.Comment = "WCP360 tenant bob,,,"
		u.Shell = "/bin/bash"
		return tx.UpdateUser(u)
	})
	mustOK(t, err)
	_, err = db.Update(context.Background(), func(tx *Tx) error {
		if err := tx.DeleteUser("acme"); err != nil {
			return err
		}
		return tx.DeleteGroup("acme")
	})
	mustOK(t, err)
	checkPwck(t, root, nil)
}

// The check is not vacuous: pwck and grpck do see broken files.
func TestPwckSeesBrokenFiles(t *testing.T) {
	root := newRoot(t)
	checkPwck(t, root, nil) // the fixture itself is clean once homes exist
	for _, n := range []string{"passwd", "group"} {
		p := filepath.Join(root, "etc", n)
		b := readEtc(t, root, n)
		first := strings.SplitAfter(string(b), "\n")[0]
		mustOK(t, os.WriteFile(p, append(b, first...), 0o644))
	}
	for form, report := range pwckReports(t, root) {
		if !strings.Contains(report, "duplicate") {
			t.Errorf("%s did not see a duplicated entry: %q", form, report)
		}
	}
}
