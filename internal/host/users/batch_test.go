package users

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Two transactions of one DB: the second waits for the first, is handed
// the locks the moment the first lets go, and gives up after LockTimeout
// with a LockError that says who holds them.
func TestBeginWaitsForTheProcessOwnTransaction(t *testing.T) {
	root := newRootFrom(t, "testdata/odd")
	db := &DB{Root: root, LockTimeout: 200 * time.Millisecond, Now: time.Now}
	tx := begin(t, db)
	_, err := db.Begin(context.Background())
	le := lockErr(t, err)
	if le.Path != db.Path(".pwd.lock") || !strings.Contains(le.Reason, "this process") || le.Waited < 200*time.Millisecond {
		t.Errorf("LockError %+v", le)
	}

	db.LockTimeout = 10 * time.Second
	got := make(chan time.Time, 1)
	go func() {
		tx2, err := db.Begin(context.Background())
		at := time.Now()
		if err == nil {
			err = tx2.Abort()
		}
		if err != nil {
			t.Error(err)
		}
		got <- at
	}()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	mustOK(t, tx.Abort())
	if wait := (<-got).Sub(released); wait > 50*time.Millisecond {
		t.Errorf("the waiting Begin got the locks %v after they were released", wait)
	}
	noLockFiles(t, root)
}

// What a commit leaves in View's cache is what parsing the written files
// gives: the next View parses nothing, and sees exactly the files.
func TestCommitCachesWhatItWrote(t *testing.T) {
	root := newRootFrom(t, "testdata/odd")
	// A last line without its newline, which a new entry must not join.
	p := filepath.Join(root, "etc", "group")
	b, err := os.ReadFile(p)
	mustOK(t, err)
	mustOK(t, os.WriteFile(p, []byte(strings.TrimSuffix(string(b), "\n")), 0o644))
	db := newDB(root)
	ctx := context.Background()
	check := func(what string) {
		t.Helper()
		for k := range numFiles {
			c := db.cache[k]
			if c == nil {
				continue
			}
			data := readEtc(t, root, k.String())
			key, _ := keyOf(db.path(k))
			if c.key != key || string(c.file.data) != string(data) {
				t.Errorf("%s: cached %s is not the file on disk", what, k)
			}
			if got, want := recordsOf(c.file.recs), recordsOf(parseRecords(k, data)); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: cached records of %s differ from a parse:\n got %v\nwant %v", what, k, got, want)
			}
		}
	}
	for i := range 3 {
		name := fmt.Sprintf("cached%d", i)
		_, err := db.Update(ctx, func(tx *Tx) error { return addTenant(tx, name, 30000+i) })
		mustOK(t, err)
		check("add " + name)
	}
	_, err = db.Update(ctx, func(tx *Tx) error {
		if err := tx.DeleteUser("cached1"); err != nil {
			return err
		}
		return tx.DeleteGroup("cached1")
	})
	mustOK(t, err)
	check("delete")
	_, err = db.Update(ctx, func(tx *Tx) error {
		u, err := tx.User("cached2")
		if err != nil {
			return err
		}
		u.Shell = "/bin/bash"
		return tx.UpdateUser(u)
	})
	mustOK(t, err)
	check("update")
	mustOK(t, db.View(ctx, func(tx *Tx) error {
		_, err := tx.User("cached0")
		return err
	}))
}

// addTenant adds a private group and a user of that id.
func addTenant(tx *Tx, name string, id int) error {
	if err := tx.AddGroup(Group{Name: name, GID: id, Password: "x"}); err != nil {
		return err
	}
	sh := tx.NewShadow(false)
	return tx.AddUser(User{Name: name, Password: "x", UID: id, GID: id, Home: "/nonexistent", Shell: "/usr/sbin/nologin", Shadow: &sh})
}

type recordView struct {
	Raw        string
	Line       int
	Fields     []string
	Entry, NIS bool
	Err        string
}

func recordsOf(recs []*record) []recordView {
	out := make([]recordView, len(recs))
	for i, r := range recs {
		out[i] = recordView{Raw: r.raw, Line: r.line, Fields: r.fields, Entry: r.entry, NIS: r.nis}
		if r.err != nil {
			out[i].Err = r.err.Error()
		}
	}
	return out
}

// A savepoint drops the changes made after it, and only those.
func TestSavepoint(t *testing.T) {
	root := newRootFrom(t, "testdata/odd")
	db := newDB(root)
	before := etcListing(t, root)
	tx := begin(t, db)
	mustOK(t, addTenant(tx, "kept", 30000))
	sp := tx.Savepoint()
	mustOK(t, tx.AddGroup(Group{Name: "dropped", GID: 30001, Password: "x"}))
	if err := tx.AddUser(User{Name: "kept", UID: 30001, GID: 30001, Home: "/", Shell: "/bin/sh"}); !errors.Is(err, ErrUserExists) {
		t.Fatalf("second add: %v", err)
	}
	mustOK(t, tx.RollbackTo(sp))
	if _, err := tx.Group("dropped"); !errors.Is(err, ErrNotFound) {
		t.Errorf("group added after the savepoint: %v", err)
	}
	mustOK(t, tx.Commit())
	if before == etcListing(t, root) {
		t.Fatal("nothing was written")
	}
	mustOK(t, db.View(context.Background(), func(tx *Tx) error {
		if _, err := tx.User("kept"); err != nil {
			return err
		}
		if _, err := tx.Group("dropped"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("dropped group written: %w", err)
		}
		return nil
	}))
	// Back to a savepoint taken before any change: nothing to write.
	tx = begin(t, db)
	sp = tx.Savepoint()
	mustOK(t, addTenant(tx, "gone", 30002))
	mustOK(t, tx.RollbackTo(sp))
	if tx.Changed() {
		t.Error("changed after rolling back every change")
	}
	mustOK(t, tx.Abort())
	if err := tx.RollbackTo(sp); !errors.Is(err, ErrTxDone) {
		t.Errorf("RollbackTo after Abort: %v", err)
	}
}
