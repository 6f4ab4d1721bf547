package tenant

import (
	"bytes"
	"fmt"
	"github.com/wcp360/wcp360/internal/host/safefs"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host"
)

// The home layout. The home itself is owned by root so that nobody but
// root can change its mode or swap its entries for symlinks, and so that SFTP
// can chroot into it; the tenant and nginx (www-data, a member of the
// tenant's group) reach it through the group. Other tenants get nothing.
//
//	/srv/www/<t>                      root:<t> 0750  home
//	/srv/www/<t>/domains              <t>:<t>  0750  one directory per domain (document roots)
//	/srv/www/<t>/logs                 root:<t> 0750  nginx access and error logs
//	/srv/www/<t>/tmp                  <t>:<t>  0700  PHP upload and temporary files
//	/srv/www/<t>/php                  root:<t> 0750  PHP-FPM run-time files
//	/srv/www/<t>/php/sessions         <t>:<t>  0700  PHP session files
//	/srv/www/<t>/.ssh                 root:<t> 0750  only with authorized keys
//	/srv/www/<t>/.ssh/authorized_keys root:<t> 0640  the spec's keys, nothing else
type entry struct {
	rel       string // relative to the home; "" is the home itself
	rootOwned bool   // owner root, else the tenant; the group is always the tenant's
	mode      fs.FileMode
	dir       bool
	content   []byte // files only
	absent    bool   // must not exist (keys that were removed from the spec)
}

func (e entry) name() string {
	if e.rel == "" {
		return "home"
	}
	return "home/" + e.rel
}

func (e entry) owner(tenant string) string {
	if e.rootOwned {
		return "root:" + tenant
	}
	return tenant + ":" + tenant
}

const authorizedKeys = ".ssh/authorized_keys"

// layout is the home of a tenant with these authorized keys, parents first.
func layout(keys []string) []entry {
	es := []entry{
		{rel: "", rootOwned: true, mode: 0o750, dir: true},
		{rel: "domains", mode: 0o750, dir: true},
		{rel: "logs", rootOwned: true, mode: 0o750, dir: true},
		{rel: "tmp", mode: 0o700, dir: true},
		{rel: "php", rootOwned: true, mode: 0o750, dir: true},
		{rel: "php/sessions", mode: 0o700, dir: true},
	}
	if len(keys) == 0 {
		return append(es, entry{rel: authorizedKeys, absent: true})
	}
	var b bytes.Buffer
	b.WriteString("# Managed by WCP360 from the tenant's spec.access.authorizedKeys; edits are drift.\n")
	for _, k := range keys {
		b.WriteString(strings.TrimSpace(k))
		b.WriteByte('\n')
	}
	return append(es,
		entry{rel: ".ssh", rootOwned: true, mode: 0o750, dir: true},
		entry{rel: authorizedKeys, rootOwned: true, mode: 0o640, content: b.Bytes()})
}

// homeFS is the homes' parent, changed only through safefs.
type homeFS struct {
	safefs.FS
	wwwRoot string
}

func newHomeFS(wwwRoot string) homeFS { return homeFS{FS: safefs.FS{Root: wwwRoot}, wwwRoot: wwwRoot} }

// ErrSymlink is a symlink found where the layout wants a directory or file.
var ErrSymlink = safefs.ErrSymlink

// observeHome lists how the home of tenant (uid, gid) differs from the layout.
func (h homeFS) observeHome(tenant string, uid, gid int, keys []string) ([]host.Difference, error) {
	var ds []host.Difference
	for _, e := range layout(keys) {
		rel := path.Join(tenant, e.rel)
		st, ok, err := h.Stat(rel)
		if err != nil {
			return nil, err
		}
		switch {
		case e.absent && !ok:
			continue
		case e.absent:
			ds = append(ds, host.Difference{Field: e.name(), Want: "absent", Have: "present"})
			continue
		case !ok:
			ds = append(ds, host.Difference{Field: e.name(), Want: "present", Have: "absent"})
			continue
		}
		typ := st.Mode & unix.S_IFMT
		wantTyp := uint32(unix.S_IFREG)
		if e.dir {
			wantTyp = unix.S_IFDIR
		}
		if typ != wantTyp {
			if typ == unix.S_IFLNK {
				return nil, fmt.Errorf("%s %w", path.Join(h.wwwRoot, rel), ErrSymlink)
			}
			ds = append(ds, host.Difference{Field: e.name() + " type", Want: typeName(wantTyp), Have: typeName(typ)})
			continue
		}
		wantUID := uid
		if e.rootOwned {
			wantUID = 0
		}
		if int(st.Uid) != wantUID || int(st.Gid) != gid {
			ds = append(ds, host.Difference{Field: e.name() + " owner",
				Want: fmt.Sprintf("%d:%d (%s)", wantUID, gid, e.owner(tenant)), Have: fmt.Sprintf("%d:%d", st.Uid, st.Gid)})
		}
		if got := fs.FileMode(st.Mode & 0o7777); got != e.mode {
			ds = append(ds, host.Difference{Field: e.name() + " mode", Want: fmt.Sprintf("%04o", e.mode), Have: fmt.Sprintf("%04o", got)})
		}
		if !e.dir {
			b, err := h.ReadFile(rel)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(b, e.content) {
				ds = append(ds, host.Difference{Field: e.name() + " content", Want: fmt.Sprintf("%d bytes from the spec", len(e.content)),
					Have: fmt.Sprintf("%d bytes edited by hand", len(b))})
			}
		}
	}
	return ds, nil
}

// applyHome converges the home of tenant (uid, gid) to the layout.
func (h homeFS) applyHome(tenant string, uid, gid int, keys []string) error {
	if err := h.ensureWWWRoot(); err != nil {
		return err
	}
	for _, e := range layout(keys) {
		rel := path.Join(tenant, e.rel)
		owner := uid
		if e.rootOwned {
			owner = 0
		}
		var err error
		switch {
		case e.absent:
			err = h.Remove(rel)
		case e.dir:
			err = h.EnsureDir(rel, e.mode, owner, gid)
		default:
			err = h.WriteFile(rel, e.content, e.mode, owner, gid)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ensureWWWRoot makes the directory of all homes root:root 0711: every
// tenant (and nginx) can traverse it to its own home, nobody but root can
// list the tenants.
func (h homeFS) ensureWWWRoot() error {
	if err := os.MkdirAll(h.wwwRoot, 0o711); err != nil { //nolint:gosec // G301: traversal for tenants and nginx, no listing
		return err
	}
	fi, err := os.Stat(h.wwwRoot)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || st.Gid != 0) {
		if err := os.Chown(h.wwwRoot, 0, 0); err != nil {
			return err
		}
	}
	if fi.Mode().Perm() != 0o711 || fi.Mode()&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid) != 0 {
		return os.Chmod(h.wwwRoot, 0o711) //nolint:gosec // G302: see above
	}
	return nil
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symlink"
	default:
		return fmt.Sprintf("special file (%o)", t)
	}
}
