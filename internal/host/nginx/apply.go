package nginx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wcp360/wcp360/internal/host"
)

// Apply makes the domain's site file the rendering of s and returns once
// nginx serves it. A file that already matches returns at once: nothing
// is written, tested or reloaded. Otherwise the file is snapshotted and
// written atomically, and the change joins the next batch (one nginx -t,
// one reload for all changes within Options.Window) and returns its
// outcome: nil once the new configuration is in effect, a *ConfigError
// when nginx refused this domain's configuration (the previous file is
// back), a *TestError when the batch failed without naming a domain.
//
// The log files are created (see ensureLogs) even when the site is
// unchanged. An unsafe admin include directory is left out of the site and
// reported, after the site is applied, as a *ConfigError matching
// ErrUnsafeCustomDir.
func (m *Manager) Apply(ctx context.Context, s Site) error {
	caps, err := m.Capabilities(ctx)
	if err != nil {
		return err
	}
	unlock := m.lockDomain(s.Domain)
	defer unlock()
	want, err := m.Render(s, caps)
	if err != nil {
		return err
	}
	var unsafe error
	if _, err := m.customDirSafe(s.Domain); errors.Is(err, ErrUnsafeCustomDir) {
		unsafe = &ConfigError{Domain: s.Domain, Err: err}
	} else if err != nil {
		return fmt.Errorf("nginx site %s: %w", s.Domain, err)
	}
	uid, err := m.workerUID()
	if err != nil {
		return err
	}
	if err := m.ensureLogs(s, uid); err != nil {
		return fmt.Errorf("nginx site %s: %w", s.Domain, err)
	}
	path := m.SitePath(s.Domain)
	have, ok, err := readIfExists(path)
	if err != nil {
		return fmt.Errorf("nginx site %s: %w", s.Domain, err)
	}
	if ok && bytes.Equal(have, want) {
		return unsafe
	}
	c := &change{domain: s.Domain, paths: m.ownedPaths(s)}
	if err := m.change(ctx, c, "apply", func() error { return atomicfile.Write(path, want, 0o644, -1, -1) }); err != nil {
		return err
	}
	return unsafe
}

// Remove removes the domain's site file (snapshotted) and returns once
// nginx no longer serves it. A missing file returns nil at once. Logs and
// the admin include directory are kept: they are not ours to delete.
func (m *Manager) Remove(ctx context.Context, domain string) error {
	if !isDomain(domain, false) {
		return invalid("domain %q is not a lowercase DNS name", domain)
	}
	unlock := m.lockDomain(domain)
	defer unlock()
	path := m.SitePath(domain)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	c := &change{domain: domain, paths: []string{path, m.customDir(domain) + "/"}}
	return m.change(ctx, c, "remove", func() error {
		if err := os.Remove(path); err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(path))
	})
}

// change snapshots the site file, mutates it, joins the pending batch and
// waits for the batch's outcome. The caller holds the domain's lock, so
// the batch's restore of this file cannot race the domain's next change.
func (m *Manager) change(ctx context.Context, c *change, reason string, mutate func() error) error {
	m.files.RLock()
	snap, err := m.opts.Snapshots.Take(ctx, SnapshotKindSite, c.domain, reason, []string{m.SitePath(c.domain)})
	if err != nil {
		m.files.RUnlock()
		return fmt.Errorf("nginx site %s: %w", c.domain, err)
	}
	if err := mutate(); err != nil {
		err = errors.Join(fmt.Errorf("nginx site %s: %w", c.domain, err),
			snap.Restore(context.WithoutCancel(ctx)), snap.Discard())
		m.files.RUnlock()
		return err
	}
	m.count(func(s *Stats) { s.Writes++ })
	c.snap = snap
	b := m.join(c)
	m.files.RUnlock()
	// The batch runs on its own (it is shared): even when ctx ends, wait
	// for it, so that the domain's lock covers its possible restore.
	<-b.done
	return c.err
}

// ownedPaths are the paths an nginx -t message may name that are the
// site's own.
func (m *Manager) ownedPaths(s Site) []string {
	ps := []string{m.SitePath(s.Domain), m.customDir(s.Domain) + "/", m.accessLog(s)}
	if m.opts.SharedErrorLog == "" {
		ps = append(ps, m.errorLog(s))
	}
	if s.TLS != nil {
		ps = append(ps, s.TLS.CertFile, s.TLS.KeyFile)
	}
	return ps
}

// workerUID is the uid of nginx.conf's user directive.
func (m *Manager) workerUID() (int, error) {
	data, err := os.ReadFile(m.opts.MainConf)
	if err != nil {
		return 0, err
	}
	mc, err := readMainConf(data, m.httpConf())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.opts.MainConf, err)
	}
	return lookupUID(mc.user)
}

// maxLineDiffs bounds the line differences Observe reports per site.
const maxLineDiffs = 20

// Observe compares the domain's site file on disk with the rendering of s
// and lists the differences: a missing file; or a changed one, as its
// checksum and size, then one Difference per changed line ("vhost
// acme.test line 12", want and have that line, "(none)" for a line only
// one side has), at most maxLineDiffs of them. A missing access log and an
// unsafe admin include directory are reported too. No difference: nil.
func (m *Manager) Observe(ctx context.Context, s Site) ([]host.Difference, error) {
	caps, err := m.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	want, err := m.Render(s, caps)
	if err != nil {
		return nil, err
	}
	have, ok, err := readIfExists(m.SitePath(s.Domain))
	if err != nil {
		return nil, err
	}
	field := "vhost " + s.Domain
	var ds []host.Difference
	switch {
	case !ok:
		ds = append(ds, host.Difference{Field: field, Want: describe(want), Have: "missing"})
	case !bytes.Equal(have, want):
		ds = append(ds, host.Difference{Field: field, Want: describe(want), Have: describe(have)})
		ds = append(ds, lineDiffs(field, want, have)...)
	}
	if _, err := m.customDirSafe(s.Domain); err != nil {
		ds = append(ds, host.Difference{Field: field + " custom include", Want: "root-owned, not writable by group or others", Have: err.Error()})
	}
	access := m.accessLog(s)
	if _, err := os.Lstat(access); errors.Is(err, fs.ErrNotExist) {
		ds = append(ds, host.Difference{Field: field + " access log", Want: access, Have: "missing"})
	}
	return ds, nil
}

func describe(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("sha256:%s (%d bytes)", hex.EncodeToString(sum[:6]), len(b))
}

// lineDiffs lists the changed lines between want and have (a longest
// common subsequence of lines, so that one inserted line is one
// difference, not a shifted rest of the file).
func lineDiffs(field string, want, have []byte) []host.Difference {
	w := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	h := strings.Split(strings.TrimSuffix(string(have), "\n"), "\n")
	if len(w)*len(h) > 4<<20 {
		return []host.Difference{{Field: field, Want: fmt.Sprintf("%d lines", len(w)), Have: fmt.Sprintf("%d lines (too large to compare line by line)", len(h))}}
	}
	// lcs[i][j]: length of the LCS of h[i:] and w[j:].
	lcs := make([][]int, len(h)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(w)+1)
	}
	for i := len(h) - 1; i >= 0; i-- {
		for j := len(w) - 1; j >= 0; j-- {
			if h[i] == w[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ds []host.Difference
	more := 0
	add := func(line int, want, have string) {
		if len(ds) == maxLineDiffs {
			more++
			return
		}
		ds = append(ds, host.Difference{Field: fmt.Sprintf("%s line %d", field, line), Want: want, Have: have})
	}
	const none = "(none)"
	i, j := 0, 0
	for i < len(h) || j < len(w) {
		if i < len(h) && j < len(w) && h[i] == w[j] {
			i, j = i+1, j+1
			continue
		}
		// A run of removed (have-only) and added (want-only) lines,
		// reported pairwise as changed lines.
		at := i + 1
		var removed, added []string
		for (i < len(h) || j < len(w)) && (i == len(h) || j == len(w) || h[i] != w[j]) {
			if j == len(w) || i < len(h) && lcs[i+1][j] >= lcs[i][j+1] {
				removed = append(removed, h[i])
				i++
			} else {
				added = append(added, w[j])
				j++
			}
		}
		for k := 0; k < max(len(removed), len(added)); k++ {
			wl, hl := none, none
			if k < len(added) {
				wl = strings.TrimSpace(added[k])
			}
			if k < len(removed) {
				hl = strings.TrimSpace(removed[k])
			}
			add(at+min(k, len(removed)), wl, hl)
		}
	}
	if more > 0 {
		ds = append(ds, host.Difference{Field: field, Want: "the rendered file", Have: fmt.Sprintf("%d more changed lines", more)})
	}
	return ds
}
