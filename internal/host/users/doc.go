// Package users provisions Linux users and groups by editing /etc/passwd,
// /etc/shadow, /etc/group and /etc/gshadow directly, in a way that is safe
// to run while shadow-utils (useradd, userdel, usermod, groupadd, vipw, ...)
// works on the same files.
//
// # Transactions
//
// [DB.Begin] takes the locks, reads the four files and returns a [Tx].
// Lookups and changes happen in memory; [Tx.Commit] writes only the files
// that changed and releases the locks, [Tx.Abort] releases them without
// writing. [DB.Update] wraps the three; [DB.View] reads without locking.
//
// # Locks (what shadow-utils does, and what we do)
//
// shadow-utils' lib/commonio.c commonio_lock takes, for every file it will
// write:
//
//  1. on the first lock of the process, glibc's lckpwdf(3): open
//     /etc/.pwd.lock (O_CREAT, mode 0600) and fcntl(F_SETLKW) a write lock
//     on the whole file, bounded by a 15 s SIGALRM. commonio skips this step when the
//     file names were changed with --prefix (commonio_setname sets
//     db->setname; "It is also not used with the prefix option").
//  2. commonio_lock_nowait / do_lock_file: write "<pid>\0" to <file>.<pid>,
//     fdatasync it, link() it to <file>.lock and check that the link count
//     of <file>.<pid> is 2. When the link fails because <file>.lock exists,
//     read the pid in it: a live process (kill(pid, 0) == 0) holds the
//     lock; otherwise the lock is stale, is unlinked, and the link is tried
//     once more. <file>.<pid> is always unlinked afterwards. In prefix mode
//     (no lckpwdf) this is retried 15 times, one second apart.
//
// Unlocking removes <file>.lock, and ulckpwdf() runs after the last one.
// Note that outside prefix mode the per-file lock is tried only once after
// lckpwdf succeeded: a program that held <file>.lock without .pwd.lock
// would make useradd fail at once ("cannot lock /etc/passwd; try again
// later") instead of wait. Hence: .pwd.lock first, <file>.lock files
// second, and the reverse when releasing.
//
// Observed on Debian 12 (shadow 4.13) with strace: useradd locks passwd,
// group, gshadow, shadow; userdel passwd, shadow, group, gshadow; usermod
// passwd, shadow; groupadd and groupdel group, gshadow.
//
// Begin does the same, for passwd, shadow, group and gshadow in this order
// (every shadow-utils tool that locks passwd locks it first, and group
// before gshadow, so the order cannot deadlock with them):
//
//   - <root>/etc/.pwd.lock is locked with an open-file-description lock
//     (F_OFD_SETLK). OFD locks conflict with the classic fcntl locks that
//     glibc's lckpwdf takes, so the two exclude each other; unlike classic
//     locks they also exclude two transactions of the same process and are
//     not dropped when some other descriptor of the file is closed. Go
//     cannot block in F_SETLKW with a timeout, so the lock is polled with
//     F_OFD_SETLK and a growing sleep until [DB.LockTimeout] (or the
//     context) runs out, which gives an [ErrLocked] error "another program
//     holds /etc/.pwd.lock (is useradd or vipw running?)".
//   - the per-file <file>.lock is taken exactly as do_lock_file does, and
//     retried with the same backoff until the same deadline. A lock file
//     naming our own pid is stale (transactions of this process are
//     serialised by the OFD lock taken first). A pid that kill(2) answers
//     with EPERM counts as alive.
//
// The locks are released in reverse order: the <file>.lock files, then
// .pwd.lock.
//
// # Files
//
// Every line that is not changed is written back byte for byte: comments,
// blank lines, NIS "+"/"-" lines, entries with unusual field counts or
// values. Lines that do not parse are reported by [Tx.Problems] and are
// never rewritten; an operation that would have to change one fails with
// [ErrMalformed]. New entries are inserted before the first NIS line, as
// commonio does. Commit copies each changed file to <file>- (same owner,
// mode and times, like commonio's create_backup), writes the new content to
// a temporary file in the same directory with the original's owner and
// mode, fsyncs it, renames it over the file and fsyncs the directory.
package users
