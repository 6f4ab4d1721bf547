package pam

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// ServiceDir is where PAM reads its service files.
const ServiceDir = "/etc/pam.d"

// serviceMarker is the first line of a service file WCP360 manages. A file
// without it is the admin's, and is left alone.
const serviceMarker = "# Managed by WCP360: wcpd rewrites this file; delete this line to manage it yourself."

// ErrServiceFileNotOurs is InstallServiceFile's refusal to replace a file
// without WCP360's marker line (an admin's), unless told to.
var ErrServiceFileNotOurs = errors.New("PAM service file exists and is not managed by WCP360")

// ServiceFile is the content of the PAM service file WCP360 installs: the
// system's usual password and account checks (Debian's common-auth and
// common-account: pam_unix, with its failure delay, and whatever the admin
// added there, such as pam_faillock).
func ServiceFile() []byte {
	return []byte(serviceMarker + `
#
# The PAM service of the WCP360 hosting panel: wcpd checks the passwords of
# root and of the panel's admin group through it.
auth	include	common-auth
account	include	common-account
`)
}

// ServiceFileOptions are InstallServiceFile's options.
type ServiceFileOptions struct {
	// Service names the file (default DefaultService).
	Service string
	// Overwrite replaces a file without the WCP360 marker (an admin's).
	Overwrite bool
}

// InstallServiceFile writes ServiceFile as dir/<service> (dir is normally
// ServiceDir), root-owned 0644, atomically (PAM reading it concurrently
// sees the old file or the new one), and reports whether it changed
// anything: an identical file of mode 0644 is not written again.
//
// The file is WCP360's when it carries the marker line: then any other
// content is replaced. A file without the marker was written or taken over
// by an admin (who deleted the marker), and is left alone: the error is
// ErrServiceFileNotOurs, unless opts.Overwrite. The directory must exist.
func InstallServiceFile(dir string, opts ServiceFileOptions) (changed bool, err error) {
	if opts.Service == "" {
		opts.Service = DefaultService
	}
	if !validUser(opts.Service) {
		return false, fmt.Errorf("pam: invalid service name %q", opts.Service)
	}
	path := filepath.Join(dir, opts.Service)
	want := ServiceFile()
	have, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, fmt.Errorf("pam: read service file: %w", err)
	case bytes.Equal(have, want) && modeIs(path, 0o644):
		return false, nil
	case !opts.Overwrite && !bytes.HasPrefix(have, []byte(serviceMarker+"\n")):
		return false, fmt.Errorf("%w: %s (delete it, or add %q as its first line, for WCP360 to manage it)", ErrServiceFileNotOurs, path, serviceMarker)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		uid, gid = 0, 0
	}
	if err := atomicfile.Write(path, want, 0o644, uid, gid); err != nil {
		return false, fmt.Errorf("pam: write service file: %w", err)
	}
	return true, nil
}

// modeIs reports whether path (not following a symbolic link) is a regular
// file of mode perm.
func modeIs(path string, perm fs.FileMode) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm() == perm
}
