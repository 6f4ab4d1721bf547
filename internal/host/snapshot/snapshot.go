package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors, matched with errors.Is.
var (
	// ErrInvalid: a kind, name, id or path is not acceptable.
	ErrInvalid = errors.New("invalid snapshot argument")
	// ErrNotFound: no complete snapshot has that id.
	ErrNotFound = errors.New("snapshot not found")
	// ErrTooLarge: a file is over Options.MaxFileBytes.
	ErrTooLarge = errors.New("file too large to snapshot")
	// ErrUnsupported: a path is a FIFO, socket or device.
	ErrUnsupported = errors.New("unsupported file type")
	// ErrSymlink: a parent directory of a path is a symbolic link.
	ErrSymlink = errors.New("parent is a symbolic link, not followed")
	// ErrParent: a parent directory of a path is missing or not a directory.
	ErrParent = errors.New("parent directory")
	// ErrNotEmpty: a directory that did not exist is not empty now.
	ErrNotEmpty = errors.New("not empty")
	// ErrChecksum: saved content does not match its manifest checksum.
	ErrChecksum = errors.New("snapshot content does not match its checksum")
	// ErrChanged: a file changed while it was being copied.
	ErrChanged = errors.New("file changed while being snapshotted")
)

// Defaults of Options.
const (
	DefaultKeep         = 10
	DefaultMaxFileBytes = 64 << 20
)

// Clock is the source of snapshot timestamps and of "now" for MaxAge.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() } //nolint:forbidigo // the real clock itself

// Options configure a Store.
type Options struct {
	// Dir is the base directory, /var/lib/wcp360/snapshots in production.
	// It must be absolute; it is created 0700 when missing.
	Dir string
	// Keep is how many snapshots of one resource Prune keeps; 0 means
	// DefaultKeep.
	Keep int
	// MaxAge drops snapshots older than this (except the newest of each
	// resource); 0 keeps them regardless of age.
	MaxAge time.Duration
	// MaxFileBytes refuses a single file larger than this; 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// Clock defaults to the wall clock.
	Clock Clock
}

// Store takes, lists, loads and prunes snapshots under one base directory.
// It is safe for concurrent use.
type Store struct {
	opts Options
}

// New returns a Store after checking opts.
func New(opts Options) (*Store, error) {
	if opts.Dir == "" || !filepath.IsAbs(opts.Dir) || filepath.Clean(opts.Dir) != opts.Dir {
		return nil, fmt.Errorf("%w: Dir %q must be an absolute, clean path", ErrInvalid, opts.Dir)
	}
	if opts.Keep < 0 || opts.MaxAge < 0 || opts.MaxFileBytes < 0 {
		return nil, fmt.Errorf("%w: Keep, MaxAge and MaxFileBytes must not be negative", ErrInvalid)
	}
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.MaxFileBytes == 0 {
		opts.MaxFileBytes = DefaultMaxFileBytes
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	return &Store{opts: opts}, nil
}

// EntryType is what a path was when the snapshot was taken.
type EntryType string

// Entry types.
const (
	TypeAbsent  EntryType = "absent"
	TypeFile    EntryType = "file"
	TypeDir     EntryType = "dir"
	TypeSymlink EntryType = "symlink"
)

// Entry is one recorded path, as in the manifest.
type Entry struct {
	Path string    `json:"path"`
	Type EntryType `json:"type"`
	// Mode holds the permission bits including setuid, setgid and sticky,
	// as chmod(2) takes them (file and dir).
	Mode uint32 `json:"mode,omitempty"`
	UID  uint32 `json:"uid,omitempty"`
	GID  uint32 `json:"gid,omitempty"`
	// MTime, Size and SHA256 describe a file's content.
	MTime  time.Time `json:"mtime,omitzero"`
	Size   int64     `json:"size,omitempty"`
	SHA256 string    `json:"sha256,omitempty"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
}

// State is where a snapshot is in its life.
type State string

// States. A pending snapshot that is not the one being applied right now
// means the process died between Take and Commit/Restore: the host may be
// half-changed.
const (
	StatePending       State = "pending"
	StateCommitted     State = "committed"
	StateRestored      State = "restored"
	StateRestoreFailed State = "restore-failed"
)

// Info describes a snapshot.
type Info struct {
	// ID is "<kind>/<name>/<timestamp>", the argument of Load.
	ID      string
	Kind    string
	Name    string
	Reason  string
	Created time.Time
	State   State
	Entries []Entry
}

// Snapshot is one complete snapshot, from Take or Load.
type Snapshot struct {
	store *Store
	dir   string

	mu   sync.Mutex // guards info.State
	info Info
}

// ID returns the snapshot's id, for Load.
func (sn *Snapshot) ID() string { return sn.info.ID }

// Info returns a copy of the snapshot's description.
func (sn *Snapshot) Info() Info {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	in := sn.info
	in.Entries = slices.Clone(in.Entries)
	return in
}

const (
	manifestVersion = 1
	manifestFile    = "manifest.json"
	stateFile       = "state"
	filesDir        = "files"
	lockFile        = ".lock"
	stampLayout     = "20060102T150405.000000000Z"
	maxManifest     = 64 << 20
)

type manifest struct {
	Version int       `json:"version"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
	Entries []Entry   `json:"entries"`
}

type stateRecord struct {
	State State     `json:"state"`
	Time  time.Time `json:"time"`
}

var segmentRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)

func checkSegment(what, s string) error {
	if !segmentRE.MatchString(s) || strings.Contains(s, "..") {
		return fmt.Errorf("%w: %s %q", ErrInvalid, what, s)
	}
	return nil
}

func checkPath(p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%w: path %q must be absolute, clean and not /", ErrInvalid, p)
	}
	return nil
}

func (s *Store) resourceDir(kind, name string) string {
	return filepath.Join(s.opts.Dir, kind, name)
}

func blobPath(snapDir string, i int) string {
	return filepath.Join(snapDir, filesDir, strconv.Itoa(i))
}

// lock takes the flock of one resource, creating its directory.
func (s *Store) lock(ctx context.Context, kind, name string) (unlock func(), err error) {
	dir := s.resourceDir(kind, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot lock: %w", err)
	}
	fd := int(f.Fd()) //nolint:gosec // a file descriptor fits an int
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(fd, unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("snapshot lock %s: %w", dir, err)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("snapshot lock %s: %w", dir, ctx.Err())
		case <-t.C:
		}
	}
}

// Take records paths for the resource kind/name before a plan changes them.
// It either records every path or fails (naming each path it could not
// record) and leaves nothing behind.
func (s *Store) Take(ctx context.Context, kind, name, reason string, paths []string) (*Snapshot, error) {
	if err := errors.Join(checkSegment("kind", kind), checkSegment("name", name)); err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: no paths", ErrInvalid)
	}
	sorted := slices.Clone(paths)
	for _, p := range sorted {
		if err := checkPath(p); err != nil {
			return nil, err
		}
	}
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)

	unlock, err := s.lock(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	defer unlock()

	created, dir, err := s.newSnapshotDir(kind, name)
	if err != nil {
		return nil, err
	}
	sn, err := s.take(ctx, dir, sorted, manifest{
		Version: manifestVersion, Kind: kind, Name: name, Reason: reason, Created: created,
	})
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return sn, nil
}

// newSnapshotDir creates the directory of a new snapshot, named after the
// clock but always after the newest existing one of the resource.
func (s *Store) newSnapshotDir(kind, name string) (time.Time, string, error) {
	rdir := s.resourceDir(kind, name)
	t := s.opts.Clock.Now().UTC()
	if latest, ok := newestStamp(rdir); ok && !t.After(latest) {
		t = latest.Add(time.Nanosecond)
	}
	for {
		dir := filepath.Join(rdir, t.Format(stampLayout))
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			t = t.Add(time.Nanosecond)
			continue
		}
		if err != nil {
			return time.Time{}, "", fmt.Errorf("create snapshot: %w", err)
		}
		if err := os.Mkdir(filepath.Join(dir, filesDir), 0o700); err != nil {
			return time.Time{}, "", errors.Join(fmt.Errorf("create snapshot: %w", err), os.RemoveAll(dir))
		}
		return t, dir, nil
	}
}

func newestStamp(rdir string) (time.Time, bool) {
	des, err := os.ReadDir(rdir)
	if err != nil {
		return time.Time{}, false
	}
	var newest time.Time
	found := false
	for _, de := range des {
		if t, err := time.Parse(stampLayout, de.Name()); err == nil && (!found || t.After(newest)) {
			newest, found = t, true
		}
	}
	return newest, found
}

func (s *Store) take(ctx context.Context, dir string, paths []string, m manifest) (*Snapshot, error) {
	t := taker{s: s, dir: dir, seen: map[string]bool{}}
	var errs []error
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.record(p); err != nil {
			errs = append(errs, &fs.PathError{Op: "snapshot", Path: p, Err: err})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.Entries = t.entries
	if err := syncDir(filepath.Join(dir, filesDir)); err != nil {
		return nil, err
	}
	if err := writeJSONAtomic(dir, manifestFile, m); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	return s.snapshotFrom(dir, m, StatePending), nil
}

func (s *Store) snapshotFrom(dir string, m manifest, st State) *Snapshot {
	return &Snapshot{store: s, dir: dir, info: Info{
		ID:      m.Kind + "/" + m.Name + "/" + filepath.Base(dir),
		Kind:    m.Kind,
		Name:    m.Name,
		Reason:  m.Reason,
		Created: m.Created,
		State:   st,
		Entries: m.Entries,
	}}
}

type taker struct {
	s       *Store
	dir     string
	entries []Entry
	seen    map[string]bool
}

func (t *taker) add(e Entry) {
	if !t.seen[e.Path] {
		t.seen[e.Path] = true
		t.entries = append(t.entries, e)
	}
}

// record adds the entry (or entries, for missing parents) of path p.
func (t *taker) record(p string) error {
	if t.seen[p] {
		return nil
	}
	pfd, err := openParent(p)
	var missing *missingError
	var notDir *notDirError
	switch {
	case errors.As(err, &missing):
		// The plan will create the missing parents too: record them absent,
		// outermost first.
		var chain []string
		for q := p; q != missing.Path; q = filepath.Dir(q) {
			chain = append(chain, q)
		}
		chain = append(chain, missing.Path)
		for _, q := range slices.Backward(chain) {
			t.add(Entry{Path: q, Type: TypeAbsent})
		}
		return nil
	case errors.As(err, &notDir):
		t.add(Entry{Path: p, Type: TypeAbsent})
		return nil
	case err != nil:
		return err
	}
	defer closeFD(pfd)
	base := filepath.Base(p)
	st, ok, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	if !ok {
		t.add(Entry{Path: p, Type: TypeAbsent})
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return t.copyFile(pfd, base, p, &st)
	case unix.S_IFDIR:
		t.add(Entry{Path: p, Type: TypeDir, Mode: permBits(&st), UID: st.Uid, GID: st.Gid})
		return nil
	case unix.S_IFLNK:
		target, err := readlinkAt(pfd, base)
		if err != nil {
			return err
		}
		t.add(Entry{Path: p, Type: TypeSymlink, UID: st.Uid, GID: st.Gid, Target: target})
		return nil
	default:
		return fmt.Errorf("%w (mode %#o)", ErrUnsupported, st.Mode&unix.S_IFMT)
	}
}

func (t *taker) copyFile(pfd int, base, p string, lst *unix.Stat_t) error {
	limit := t.s.opts.MaxFileBytes
	if lst.Size > limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, lst.Size, limit)
	}
	fd, err := unix.Openat(pfd, base, readFlags, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	src := os.NewFile(uintptr(fd), p) //nolint:gosec // fd is a fresh, valid descriptor
	defer func() { _ = src.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Dev != lst.Dev || st.Ino != lst.Ino || !isType(&st, unix.S_IFREG) {
		return ErrChanged
	}
	blob := blobPath(t.dir, len(t.entries))
	dst, err := os.OpenFile(blob, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save content: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, limit+1))
	if err == nil {
		err = dst.Sync()
	}
	err = errors.Join(err, dst.Close())
	switch {
	case err != nil:
		err = fmt.Errorf("save content: %w", err)
	case n > limit:
		err = fmt.Errorf("%w: grew past the limit of %d bytes", ErrTooLarge, limit)
	}
	if err != nil {
		// The next entry will want this blob name.
		return errors.Join(err, os.Remove(blob))
	}
	t.add(Entry{
		Path: p, Type: TypeFile, Mode: permBits(&st), UID: st.Uid, GID: st.Gid,
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec).UTC(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil)),
	})
	return nil
}

// Load returns the complete snapshot with that id ("<kind>/<name>/<timestamp>").
func (s *Store) Load(id string) (*Snapshot, error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: id %q", ErrInvalid, id)
	}
	if err := errors.Join(checkSegment("kind", parts[0]), checkSegment("name", parts[1])); err != nil {
		return nil, err
	}
	if _, err := time.Parse(stampLayout, parts[2]); err != nil {
		return nil, fmt.Errorf("%w: id %q", ErrInvalid, id)
	}
	dir := filepath.Join(s.resourceDir(parts[0], parts[1]), parts[2])
	m, err := readManifest(dir, parts[0], parts[1])
	if err != nil {
		return nil, err
	}
	return s.snapshotFrom(dir, m, readState(dir)), nil
}

// List returns the complete snapshots of kind/name, newest first.
// Incomplete and unreadable ones are left out.
func (s *Store) List(kind, name string) ([]Info, error) {
	if err := errors.Join(checkSegment("kind", kind), checkSegment("name", name)); err != nil {
		return nil, err
	}
	snaps, _, err := s.scan(kind, name)
	if err != nil {
		return nil, err
	}
	out := make([]Info, len(snaps))
	for i, sn := range snaps {
		out[i] = sn.Info()
	}
	return out, nil
}

// scan reads a resource directory: complete snapshots newest first, and the
// directories that are not (no manifest, or a corrupt one).
func (s *Store) scan(kind, name string) (complete []*Snapshot, incomplete []string, err error) {
	rdir := s.resourceDir(kind, name)
	des, err := os.ReadDir(rdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		if _, err := time.Parse(stampLayout, de.Name()); err != nil {
			continue
		}
		dir := filepath.Join(rdir, de.Name())
		m, err := readManifest(dir, kind, name)
		switch {
		case errors.Is(err, errNewerVersion):
			// Written by a newer wcp360: not ours to use or to delete.
		case err != nil:
			incomplete = append(incomplete, dir)
		default:
			complete = append(complete, s.snapshotFrom(dir, m, readState(dir)))
		}
	}
	slices.SortFunc(complete, func(a, b *Snapshot) int { return strings.Compare(b.dir, a.dir) })
	return complete, incomplete, nil
}

var errNewerVersion = errors.New("manifest of a newer version")

func readManifest(dir, kind, name string) (manifest, error) {
	var m manifest
	f, err := os.Open(filepath.Join(dir, manifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: %s has no manifest", ErrNotFound, dir)
	}
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := decodeStrict(io.LimitReader(f, maxManifest), &m); err != nil {
		var probe struct {
			Version int `json:"version"`
		}
		if _, serr := f.Seek(0, io.SeekStart); serr == nil && decodeLoose(f, &probe) == nil && probe.Version > manifestVersion {
			return m, fmt.Errorf("%s: %w (%d)", dir, errNewerVersion, probe.Version)
		}
		return m, fmt.Errorf("%w: %s: corrupt manifest: %w", ErrNotFound, dir, err)
	}
	if m.Version > manifestVersion {
		return m, fmt.Errorf("%s: %w (%d)", dir, errNewerVersion, m.Version)
	}
	if err := m.validate(kind, name); err != nil {
		return m, fmt.Errorf("%w: %s: corrupt manifest: %w", ErrNotFound, dir, err)
	}
	return m, nil
}

func (m *manifest) validate(kind, name string) error {
	if m.Version != manifestVersion {
		return fmt.Errorf("version %d", m.Version)
	}
	if m.Kind != kind || m.Name != name {
		return fmt.Errorf("manifest is for %s/%s", m.Kind, m.Name)
	}
	seen := map[string]bool{}
	for _, e := range m.Entries {
		if err := checkPath(e.Path); err != nil {
			return err
		}
		if seen[e.Path] {
			return fmt.Errorf("path %s twice", e.Path)
		}
		seen[e.Path] = true
		if e.Mode > 0o7777 {
			return fmt.Errorf("%s: mode %#o", e.Path, e.Mode)
		}
		switch e.Type {
		case TypeAbsent, TypeDir:
		case TypeFile:
			if len(e.SHA256) != sha256.Size*2 || e.Size < 0 {
				return fmt.Errorf("%s: bad checksum or size", e.Path)
			}
		case TypeSymlink:
			if e.Target == "" || strings.ContainsRune(e.Target, 0) {
				return fmt.Errorf("%s: bad symlink target", e.Path)
			}
		default:
			return fmt.Errorf("%s: unknown type %q", e.Path, e.Type)
		}
	}
	return nil
}

func readState(dir string) State {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if err != nil {
		return StatePending
	}
	defer func() { _ = f.Close() }()
	var r stateRecord
	if err := decodeStrict(io.LimitReader(f, 4096), &r); err != nil || r.State == "" {
		return StatePending
	}
	return r.State
}

func (sn *Snapshot) setState(st State) error {
	if err := writeJSONAtomic(sn.dir, stateFile, stateRecord{State: st, Time: sn.store.opts.Clock.Now().UTC()}); err != nil {
		return err
	}
	sn.mu.Lock()
	sn.info.State = st
	sn.mu.Unlock()
	return nil
}

// Commit records that the plan succeeded: the snapshot is kept as history,
// and retention is applied to its resource.
func (sn *Snapshot) Commit() error {
	unlock, err := sn.store.lock(context.Background(), sn.info.Kind, sn.info.Name)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(sn.dir, manifestFile)); err != nil {
		return fmt.Errorf("%w: %s", ErrNotFound, sn.info.ID)
	}
	if err := sn.setState(StateCommitted); err != nil {
		return err
	}
	return sn.store.pruneLocked(sn.info.Kind, sn.info.Name)
}

// Discard deletes the snapshot: it is not worth keeping (the plan changed
// nothing). Discarding a snapshot that is already gone is not an error.
func (sn *Snapshot) Discard() error {
	unlock, err := sn.store.lock(context.Background(), sn.info.Kind, sn.info.Name)
	if err != nil {
		return err
	}
	defer unlock()
	return removeSnapshot(sn.dir)
}

// removeSnapshot deletes the manifest first, so that a crash part-way
// leaves an incomplete snapshot, never one with missing content.
func removeSnapshot(dir string) error {
	if err := os.Remove(filepath.Join(dir, manifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	return nil
}

// Prune applies retention to every resource: incomplete snapshots are
// removed; of the complete ones, each resource keeps its newest Keep, minus
// those older than MaxAge, and always its newest one.
func (s *Store) Prune(ctx context.Context) error {
	kinds, err := os.ReadDir(s.opts.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	var errs []error
	for _, k := range kinds {
		if !k.IsDir() || checkSegment("kind", k.Name()) != nil {
			continue
		}
		names, err := os.ReadDir(filepath.Join(s.opts.Dir, k.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("prune: %w", err))
			continue
		}
		for _, n := range names {
			if !n.IsDir() || checkSegment("name", n.Name()) != nil {
				continue
			}
			unlock, err := s.lock(ctx, k.Name(), n.Name())
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, s.pruneLocked(k.Name(), n.Name()))
			unlock()
		}
	}
	return errors.Join(errs...)
}

func (s *Store) pruneLocked(kind, name string) error {
	complete, incomplete, err := s.scan(kind, name)
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range incomplete {
		errs = append(errs, removeSnapshot(dir))
	}
	now := s.opts.Clock.Now()
	for i, sn := range complete {
		tooOld := s.opts.MaxAge > 0 && now.Sub(sn.info.Created) > s.opts.MaxAge
		if i > 0 && (i >= s.opts.Keep || tooOld) {
			errs = append(errs, removeSnapshot(sn.dir))
		}
	}
	return errors.Join(errs...)
}
