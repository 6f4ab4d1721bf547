package users

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

func lockErr(t *testing.T, err error) *LockError {
	t.Helper()
	var le *LockError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want a *LockError matching ErrLocked", err)
	}
	return le
}

func TestPwdLockHeldInProcess(t *testing.T) {
	root := newRoot(t)
	tx := begin(t, newDB(root))

	db2 := &DB{Root: root, LockTimeout: 300 * time.Millisecond, Now: time.Now}
	start := time.Now()
	_, err := db2.Begin(context.Background())
	le := lockErr(t, err)
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", took)
	}
	wantMsg := "another program holds " + filepath.Join(root, "etc", ".pwd.lock") + " (is useradd or vipw running?)"
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("message %q does not say %q", err, wantMsg)
	}
	if le.Path != db2.Path(".pwd.lock") || le.Waited < 300*time.Millisecond {
		t.Errorf("LockError %+v", le)
	}

	// The caller's context ending is a lock failure and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = (&DB{Root: root, LockTimeout: time.Minute, Now: time.Now}).Begin(ctx)
	lockErr(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to match context.DeadlineExceeded", err)
	}

	mustOK(t, tx.Abort())
	tx2, err := db2.Begin(context.Background())
	mustOK(t, err)
	mustOK(t, tx2.Abort())
	noLockFiles(t, root)
}

// glibc's lckpwdf takes a classic (process-associated) fcntl lock; ours is
// an OFD lock. The kernel makes the two conflict both ways.
func TestPwdLockAgainstClassicFcntlLock(t *testing.T) {
	root := newRoot(t)
	db := &DB{Root: root, LockTimeout: 300 * time.Millisecond, Now: time.Now}
	pwdLock := db.Path(".pwd.lock")

	holder := startHolder(t, pwdLock)
	_, err := db.Begin(context.Background())
	lockErr(t, err)
	if !strings.Contains(err.Error(), "another program holds "+pwdLock) {
		t.Errorf("message: %v", err)
	}
	noLockFiles(t, root)
	mustOK(t, holder.Signal(os.Kill))
	<-holder.Done()

	tx := begin(t, db)
	if got := probeClassicLock(t, pwdLock); got != "busy" {
		t.Errorf("while we hold the lock a classic lock attempt gets %q, want busy", got)
	}
	mustOK(t, tx.Abort())
	if got := probeClassicLock(t, pwdLock); got != "free" {
		t.Errorf("after Abort a classic lock attempt gets %q, want free", got)
	}
}

func TestFileLockHeldByLiveProcess(t *testing.T) {
	root := newRoot(t)
	db := &DB{Root: root, LockTimeout: 300 * time.Millisecond, Now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	sleeper, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: program(t, "sleep"), Args: []string{"60"}}, nil)
	mustOK(t, err)
	t.Cleanup(func() { cancel(); _ = sleeper.Wait() })
	groupLock := db.Path("group.lock")
	writeLock(t, groupLock, pidContent(sleeper.Pid()))

	_, err = db.Begin(context.Background())
	le := lockErr(t, err)
	if le.Path != groupLock || le.PID != sleeper.Pid() {
		t.Errorf("LockError %+v, want %s held by %d", le, groupLock, sleeper.Pid())
	}
	if !strings.Contains(err.Error(), "is held by pid") {
		t.Errorf("message: %v", err)
	}
	// The locks taken before group's were released; group's is untouched.
	for _, n := range []string{"passwd.lock", "shadow.lock", "gshadow.lock"} {
		if _, err := os.Stat(db.Path(n)); err == nil {
			t.Errorf("%s left behind", n)
		}
	}
	if b, err := os.ReadFile(groupLock); err != nil || string(b) != pidContent(sleeper.Pid()) {
		t.Errorf("the holder's lock file was changed: %q, %v", b, err)
	}

	// Once the holder is gone its lock is stale and is taken over.
	cancel()
	_ = sleeper.Wait()
	tx := begin(t, db)
	if b, err := os.ReadFile(groupLock); err != nil || string(b) != pidContent(os.Getpid()) {
		t.Errorf("group.lock = %q, %v; want our pid", b, err)
	}
	mustOK(t, tx.Abort())
	noLockFiles(t, root)
}

func TestStaleFileLocks(t *testing.T) {
	tests := []struct {
		name    string
		content func(t *testing.T) string
	}{
		{"dead pid", func(t *testing.T) string { return pidContent(deadPid(t)) }},
		{"dead pid with newline", func(t *testing.T) string { return strings.TrimSuffix(pidContent(deadPid(t)), "\x00") + "\n" }},
		{"our own pid", func(*testing.T) string { return pidContent(os.Getpid()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t)
			db := &DB{Root: root, LockTimeout: 2 * time.Second, Now: time.Now}
			for _, n := range []string{"passwd.lock", "gshadow.lock"} {
				writeLock(t, db.Path(n), tt.content(t))
			}
			tx := begin(t, db)
			tenant(t, tx, "acme", 20000, 29999)
			mustOK(t, tx.Commit())
			noLockFiles(t, root)
			if entryNames(t, root, passwdFile)["acme"] != 1 {
				t.Error("commit after taking over stale locks did not write")
			}
		})
	}
}

func TestInvalidFileLockIsNotTakenOver(t *testing.T) {
	root := newRoot(t)
	db := &DB{Root: root, LockTimeout: 200 * time.Millisecond, Now: time.Now}
	for _, content := range []string{"", "garbage", "-5\x00"} {
		writeLock(t, db.Path("shadow.lock"), content)
		_, err := db.Begin(context.Background())
		le := lockErr(t, err)
		if le.Reason == "" || le.PID != 0 {
			t.Errorf("%q: LockError %+v", content, le)
		}
		if b, _ := os.ReadFile(db.Path("shadow.lock")); string(b) != content {
			t.Errorf("%q: lock file changed to %q", content, b)
		}
	}
}

// useradd -R chroots into the root, where glibc's lckpwdf locks
// <root>/etc/.pwd.lock: the whole non-prefix protocol of a live system.
// --prefix skips lckpwdf and relies on the per-file locks alone. Either
// way useradd must wait for our transaction and then see our entries.
func TestUseraddWaitsForUs(t *testing.T) {
	for _, prefix := range []bool{false, true} {
		name := "chroot"
		if prefix {
			name = "prefix"
		}
		t.Run(name, func(t *testing.T) {
			root := newRoot(t)
			db := newDB(root)
			tx := begin(t, db)
			tenant(t, tx, "acme", 21000, 21999)

			args := append(toolArgs(root, prefix), "-M", "-K", "UID_MIN=21000", "-K", "UID_MAX=21999",
				"-K", "GID_MIN=21000", "-K", "GID_MAX=21999", "theirs")
			out := newWatchWriter("\x00never")
			p, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: program(t, "useradd"), Args: args}, out)
			mustOK(t, err)
			select {
			case <-p.Done():
				t.Fatalf("useradd finished while we held the locks: exit %d: %s", p.ExitCode(), out.String())
			case <-time.After(1500 * time.Millisecond):
			}
			mustOK(t, tx.Commit())
			if err := p.Wait(); err != nil {
				t.Fatalf("useradd: %v: %s", err, out.String())
			}

			tx = begin(t, db)
			ours, err := tx.User("acme")
			mustOK(t, err)
			theirs, err := tx.User("theirs")
			mustOK(t, err)
			mustOK(t, tx.Abort())
			if ours.UID != 21000 || theirs.UID != 21001 {
				t.Errorf("uids: ours %d, theirs %d; useradd did not see our entry", ours.UID, theirs.UID)
			}
			noLockFiles(t, root)
			checkPwck(t, root, nil)
		})
	}
}
