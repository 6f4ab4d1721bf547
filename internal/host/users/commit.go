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
		if err := writeFile(f); err != nil {
			if len(written) > 0 {
				err = fmt.Errorf("%w (already written: %v)", err, written)
			}
			return unlock, err
		}
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
// renamed over it, then the directory synced.
func writeFile(f *dbFile) error {
	dir := filepath.Dir(f.path)
	if err := replaceFile(f.path+"-", f.data, f.st, true); err != nil {
		return fmt.Errorf("writing backup of %s: %w", f.path, err)
	}
	if err := replaceFile(f.path, render(f.recs), f.st, false); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	return nil
}

// replaceFile atomically replaces path with data, owned and moded as st;
// with keepTimes the result also gets st's access and modification times.
func replaceFile(path string, data []byte, st fileState, keepTimes bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".wcp360-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chown(int(st.uid), int(st.gid)); err != nil {
		return err
	}
	if err := tmp.Chmod(os.FileMode(st.mode & 0o777)); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if keepTimes {
		ts := []unix.Timespec{st.atime, st.mtime}
		if err := unix.UtimesNano(name, ts); err != nil {
			return &os.PathError{Op: "utimes", Path: name, Err: err}
		}
	}
	return os.Rename(name, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	return errors.Join(serr, d.Close())
}
