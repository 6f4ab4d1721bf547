package tenant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/host/users"
)

// Group commit. Each change of a tenant's account rewrites the four account
// files whole (and snapshots them first), as shadow-utils does, under locks
// that serialise every writer: a burst of N new tenants on a host with N
// users would cost N² lines copied, one tenant at a time. So an Apply that
// arrives while another batch holds the locks waits, and the next batch
// takes every change waiting by then: one transaction with each tenant's
// edits, one snapshot of the account files and of every batched home, one
// write of each file, then each home laid out. A lone Apply is a batch of
// one and starts at once; nothing waits for a batch to fill.
//
// A tenant whose edit is refused (a foreign user of its name, no free uid)
// fails alone: its edits are dropped from the transaction before the write.
// A batch whose snapshot cannot be taken (a home that is a symbolic link)
// runs again one tenant at a time, so that only the tenant at fault fails.
// A failure after the write (laying out a home) restores the whole batch's
// snapshot under the same locks, fails that tenant, and runs the others
// again as a new batch; a failure of the write itself fails them all.

// SnapshotKindBatch and SnapshotNameBatch name the snapshots of batches of
// several tenants (a batch of one is snapshotted as its Tenant). Each
// tenant's status.lastSnapshot names its batch's; for retention the batches
// are one resource, so the snapshot store keeps its newest few of them.
const (
	SnapshotKindBatch = "tenant-accounts"
	SnapshotNameBatch = "batch"
)

// change is one tenant's Apply in a batch.
type change struct {
	w          want
	st         v1alpha1.Status
	generation int64
	id         int // uid = gid, once edited

	snap string // the batch's snapshot
	err  error
}

// batcher runs changes in batches, one batch at a time.
type batcher struct {
	running sync.Mutex // held by the goroutine running a batch

	mu      sync.Mutex
	waiting []*change
	stats   Stats
}

// Stats count the account batches, for metrics and benchmarks.
type Stats struct {
	// Batches counts the writes of the account files by tenant applies
	// (one per batch, more when a batch is undone and run again);
	// Applies, the tenant applies those writes carried.
	Batches, Applies int
}

// Stats returns a copy of the counters.
func (s *Step) Stats() Stats {
	s.batches.mu.Lock()
	defer s.batches.mu.Unlock()
	return s.batches.stats
}

// do runs c in the next batch and returns when it is done. The caller
// that finds no batch running runs one, with every change waiting by then.
func (b *batcher) do(ctx context.Context, c *change, run func(context.Context, []*change)) {
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	b.mu.Unlock()
	b.running.Lock()
	defer b.running.Unlock()
	b.mu.Lock()
	batch := b.waiting
	b.waiting = nil
	b.mu.Unlock()
	if len(batch) > 0 {
		// The batch is everyone's: the caller's context ending must not
		// fail the others (the lock wait is bounded by DB.LockTimeout).
		run(context.WithoutCancel(ctx), batch)
	}
	// c ran in this batch or in an earlier one, which finished before
	// b.running was handed on.
}

// applyBatch converges the accounts and homes of cs, and leaves in each
// change its outcome.
func (s *Step) applyBatch(ctx context.Context, cs []*change) {
	for len(cs) > 0 {
		var alone bool
		cs, alone = s.tryBatch(ctx, cs)
		if alone {
			for _, c := range cs {
				for again := []*change{c}; len(again) > 0; {
					again, _ = s.tryBatch(ctx, again)
				}
			}
			return
		}
	}
}

// tryBatch applies cs in one transaction. It returns the changes to run
// again: those that did not fail themselves when a home of the batch could
// not be laid out and the batch was undone; or, with alone, every change
// of a batch of several whose snapshot failed, each to run on its own.
func (s *Step) tryBatch(ctx context.Context, cs []*change) (again []*change, alone bool) {
	fail := func(cs []*change, err error) {
		for _, c := range cs {
			c.err = err
		}
	}
	tx, err := s.opts.Users.Begin(ctx)
	if err != nil {
		fail(cs, err)
		return nil, false
	}
	defer func() { _ = tx.Abort() }() // after WriteHoldingLocks it does nothing
	var edited []*change
	for _, c := range cs {
		sp := tx.Savepoint()
		if err := s.edit(tx, c); err != nil {
			c.err = err
			if rerr := tx.RollbackTo(sp); rerr != nil {
				fail(cs, rerr)
				return nil, false
			}
			continue
		}
		edited = append(edited, c)
	}
	if len(edited) == 0 {
		return nil, false
	}
	snap, err := s.takeSnapshot(ctx, edited)
	if err != nil && len(edited) > 1 {
		return edited, true
	}
	if err != nil {
		fail(edited, fmt.Errorf("snapshot before changing the host: %w", err))
		return nil, false
	}
	for _, c := range edited {
		c.snap = snap.ID()
	}
	s.batches.mu.Lock()
	s.batches.stats.Batches++
	s.batches.stats.Applies += len(edited)
	s.batches.mu.Unlock()
	unlock, err := tx.WriteHoldingLocks()
	defer func() {
		if uerr := unlock(); uerr != nil {
			for _, c := range edited {
				c.err = errors.Join(c.err, uerr)
			}
		}
	}()
	err = errors.Join(err, s.fault("account"))
	var failed []*change
	if err == nil {
		for _, c := range edited {
			if herr := errors.Join(s.home.applyHome(c.w.name, c.id, c.id, c.w.keys), s.fault("home")); herr != nil {
				c.err = herr
				failed = append(failed, c)
			}
		}
	} else {
		fail(edited, err)
		failed = edited
	}
	if len(failed) == 0 {
		if err := snap.Commit(); err != nil {
			s.opts.Logger.Warn("cannot mark snapshot committed", "snapshot", snap.ID(), "err", err)
		}
		return nil, false
	}
	// Undo the whole batch: the account files are one write.
	restored := fmt.Sprintf("the host was restored from snapshot %s", snap.ID())
	if rerr := snap.Restore(context.WithoutCancel(ctx)); rerr != nil {
		for _, c := range edited {
			if c.err == nil {
				c.err = fmt.Errorf("tenant %s failed in the same batch, and restoring snapshot %s also failed: %w", failed[0].w.name, snap.ID(), rerr)
			} else {
				c.err = fmt.Errorf("%w; restoring snapshot %s also failed: %w", c.err, snap.ID(), rerr)
			}
		}
		return nil, false
	}
	for _, c := range edited {
		if c.err != nil {
			c.err = fmt.Errorf("%w (%s)", c.err, restored)
		} else {
			c.snap = ""
			again = append(again, c)
		}
	}
	return again, false
}

// edit makes c's user and group in tx.
func (s *Step) edit(tx *users.Tx, c *change) error {
	a, err := s.look(tx, c.w, c.st)
	if err != nil {
		return err
	}
	if c.id, err = s.pickID(tx, c.w, a); err != nil {
		return err
	}
	return s.editAccount(tx, c.w, a, c.id)
}

// takeSnapshot saves the account files and the homes of cs: as the
// tenant's own snapshot for a batch of one, as a batch snapshot otherwise.
func (s *Step) takeSnapshot(ctx context.Context, cs []*change) (*snapshot.Snapshot, error) {
	paths := s.etcFiles()
	for _, c := range cs {
		paths = append(paths, s.homePaths(c.w.name, c.w.keys)...)
	}
	if len(cs) == 1 {
		return s.opts.Snapshots.Take(ctx, string(v1alpha1.KindTenant), cs[0].w.name,
			fmt.Sprintf("generation %d", cs[0].generation), paths)
	}
	const maxNamed = 20
	var b strings.Builder
	fmt.Fprintf(&b, "%d tenants:", len(cs))
	for i, c := range cs {
		if i == maxNamed {
			fmt.Fprintf(&b, " and %d more", len(cs)-maxNamed)
			break
		}
		fmt.Fprintf(&b, " %s (generation %d)", c.w.name, c.generation)
	}
	return s.opts.Snapshots.Take(ctx, SnapshotKindBatch, SnapshotNameBatch, b.String(), paths)
}
