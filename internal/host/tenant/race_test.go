package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
)

// TestRaceWithShadowUtils runs the step and shadow-utils against the real
// /etc of a sandbox at the same time: the step converges tenants (and
// removes every other one) while useradd, groupadd, userdel and groupdel
// add and delete their own names, all drawing uids and gids from the same
// space. The locks must serialise them: no entry of either side is lost or
// duplicated, ids stay unique, pwck and grpck find nothing new, and no
// lock file is left behind.
func TestRaceWithShadowUtils(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	const rounds = 25
	tName := func(i int) string { return fmt.Sprintf("t%02d", i) }
	uName := func(i int) string { return fmt.Sprintf("u%02d", i) }
	gName := func(i int) string { return fmt.Sprintf("g%02d", i) }
	removed := func(i int) bool { return i%2 == 1 }

	baseline := shadowCheckReports(t)
	var all []string
	for i := range rounds {
		all = append(all, tName(i), uName(i), gName(i))
	}
	for _, f := range []string{"passwd", "group"} {
		for n, c := range entryCounts(t, f) {
			if c > 0 && slices.Contains(all, n) {
				t.Fatalf("/etc/%s already has %s: pick other names", f, n)
			}
		}
	}
	userGroups := loginDefsYes(t, "USERGROUPS_ENAB") // useradd then makes a group per user

	e := newEnv(t, nil)
	rows := make([]store.Resource, rounds)
	for i := range rows {
		rows[i] = e.row(tName(i), v1alpha1.TenantSpec{HomeDeletionPolicy: v1alpha1.HomeDelete})
	}
	prog := map[string]string{}
	for _, p := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
		path, err := cmdrun.LookPath(p, "/usr/sbin", "/usr/bin", "/sbin", "/bin")
		if err != nil {
			t.Fatal(err)
		}
		prog[p] = path
	}

	ctx := t.Context()
	begin := make(chan struct{})
	var wg sync.WaitGroup
	var ours, theirs time.Duration
	// When each side's operations ran: the proof that they overlapped.
	var ourOps, theirOps []span
	wg.Go(func() {
		<-begin
		start := time.Now()
		defer func() { ours = time.Since(start) }()
		for i, row := range rows {
			op := span{start: time.Now()}
			if err := convergeOnce(ctx, e.step, row); err != nil {
				t.Errorf("converge %s: %v", row.Name, err)
				return
			}
			op.end = time.Now()
			ourOps = append(ourOps, op)
			if removed(i) {
				op := span{start: time.Now()}
				if err := e.step.Remove(ctx, row); err != nil {
					t.Errorf("remove %s: %v", row.Name, err)
					return
				}
				op.end = time.Now()
				ourOps = append(ourOps, op)
			}
		}
	})
	wg.Go(func() {
		<-begin
		start := time.Now()
		defer func() { theirs = time.Since(start) }()
		runTool := func(name string, args ...string) bool {
			op := span{start: time.Now()}
			out, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: prog[name], Args: args, Timeout: 30 * time.Second})
			op.end = time.Now()
			theirOps = append(theirOps, op)
			if err != nil {
				t.Errorf("%s %v: %v (%s)", name, args, err, out)
			}
			return err == nil
		}
		for i := range rounds {
			// -d /nonexistent: pwck does not check that home, so pwck's
			// report can be compared line by line with the one before.
			ok := runTool("useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "-c", "shadow-utils "+uName(i), uName(i)) &&
				runTool("groupadd", gName(i))
			if ok && removed(i) {
				ok = runTool("userdel", uName(i)) && runTool("groupdel", gName(i))
			}
			if !ok {
				return
			}
		}
	})
	close(begin)
	wg.Wait()
	overlaps := 0
	for _, o := range ourOps {
		if slices.ContainsFunc(theirOps, o.overlaps) {
			overlaps++
		}
	}
	t.Logf("step: %d operations in %s, %d of them while a shadow-utils command ran; shadow-utils: %d commands in %s",
		len(ourOps), ours, overlaps, len(theirOps), theirs)
	if t.Failed() {
		return
	}
	if overlaps == 0 {
		t.Fatal("no operation of the step ran while a shadow-utils command did: nothing raced")
	}

	// Every name each side left is there exactly once, every name it
	// removed is gone, in all four files.
	want := map[string]map[string]int{"passwd": {}, "shadow": {}, "group": {}, "gshadow": {}}
	for i := range rounds {
		present := 1
		if removed(i) {
			present = 0
		}
		for f := range want {
			want[f][tName(i)] = present
		}
		want["passwd"][uName(i)], want["shadow"][uName(i)] = present, present
		want["group"][gName(i)], want["gshadow"][gName(i)] = present, present
		if userGroups {
			want["group"][uName(i)], want["gshadow"][uName(i)] = present, present
		}
	}
	for f, names := range want {
		got := entryCounts(t, f)
		for n, c := range got {
			if c > 1 {
				t.Errorf("/etc/%s: %d entries named %s", f, c, n)
			}
		}
		for n, c := range names {
			if got[n] != c {
				t.Errorf("/etc/%s: %d entries named %s, want %d", f, got[n], n, c)
			}
		}
	}
	checkUniqueIDs(t, "passwd")
	checkUniqueIDs(t, "group")

	// The tenants left are whole: account, home, www-data in the group.
	www := kernelCred(t, "www-data")
	for i, row := range rows {
		home := filepath.Join("/srv/www", row.Name)
		_, err := os.Lstat(home)
		if removed(i) {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s of removed %s: %v, want it gone", home, row.Name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", home, err)
		}
		if ds, err := e.step.Observe(ctx, row); err != nil || len(ds) > 0 {
			t.Errorf("%s after the race: differences %v, %v", row.Name, ds, err)
		}
		if tc := kernelCred(t, row.Name); !slices.Contains(www.Groups, tc.Gid) {
			t.Errorf("www-data is not in the group of %s (gid %d): its groups are %v", row.Name, tc.Gid, www.Groups)
		}
	}
	if left := leftoverLocks(t); len(left) > 0 {
		t.Errorf("lock or temporary files left in /etc: %v", left)
	}
	checkShadowReports(t, baseline, all...)
}

// TestLockedPasswdTimesOut proves that a step whose locks are held by
// someone else gives up after Users.LockTimeout with an error that names
// the lock, changes nothing, and converges once the lock is released.
func TestLockedPasswdTimesOut(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	const timeout = 500 * time.Millisecond
	e := newEnv(t, func(o *tenant.Options) { o.Users.LockTimeout = timeout })

	// tryLocked converges name while the lock is held and checks it fails
	// in time, naming lock, with nothing changed.
	tryLocked := func(t *testing.T, name, lock string) {
		t.Helper()
		before := etcSnapshot(t)
		start := time.Now()
		err := e.converge(e.row(name, v1alpha1.TenantSpec{}))
		took := time.Since(start)
		switch {
		case err == nil:
			t.Fatalf("converge %s succeeded while %s was held", name, lock)
		case !errors.Is(err, users.ErrLocked):
			t.Fatalf("converge %s: %v; want an error matching users.ErrLocked", name, err)
		case !strings.Contains(err.Error(), lock):
			t.Errorf("converge %s: %q does not name %s", name, err, lock)
		case reconcile.IsTerminal(err):
			t.Errorf("converge %s: %v is terminal; a busy lock is worth a retry", name, err)
		}
		if took < timeout || took > 2*time.Second {
			t.Errorf("converge %s failed after %s; want the lock timeout (%s) and not much more", name, took, timeout)
		}
		if diff := diffSnapshots(before, etcSnapshot(t)); diff != "" {
			t.Errorf("/etc changed by the failed converge: %s", diff)
		}
		if _, err := os.Lstat(filepath.Join("/srv/www", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("home of %s after the failed converge: %v, want none", name, err)
		}
		t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
	}

	// Like lckpwdf in useradd, vipw or passwd: an fcntl lock on
	// /etc/.pwd.lock (an OFD lock, so it conflicts within this process too)
	// and the <file>.lock files.
	t.Run("pwd.lock", func(t *testing.T) {
		holder := &users.DB{Root: "/", Now: time.Now}
		tx, err := holder.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		tryLocked(t, "locked", "/etc/.pwd.lock")
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
		e.mustConverge(e.row("locked", v1alpha1.TenantSpec{}))
	})

	// Like shadow-utils with --prefix, which skips lckpwdf: only
	// /etc/group.lock, naming a live process. The step takes .pwd.lock,
	// passwd.lock and shadow.lock first, and must give them back.
	t.Run("group.lock", func(t *testing.T) {
		sleep, err := cmdrun.LookPath("sleep", "/usr/bin", "/bin")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		p, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: sleep, Args: []string{"60"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); _ = p.Wait() })
		lock := "/etc/group.lock"
		if err := os.WriteFile(lock, append([]byte(strconv.Itoa(p.Pid())), 0), 0o600); err != nil {
			t.Fatal(err)
		}
		tryLocked(t, "locked2", lock)
		if left := leftoverLocks(t); !slices.Equal(left, []string{lock}) {
			t.Errorf("lock files after the failed converge: %v, want only the foreign %s", left, lock)
		}
		if err := os.Remove(lock); err != nil {
			t.Fatal(err)
		}
		e.mustConverge(e.row("locked2", v1alpha1.TenantSpec{}))
	})
	if left := leftoverLocks(t); len(left) > 0 {
		t.Errorf("lock or temporary files left in /etc: %v", left)
	}
}

// span is when an operation ran.
type span struct{ start, end time.Time }

func (s span) overlaps(o span) bool { return s.start.Before(o.end) && o.start.Before(s.end) }

// convergeOnce is env.converge for a goroutine: observe, apply, observe,
// and every problem returned, not reported.
func convergeOnce(ctx context.Context, step *tenant.Step, row store.Resource) error {
	ds, err := step.Observe(ctx, row)
	if err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	if len(ds) == 0 {
		return nil
	}
	if _, err := step.Apply(ctx, row, ds); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	left, err := step.Observe(ctx, row)
	if err != nil {
		return fmt.Errorf("observe after apply: %w", err)
	}
	if len(left) > 0 {
		return fmt.Errorf("still differs after apply: %v", left)
	}
	return nil
}

// entryCounts counts the entries of /etc/<file> by name.
func entryCounts(t *testing.T, file string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for line := range strings.SplitSeq(readFile(t, filepath.Join("/etc", file)), "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && name != "" && !strings.HasPrefix(name, "#") {
			out[name]++
		}
	}
	return out
}

// checkUniqueIDs fails when two entries of /etc/<file> (passwd or group)
// share an id: what a lost lock between two allocators would make.
func checkUniqueIDs(t *testing.T, file string) {
	t.Helper()
	byID := map[string][]string{}
	for line := range strings.SplitSeq(readFile(t, filepath.Join("/etc", file)), "\n") {
		if f := strings.Split(line, ":"); len(f) >= 4 {
			byID[f[2]] = append(byID[f[2]], f[0])
		}
	}
	for id, names := range byID {
		if len(names) > 1 {
			t.Errorf("/etc/%s: id %s used by %v", file, id, names)
		}
	}
}

// lockLeftover matches what a writer of the account files leaves when it
// dies or forgets to clean up: <file>.lock, the <file>.<pid> it links it
// from, shadow-utils' <file>+ and our <file>.wcp360-* temporary files.
var lockLeftover = regexp.MustCompile(`^(passwd|shadow|group|gshadow)(\.lock|\.[0-9]+|\+|\.wcp360-.*|-\.wcp360-.*)$`)

// leftoverLocks lists those files in /etc. /etc/.pwd.lock is not one: it
// stays, as glibc's lckpwdf leaves it.
func leftoverLocks(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/etc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if lockLeftover.MatchString(e.Name()) {
			out = append(out, filepath.Join("/etc", e.Name()))
		}
	}
	return out
}

// loginDefsYes reports whether /etc/login.defs sets key to yes.
func loginDefsYes(t *testing.T, key string) bool {
	t.Helper()
	for line := range strings.SplitSeq(readFile(t, "/etc/login.defs"), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return strings.EqualFold(f[1], "yes")
		}
	}
	return false
}

// diffSnapshots names the files of an etcSnapshot that differ.
func diffSnapshots(a, b map[string]string) string {
	var out []string
	for f, v := range a {
		if b[f] != v {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
