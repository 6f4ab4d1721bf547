package users

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DB is the user database of one root directory.
type DB struct {
	// Root is the directory holding etc/passwd and the others: "/" in
	// production, a temporary directory in tests.
	Root string
	// LockTimeout bounds the wait for the locks; 0 is DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the clock (for the "last password change" day of new
	// entries). Required.
	Now func() time.Time

	// View keeps the files it parsed and parses again only a file whose
	// identity changed: a resync observes every tenant, and parsing four
	// files of thousands of lines each time made that quadratic.
	mu    sync.Mutex
	cache [numFiles]*cachedFile

	// txSem serialises this DB's transactions. A Begin waits here for the
	// transaction before it and is woken the moment that one releases the
	// locks, instead of polling for the lock files (every 2 to 50 ms) as
	// it must for another program: a burst of tenants would otherwise
	// leave the locks idle between its transactions.
	txSem chan struct{}
}

// cachedFile is a file as View parsed it; never changed once stored.
type cachedFile struct {
	key  fileKey
	file dbFile
}

// fileKey identifies one version of a file: a writer that renames a new
// file in gets a new inode, one that rewrites in place changes ctime.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime unix.Timespec
}

func keyOf(path string) (fileKey, bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileKey{}, false
	}
	return fileKey{st.Dev, st.Ino, st.Size, st.Mtim, st.Ctim}, true
}

// Path is the path of file name ("passwd", "shadow", "group", "gshadow",
// ".pwd.lock", ...) under the root's etc directory.
func (db *DB) Path(name string) string {
	return filepath.Join(db.root(), "etc", name)
}

func (db *DB) root() string {
	if db.Root == "" {
		return "/"
	}
	return db.Root
}

func (db *DB) path(k fileKind) string { return db.Path(k.String()) }

// Begin locks the four files, reads them and returns a transaction. The
// wait for the locks ends after LockTimeout or when ctx ends, with an
// error matching ErrLocked. The caller must Commit or Abort.
func (db *DB) Begin(ctx context.Context) (*Tx, error) {
	if db.Now == nil {
		return nil, errors.New("users: DB.Now (the clock) is not set")
	}
	timeout := db.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	start := time.Now() //nolint:forbidigo // measures the lock wait, not logic time
	lctx, cancel := context.WithTimeoutCause(ctx, timeout, errLockTimeout)
	defer cancel()
	files := make([]string, numFiles)
	for k := range numFiles {
		files[k] = db.path(k)
	}
	sem := db.sem()
	select {
	case sem <- struct{}{}:
	case <-lctx.Done():
		e := &LockError{Path: db.Path(".pwd.lock"), Reason: "another transaction of this process holds it", Waited: time.Since(start)} //nolint:forbidigo // as above
		if !errors.Is(context.Cause(lctx), errLockTimeout) {
			e.Err = context.Cause(lctx)
		}
		return nil, e
	}
	l, err := acquireLocks(lctx, start, db.Path(".pwd.lock"), files)
	if err != nil {
		<-sem
		return nil, err
	}
	l.done = func() { <-sem }
	tx, err := db.load(l)
	if err != nil {
		return nil, errors.Join(err, l.release())
	}
	return tx, nil
}

func (db *DB) sem() chan struct{} {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.txSem == nil {
		db.txSem = make(chan struct{}, 1)
	}
	return db.txSem
}

// View reads the files without locking and calls fn with a read-only
// transaction (changes fail with ErrReadOnly). Each file is read whole, and
// writers replace files by rename, so every file is consistent; the four
// may be from different moments.
func (db *DB) View(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.Now == nil {
		return errors.New("users: DB.Now (the clock) is not set")
	}
	tx, err := db.loadCached()
	if err != nil {
		return err
	}
	defer tx.finish()
	return fn(tx)
}

// loadCached is load for a read-only transaction: no login.defs (it only
// serves new entries).
func (db *DB) loadCached() (*Tx, error) {
	tx := &Tx{db: db, readOnly: true, now: db.Now()}
	if err := db.readFiles(tx); err != nil {
		return nil, err
	}
	return tx, nil
}

// readFiles fills tx.files, from the cache where a file did not change
// since it was last parsed. A transaction gets its own dbFile copies
// (finish clears them) with its own slice of records: changes replace,
// insert or delete records in that slice and never modify a record, so
// the records themselves are shared.
func (db *DB) readFiles(tx *Tx) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	for k := range numFiles {
		path := db.path(k)
		key, ok := keyOf(path)
		if c := db.cache[k]; ok && c != nil && c.key == key {
			f := c.file
			f.recs = slices.Clone(c.file.recs)
			tx.files[k] = &f
			continue
		}
		f, err := readFile(k, path)
		if err != nil {
			return err
		}
		db.cache[k] = nil
		if f.exists {
			c := &cachedFile{key: f.key, file: *f}
			c.file.recs = slices.Clone(f.recs)
			db.cache[k] = c
		}
		tx.files[k] = f
	}
	return nil
}

// remember caches f, a file this process just wrote, as if View had read
// it back: the next View or Begin parses nothing unless someone else
// writes the file meanwhile.
func (db *DB) remember(f *dbFile) {
	c := &cachedFile{key: f.key, file: *f}
	c.file.recs = slices.Clone(f.recs)
	db.mu.Lock()
	db.cache[f.kind] = c
	db.mu.Unlock()
}

// Update runs fn in a transaction and commits it when fn returns nil (an
// error aborts). It reports whether files were written; after an error
// nothing can be assumed about what was written (see Commit).
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) (changed bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, err
	}
	if err := fn(tx); err != nil {
		return false, errors.Join(err, tx.Abort())
	}
	changed = tx.Changed()
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return changed, nil
}

// fileState is what Commit compares to detect a change behind our back, and
// what it preserves.
type fileState struct {
	dev, ino uint64
	size     int64
	mtime    unix.Timespec
	atime    unix.Timespec
	mode     uint32
	uid, gid uint32
}

func statFile(path string) (fileState, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileState{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileState{}, fmt.Errorf("%s is not a regular file (symlinks are not followed)", path)
	}
	return fileState{
		dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: st.Mtim, atime: st.Atim,
		mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid,
	}, nil
}

func (s fileState) sameContent(o fileState) bool {
	return s.dev == o.dev && s.ino == o.ino && s.size == o.size && s.mtime == o.mtime
}

// dbFile is one of the four files as read, and its records as changed.
type dbFile struct {
	kind    fileKind
	path    string
	exists  bool
	data    []byte
	st      fileState
	recs    []*record
	changed bool
	key     fileKey // identity of the version read (zero when absent)
}

// readFile reads path; passwd and group must exist, shadow and gshadow
// may not (then no entries are written to them).
func readFile(kind fileKind, path string) (*dbFile, error) {
	f := &dbFile{kind: kind, path: path}
	// Read through one descriptor: a writer that renames a new file in
	// meanwhile (with or without the lock) cannot mix two versions.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && (kind == shadowFile || kind == gshadowFile) {
		return f, nil
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s is not a regular file (symlinks are not followed)", path)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	file := os.NewFile(uintptr(fd), path)
	defer file.Close() //nolint:errcheck // read-only
	st, key, err := fstatFile(fd, path)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, err
	}
	// Only a writer that ignores the locks and rewrites the file in place
	// can change it under an open descriptor; Commit would catch it too.
	st2, _, err := fstatFile(fd, path)
	if err != nil {
		return nil, err
	}
	if !st.sameContent(st2) || int64(len(data)) != st2.size {
		return nil, fmt.Errorf("%w: %s changed while it was read", ErrModified, path)
	}
	f.exists, f.data, f.st, f.key = true, data, st2, key
	f.recs = parseRecords(kind, data)
	return f, nil
}

func fstatFile(fd int, path string) (fileState, fileKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileState{}, fileKey{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileState{}, fileKey{}, fmt.Errorf("%s is not a regular file", path)
	}
	return fileState{
			dev: st.Dev, ino: st.Ino, size: st.Size,
			mtime: st.Mtim, atime: st.Atim,
			mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid,
		},
		fileKey{st.Dev, st.Ino, st.Size, st.Mtim, st.Ctim}, nil
}

func (db *DB) load(l *locks) (*Tx, error) {
	tx := &Tx{db: db, locks: l, readOnly: l == nil, now: db.Now()}
	if err := db.readFiles(tx); err != nil {
		return nil, err
	}
	tx.defs = readDefs(db.Path("login.defs"), db.Path("default/useradd"))
	return tx, nil
}
