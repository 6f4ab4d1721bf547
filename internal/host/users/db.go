package users

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	lctx, cancel := context.WithTimeoutCause(ctx, timeout, errLockTimeout)
	defer cancel()
	files := make([]string, numFiles)
	for k := range numFiles {
		files[k] = db.path(k)
	}
	l, err := acquireLocks(lctx, time.Now(), db.Path(".pwd.lock"), files) //nolint:forbidigo // measures the lock wait, not logic time
	if err != nil {
		return nil, err
	}
	tx, err := db.load(l)
	if err != nil {
		return nil, errors.Join(err, l.release())
	}
	return tx, nil
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
	tx, err := db.load(nil)
	if err != nil {
		return err
	}
	defer tx.finish()
	return fn(tx)
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
}

// readFile reads path; passwd and group must exist, shadow and gshadow
// may not (then no entries are written to them).
func readFile(kind fileKind, path string) (*dbFile, error) {
	f := &dbFile{kind: kind, path: path}
	st, err := statFile(path)
	if errors.Is(err, fs.ErrNotExist) && (kind == shadowFile || kind == gshadowFile) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The lock makes this a formality for cooperating writers; a writer
	// that ignores locks and replaced the file between lstat and read is
	// caught here or by Commit.
	st2, err := statFile(path)
	if err != nil {
		return nil, err
	}
	if !st.sameContent(st2) || int64(len(data)) != st2.size {
		return nil, fmt.Errorf("%w: %s changed while it was read", ErrModified, path)
	}
	f.exists, f.data, f.st = true, data, st2
	f.recs = parseRecords(kind, data)
	return f, nil
}

func (db *DB) load(l *locks) (*Tx, error) {
	tx := &Tx{db: db, locks: l, readOnly: l == nil, now: db.Now()}
	for k := range numFiles {
		f, err := readFile(k, db.path(k))
		if err != nil {
			return nil, err
		}
		tx.files[k] = f
	}
	tx.defs = readDefs(db.Path("login.defs"), db.Path("default/useradd"))
	return tx, nil
}
