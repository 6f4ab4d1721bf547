// Package snapshot saves the files and directories a reconcile plan is about
// to change, and puts them back when the plan fails part-way ("The loop" in
// DESIGN.md: snapshot what the plan touches -> apply -> validate -> on
// failure restore the snapshot).
//
//	s, err := snapshot.New(snapshot.Options{Dir: "/var/lib/wcp360/snapshots"})
//	snap, err := s.Take(ctx, "Domain", "example.com", "generation 7", plan.Paths())
//	if err := apply(); err != nil {
//		return errors.Join(err, snap.Restore(context.WithoutCancel(ctx)))
//	}
//	return snap.Commit() // kept as history, retention applied
//
// # What is recorded
//
// For every path given to Take (absolute, clean, canonical) one of:
//
//   - absent: the path did not exist. Restore removes whatever is there.
//     When a path's parents are missing too, those parents are recorded as
//     absent as well, so the directories a plan creates on the way are
//     removed again.
//   - file: a regular file. Its content is copied into the snapshot (with a
//     SHA-256 checksum), and its mode (including setuid, setgid and sticky
//     bits), owner, group and modification time are recorded.
//   - dir: a directory, as metadata only: mode, owner, group. Its contents
//     are NOT copied; list the files inside that the plan changes as paths
//     of their own. Homes are never snapshotted wholesale, and a single
//     file larger than Options.MaxFileBytes is refused with ErrTooLarge.
//   - symlink: its target (and owner).
//
// Other file types (FIFOs, sockets, devices) are refused with
// ErrUnsupported. Extended attributes, ACLs, security labels, atime and
// hard-link identity are not recorded: a restored file is a new inode.
//
// # Restore
//
// Restore first removes the paths that were absent (children before
// parents), then recreates or repairs the others (parents before children):
//
//   - files are written to a temporary file in the same directory, fsynced,
//     given their owner, mode and mtime, and renamed over the path, then the
//     directory is fsynced; /etc/passwd and friends are therefore never seen
//     half-written. A file whose content already matches is not rewritten:
//     only differing owner, mode or mtime are fixed in place, so its inode
//     is kept.
//   - directories that were present are created (if missing) or repaired in
//     place; directories that were absent are removed only when empty, and
//     reported with ErrNotEmpty otherwise (their contents are not ours to
//     delete).
//   - a parent directory that does not exist and was not recorded is not
//     created: its mode and owner are unknown. The path is reported.
//
// Restore keeps going after a path fails and returns errors.Join of one
// *fs.PathError per path it could not restore.
//
// Locking of host files is the caller's job: a caller restoring
// /etc/passwd, /etc/shadow or /etc/group must hold the shadow-utils lock
// (the .lock files of lckpwdf(3)) around Restore, exactly as around its own
// writes. This package only guarantees that each file is replaced
// atomically.
//
// # Symbolic links
//
// No component of a recorded path other than the last may be a symbolic
// link, neither when the snapshot is taken nor when it is restored: parents
// are opened one component at a time with O_NOFOLLOW|O_DIRECTORY, every
// further operation is relative to the directory file descriptor so
// obtained (openat, fstatat, mkdirat, renameat, unlinkat), and the final
// component is never followed (a symlink there is itself the recorded or
// replaced object). A planted symlink in a parent makes that path fail with
// ErrSymlink; nothing is written through it. Callers therefore pass
// canonical paths (resolved with filepath.EvalSymlinks where needed).
// Within a directory that an untrusted user can write to (a tenant's home),
// that user can still rename things under the directory being restored,
// but cannot make Restore write outside of that directory.
//
// # Storage and crash safety
//
// A snapshot lives in Dir/<kind>/<name>/<UTC timestamp>/: files/<n> hold
// the file contents, manifest.json (versioned JSON) lists the entries and
// is written last, fsynced and renamed into place. A snapshot without a
// manifest was interrupted by a crash: List and Load ignore it and Prune
// removes it. Directories are 0700 and files 0600.
//
// Take, Restore, Commit, Discard and Prune of one resource are serialised
// with an flock(2) on Dir/<kind>/<name>/.lock, across goroutines and
// processes (wcpd and an emergency `wcp rollback`).
//
// # Retention
//
// Prune (and Commit, for its own resource) keeps at most Options.Keep
// snapshots per resource and drops those older than Options.MaxAge, but
// never the newest one of a resource. Snapshot ids are ordered by the
// injected clock; they are forced to increase per resource even if the
// clock steps back.
package snapshot
