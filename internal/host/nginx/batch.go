package nginx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/snapshot"
)

// Group commit. A change (Apply or Remove of one domain) snapshots and
// writes its site file, then joins the pending batch and waits for its
// outcome. The first change of a batch starts a timer of Options.Window;
// when it fires the batch takes the files lock exclusively (changes still
// writing finish first; later ones wait and form the next batch), runs ONE
// `nginx -t`, and on success ONE reload. When nginx -t fails, the domains
// its message names are restored and told so (ConfigError), the others are
// tested again; a message that names none of them restores them all
// (TestError). A batch that runs for seconds (10,000 sites) lets the next
// one fill up meanwhile, so a burst costs a handful of reloads.

// change is one domain's part of a batch.
type change struct {
	domain string
	// paths nginx could name in an error that is this change's fault:
	// its site file, its admin include directory ("/"-terminated),
	// certificate, key and log files.
	paths []string
	snap  *snapshot.Snapshot
	err   error
}

type batch struct {
	changes []*change
	done    chan struct{}
}

// join adds c to the pending batch, starting one if needed. The caller
// holds m.files shared, so the batch cannot run before c's file is written.
func (m *Manager) join(c *change) *batch {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.pending
	if b == nil {
		b = &batch{done: make(chan struct{})}
		m.pending = b
		go m.runBatch(b)
	}
	b.changes = append(b.changes, c)
	return b
}

func (m *Manager) runBatch(b *batch) {
	t := time.NewTimer(m.opts.Window)
	<-t.C
	m.files.Lock()
	defer m.files.Unlock()
	m.mu.Lock()
	if m.pending == b {
		m.pending = nil
	}
	m.stats.BatchSizes = append(m.stats.BatchSizes, len(b.changes))
	m.mu.Unlock()
	defer close(b.done)
	m.commit(context.Background(), b.changes)
}

// commit tests and reloads the changes (whose files are on disk), and
// leaves in c.err each change's outcome. The caller holds m.files.
func (m *Manager) commit(ctx context.Context, changes []*change) {
	start := m.opts.Clock()
	active := slices.Clone(changes)
	var undone []*change
	undo := func(cs []*change, err func(*change) error) {
		for _, c := range slices.Clone(cs) {
			c.err = err(c)
			if rerr := c.snap.Restore(context.WithoutCancel(ctx)); rerr != nil {
				c.err = errors.Join(c.err, fmt.Errorf("restore the previous site file: %w", rerr))
			}
			m.count(func(s *Stats) { s.Writes++ })
			active = slices.DeleteFunc(active, func(a *change) bool { return a == c })
			undone = append(undone, c)
		}
	}
	tested := false
	for !tested {
		msg, err := m.test(ctx)
		switch {
		case err == nil:
			tested = true
		case msg == "":
			// nginx could not be run at all.
			undo(active, func(*change) error { return err })
			tested = true
		case len(active) == 0:
			// Broken without any of our changes: nothing more we can undo.
			for _, c := range undone {
				var te *TestError
				if errors.As(c.err, &te) {
					te.StillFailing = true
				}
			}
			m.opts.Logger.Error("nginx -t fails even after undoing a batch", "message", msg)
			tested = true
		default:
			// The domains whose files nginx names are at fault, unless it
			// ran out of something (descriptors, memory, space) while
			// opening one of them.
			var culprits []*change
			for _, c := range active {
				if !hostWide(msg) && slices.ContainsFunc(c.paths, func(p string) bool { return mentions(msg, p) }) {
					culprits = append(culprits, c)
				}
			}
			if len(culprits) > 0 {
				undo(culprits, func(c *change) error {
					return &ConfigError{Domain: c.domain, NginxMessage: msg, Err: ErrRejected}
				})
			} else {
				undo(active, func(*change) error { return &TestError{NginxMessage: msg} })
			}
		}
	}
	if len(active) > 0 {
		if err := m.reload(ctx); err != nil {
			undo(active, func(*change) error { return err })
		}
	}
	for _, c := range changes {
		var err error
		if c.err == nil {
			err = c.snap.Commit()
		} else {
			err = c.snap.Discard()
		}
		if err != nil {
			m.opts.Logger.Warn("nginx: snapshot bookkeeping", "domain", c.domain, "err", err)
		}
	}
	m.opts.Logger.Info("nginx batch", "changes", len(changes), "applied", len(active),
		"undone", len(undone), "took", m.opts.Clock().Sub(start))
}

// test runs nginx -t: nil, or the error with nginx's message ("" when nginx
// could not be run).
func (m *Manager) test(ctx context.Context) (string, error) {
	m.count(func(s *Stats) { s.Tests++ })
	if pid, err := m.masterPID(); err != nil {
		return "", err
	} else if err := m.raiseLimits(pid); err != nil {
		m.opts.Logger.Warn("nginx: cannot raise the open files limit; many sites may fail with EMFILE", "err", err)
	}
	out, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: m.opts.NginxBin, Args: []string{"-t", "-q", "-c", m.opts.MainConf},
		Timeout: m.opts.CommandTimeout})
	if err == nil {
		return "", nil
	}
	var ce *cmdrun.Error
	if errors.As(err, &ce) && len(out) > 0 {
		return nginxMessage(string(out)), err
	}
	return "", err
}
