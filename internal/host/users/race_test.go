package users

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// The id range both sides allocate from, so that a lost update would show
// as a duplicated id.
const raceLo, raceHi = 21000, 29999

// raceShadowUtils runs our writer and shadow-utils (useradd and userdel in
// a loop) against root at the same time, each side adding and deleting
// its own users, and checks that no entry of either side is lost or
// duplicated, that ids stay unique, and that pwck/grpck pass.
//
// root is a temporary directory (shadow-utils then runs with -R root, or
// with --prefix root when prefix is set), or "/" inside a sandbox that has
// private copies of /etc (see TestShadowUtilsRaceRoot).
func raceShadowUtils(t *testing.T, root string, prefix bool, theirRounds int, pause, theirPause time.Duration) {
	t.Helper()
	db := &DB{Root: root, LockTimeout: 30 * time.Second, Now: time.Now}
	ctx := context.Background()
	ourName := func(i int) string { return fmt.Sprintf("wcpr%d", i) }
	theirName := func(i int) string { return fmt.Sprintf("sur%d", i) }

	var baseline map[string]string
	if root == "/" {
		baseline = pwckReports(t, root)
		names := entryNames(t, root, passwdFile)
		for n := range names {
			if len(n) > 4 && (n[:4] == "wcpr" || n[:3] == "sur") {
				t.Fatalf("%s already has a user %s", root, n)
			}
		}
	}

	var (
		mu            sync.Mutex
		ours, theirs  = map[string]bool{}, map[string]bool{}
		ourGone       = map[string]bool{}
		theirGone     = map[string]bool{}
		theirsDone    atomic.Bool
		ourTx, ourDel int
	)
	t.Cleanup(func() {
		if root != "/" {
			return
		}
		for n := range theirs {
			_, _ = cmdrun.Run(ctx, cmdrun.Cmd{Path: program(t, "userdel"), Args: append(toolArgs(root, prefix), n)})
		}
		_, _ = db.Update(ctx, func(tx *Tx) error {
			for n := range ours {
				_ = tx.DeleteUser(n)
				_ = tx.DeleteGroup(n)
			}
			return nil
		})
	})

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 3000 && (i < 20 || !theirsDone.Load()); i++ {
			name := ourName(i)
			_, err := db.Update(ctx, func(tx *Tx) error {
				id, err := tx.NextFreeID(raceLo, raceHi)
				if err != nil {
					return err
				}
				if err := tx.AddGroup(Group{Name: name, GID: id}); err != nil {
					return err
				}
				return tx.AddUser(User{Name: name, UID: id, GID: id, Comment: "WCP360 tenant " + name, Home: "/srv/www/" + name, Shell: "/usr/sbin/nologin"})
			})
			if err != nil {
				t.Errorf("our add %s: %v", name, err)
				return
			}
			mu.Lock()
			ours[name] = true
			ourTx++
			mu.Unlock()
			if i%3 == 2 {
				gone := ourName(i - 1)
				_, err := db.Update(ctx, func(tx *Tx) error {
					if err := tx.DeleteUser(gone); err != nil {
						return err
					}
					return tx.DeleteGroup(gone)
				})
				if err != nil {
					t.Errorf("our delete %s: %v", gone, err)
					return
				}
				mu.Lock()
				delete(ours, gone)
				ourGone[gone] = true
				ourDel++
				mu.Unlock()
			}
			time.Sleep(pause + time.Duration(i%7)*time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		defer theirsDone.Store(true)
		run := func(name string, args ...string) error {
			_, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: program(t, name), Args: append(toolArgs(root, prefix), args...), Timeout: time.Minute})
			return err
		}
		for i := range theirRounds {
			name := theirName(i)
			err := run("useradd", "-M", "-K", fmt.Sprintf("UID_MIN=%d", raceLo), "-K", fmt.Sprintf("UID_MAX=%d", raceHi),
				"-K", fmt.Sprintf("GID_MIN=%d", raceLo), "-K", fmt.Sprintf("GID_MAX=%d", raceHi),
				"-c", "shadow-utils "+name, "-d", "/home/"+name, "-s", "/usr/sbin/nologin", name)
			if err != nil {
				t.Errorf("useradd %s: %v", name, err)
				return
			}
			mu.Lock()
			theirs[name] = true
			mu.Unlock()
			if i%3 == 2 {
				gone := theirName(i - 1)
				if err := run("userdel", gone); err != nil {
					t.Errorf("userdel %s: %v", gone, err)
					return
				}
				mu.Lock()
				delete(theirs, gone)
				theirGone[gone] = true
				mu.Unlock()
			}
			time.Sleep(theirPause)
		}
	}()
	wg.Wait()
	t.Logf("ours: %d adds, %d deletes; shadow-utils: %d rounds", ourTx, ourDel, theirRounds)
	if t.Failed() {
		return
	}

	for k := range numFiles {
		names := entryNames(t, root, k)
		for _, set := range []map[string]bool{ours, theirs} {
			for n := range set {
				if names[n] != 1 {
					t.Errorf("%s: %d entries for %s, want 1", k, names[n], n)
				}
			}
		}
		for _, set := range []map[string]bool{ourGone, theirGone} {
			for n := range set {
				if names[n] != 0 {
					t.Errorf("%s: deleted %s is still there", k, n)
				}
			}
		}
	}
	uids, gids := map[int][]string{}, map[int][]string{}
	for _, r := range parseRecords(passwdFile, readEtc(t, root, "passwd")) {
		if id, ok := r.idField(2); ok {
			uids[id] = append(uids[id], r.name())
		}
	}
	for _, r := range parseRecords(groupFile, readEtc(t, root, "group")) {
		if id, ok := r.idField(2); ok {
			gids[id] = append(gids[id], r.name())
		}
	}
	for _, m := range []map[int][]string{uids, gids} {
		for id, names := range m {
			if len(names) > 1 {
				sort.Strings(names)
				t.Errorf("id %d used by %v", id, names)
			}
		}
	}
	checkPwck(t, root, baseline)
}

func TestShadowUtilsRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix bool
		rounds int
		// pauses between our transactions and between their commands: a
		// waiter blocked in F_SETLKW gets the lock before our next poll,
		// and useradd in prefix mode sleeps a second after a busy lock.
		pause, theirPause time.Duration
	}{
		// -R: useradd takes lckpwdf (.pwd.lock, F_SETLKW) and the per-file
		// locks, as on a live system.
		{"chroot", false, 60, time.Millisecond, 10 * time.Millisecond},
		// --prefix: shadow-utils skips lckpwdf; the per-file locks alone
		// serialise, and useradd retries them once a second.
		{"prefix", true, 9, 25 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			program(t, "useradd")
			raceShadowUtils(t, newRoot(t), tc.prefix, tc.rounds, tc.pause, tc.theirPause)
		})
	}
}

// TestShadowUtilsRaceRoot runs the same race against the root named by
// WCP_USERS_RACE_ROOT: "/" inside internal/sandbox (a mount namespace with
// private copies of /etc), where shadow-utils runs without -R or --prefix
// and uses the real /etc/.pwd.lock. Never point it at a host's real /etc.
func TestShadowUtilsRaceRoot(t *testing.T) {
	root := os.Getenv("WCP_USERS_RACE_ROOT")
	if root == "" {
		t.Skip("WCP_USERS_RACE_ROOT not set (set it to / inside the sandbox)")
	}
	raceShadowUtils(t, root, false, 60, time.Millisecond, 10*time.Millisecond)
}
