package tenant_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
)

// Applies that arrive while a batch holds the account files go together in
// the next one. A tenant of that batch whose home cannot be laid out fails
// alone: the batch is undone from its snapshot and the others are applied
// again without it.
func TestBatchUndoneForOneHomeRunsAgain(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	// bad's tmp is a symbolic link: recorded by the snapshot, refused when
	// the home is laid out, after the account files are written.
	victim := t.TempDir()
	must(t, os.MkdirAll("/srv/www/bad", 0o750))
	must(t, os.Symlink(victim, "/srv/www/bad/tmp"))
	e, errs, _ := burstBehindABatch(t)
	if err := errs["bad"]; !errors.Is(err, tenant.ErrSymlink) || !strings.Contains(err.Error(), "restored from snapshot") {
		t.Errorf("bad: %v, want ErrSymlink and the restore", err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("wrote through the symlink: %v", ents)
	}
	if fi, err := os.Lstat("/srv/www/bad/tmp"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("bad's tmp after the undo: %v %v", fi, err)
	}
	// The first batch, the batch with bad (written, then undone), the
	// others again.
	if st := e.step.Stats(); st.Batches != 3 {
		t.Errorf("stats %+v, want 3 writes", st)
	}
}

// A batch whose snapshot fails (a home that is a symbolic link cannot be
// recorded) runs again one tenant at a time: only that tenant fails.
func TestBatchSnapshotFailureFailsOneTenant(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	victim := t.TempDir()
	must(t, os.Symlink(victim, "/srv/www/bad"))
	_, errs, _ := burstBehindABatch(t)
	if err := errs["bad"]; err == nil || !strings.Contains(err.Error(), "snapshot before changing the host") {
		t.Errorf("bad: %v, want the snapshot's failure", err)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("wrote through the symlink: %v", ents)
	}
}

// burstBehindABatch applies "first", holds its batch until applies of t1,
// t2, bad, t3 and t4 wait behind it, then lets them all go. It checks that
// every tenant but bad converged, with a uid of its own and no user for
// bad, and returns each apply's error and snapshot.
func burstBehindABatch(t *testing.T) (*env, map[string]error, map[string]string) {
	t.Helper()
	release := make(chan struct{})
	var once sync.Once
	e := newEnv(t, func(o *tenant.Options) {
		o.Fault = func(stage string) error {
			if stage == "account" {
				once.Do(func() { <-release }) // the first batch holds the locks
			}
			return nil
		}
	})
	ctx := context.Background()
	names := []string{"first", "t1", "t2", "bad", "t3", "t4"}
	rows := map[string]store.Resource{}
	for _, n := range names {
		rows[n] = e.row(n, v1alpha1.TenantSpec{})
	}
	errs, snaps := map[string]error{}, map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	apply := func(n string) {
		row := rows[n]
		wg.Go(func() {
			snap, err := e.step.Apply(ctx, row, nil)
			mu.Lock()
			errs[n], snaps[n] = err, snap
			mu.Unlock()
		})
	}
	apply("first")
	for e.step.Stats().Batches == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, n := range names[1:] {
		apply(n)
	}
	time.Sleep(300 * time.Millisecond) // they all wait behind the first batch
	close(release)
	wg.Wait()
	t.Logf("stats %+v", e.step.Stats())

	if out, err := run(t, nil, "getent", "passwd", "bad"); err == nil {
		t.Errorf("bad has a user: %s", out)
	}
	uids := map[string]string{}
	for _, n := range names {
		if n == "bad" {
			continue
		}
		if errs[n] != nil {
			t.Errorf("%s: %v", n, errs[n])
			continue
		}
		if ds, err := e.step.Observe(ctx, rows[n]); err != nil || len(ds) > 0 {
			t.Errorf("%s after its batch: %v %v", n, ds, err)
		}
		if !strings.HasPrefix(snaps[n], tenant.SnapshotKindBatch+"/"+tenant.SnapshotNameBatch+"/") &&
			!strings.HasPrefix(snaps[n], "Tenant/"+n+"/") {
			t.Errorf("%s: snapshot %q", n, snaps[n])
		}
		id := mustRun(t, "id", "-u", n)
		if other, dup := uids[id]; dup {
			t.Errorf("%s and %s share uid %s", n, other, id)
		}
		uids[id] = n
	}
	return e, errs, snaps
}
