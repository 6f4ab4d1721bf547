package users

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Commit writes the files that changed, in the order shadow-utils writes
// them (passwd, shadow, group, gshadow), and releases the locks. Files
// that did not change are not touched. Before writing, every file to be
// written must be as it was read (ErrModified otherwise: a program wrote
// it without the locks), and nothing is written then.
func (tx *Tx) Commit() error {
	unlock, err := tx.WriteHoldingLocks()
	return errors.Join(err, unlock())
}

// WriteHoldingLocks writes the changed files as Commit does but keeps the
// locks, so that a caller whose plan goes on (a tenant's home after its
// user) can restore these files under the same locks when a later part
// fails: nobody else can have written them in between. The transaction is
// finished either way; call unlock exactly once, also after an error.
func (tx *Tx) WriteHoldingLocks() (unlock func() error, err error) {
	if err := tx.check(true); err != nil {
		return func() error { return nil }, err
	}
	defer tx.finish()
	l := tx.locks
	tx.locks = nil
	unlock = func() error {
		if l == nil {
			return nil
		}
		return l.release()
	}
	var errs []error
	for _, f := range tx.files {
		if !f.changed {
			continue
		}
		st, err := statFile(f.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !st.sameContent(f.st) {
			errs = append(errs, fmt.Errorf("%w: %s changed on disk since it was read", ErrModified, f.path))
		}
	}
	if len(errs) > 0 {
		return unlock, errors.Join(errs...)
	}
	var written []string
	for _, f := range tx.files {
		if !f.changed {
			continue
		}
		nf, err := writeFile(f)
		if err != nil {
			if len(written) > 0 {
				err = fmt.Errorf("%w (already written: %v)", err, written)
			}
			return unlock, err
		}
		tx.db.remember(nf)
		written = append(written, f.path)
	}
	return unlock, nil
}

// Abort releases the locks without writing. It may be called after Commit
// (it does nothing then), so `defer tx.Abort()` is fine.
func (tx *Tx) Abort() error {
	if tx.done {
		return nil
	}
	defer tx.finish()
	return tx.release()
}

func (tx *Tx) release() error {
	if tx.locks == nil {
		return nil
	}
	l := tx.locks
	tx.locks = nil
	return l.release()
}

func (tx *Tx) finish() {
	tx.done = true
	for _, f := range tx.files {
		if f != nil {
			f.recs, f.data = nil, nil
		}
	}
}

// writeFile replaces f.path with its new content: backup first (<file>-,
// a copy of what was read with the same owner, mode and times, like
// commonio's create_backup), then the new file through a temporary file in
// the same directory with the original's owner and mode, synced and
// renamed over it, then the directory synced. It returns the file as
// written, as readFile would read it back.
func writeFile(f *dbFile) (*dbFile, error) {
	dir := filepath.Dir(f.path)
	if _, _, err := replaceFile(f.path+"-", f.data, f.st, true); err != nil {
		return nil, fmt.Errorf("writing backup of %s: %w", f.path, err)
	}
	data := render(f.recs)
	st, key, err := replaceFile(f.path, data, f.st, false)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("writing %s: %w", f.path, err)
	}
	return &dbFile{kind: f.kind, path: f.path, exists: true, data: data, st: st, key: key,
		recs: renumbered(f.kind, f.recs)}, nil
}

// replaceFile atomically replaces path with data, owned and moded as st;
// with keepTimes the result also gets st's access and modification times.
// It returns the state and identity of the file it renamed in.
func replaceFile(path string, data []byte, st fileState, keepTimes bool) (_ fileState, _ fileKey, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".wcp360-*")
	if err != nil {
		return fileState{}, fileKey{}, err
	}
	name := tmp.Name()
	defer func() {
		cerr := tmp.Close()
		if err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chown(int(st.uid), int(st.gid)); err != nil {
		return fileState{}, fileKey{}, err
	}
	if err := tmp.Chmod(os.FileMode(st.mode & 0o777)); err != nil {
		return fileState{}, fileKey{}, err
	}
	if _, err := tmp.Write(data); err != nil {
		return fileState{}, fileKey{}, err
	}
	if err := tmp.Sync(); err != nil {
		return fileState{}, fileKey{}, err
	}
	if keepTimes {
		ts := []unix.Timespec{st.atime, st.mtime}
		if err := unix.UtimesNano(name, ts); err != nil {
			return fileState{}, fileKey{}, &os.PathError{Op: "utimes", Path: name, Err: err}
		}
	}
	if err := os.Rename(name, path); err != nil {
		return fileState{}, fileKey{}, err
	}
	// Its identity after the rename (which moves ctime), through the
	// descriptor: a file renamed over it since is another inode.
	return fstatFile(int(tmp.Fd()), path) //nolint:gosec // a file descriptor fits an int
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	return errors.Join(serr, d.Close())
}
