package domain

import (
	"context"
	"strings"

	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/safefs"
	"github.com/wcp360/wcp360/internal/store"
)

// DocRoot is the part that makes the document root exist: every missing
// directory of it is created as tenant:tenant 0750 (readable by nginx
// through the tenant's group). What the tenant then does with it is its
// own: existing directories are not chmod'ed back, but a component that is
// a symlink is refused, never followed (the tenant owns domains/).
type DocRoot struct {
	Store Store
}

// Name names the part in events.
func (p *DocRoot) Name() string { return "documentroot" }

// ConditionType is the part's condition.
func (p *DocRoot) ConditionType() string { return "DocumentRoot" }

func components(rel string) []string {
	parts := strings.Split(rel, "/")
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.Join(parts[:i+1], "/")
	}
	return out
}

// Observe reports missing directories of the document root.
func (p *DocRoot) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return nil, err
	}
	fs := safefs.FS{Root: d.Home}
	for _, c := range components(d.DocumentRoot) {
		st, ok, err := fs.Stat(c)
		if err != nil {
			return nil, err
		}
		if !ok {
			return []host.Difference{{Field: "documentRoot", Want: d.DocumentRootPath(), Have: "absent"}}, nil
		}
		if st.Mode&0o170000 != 0o040000 {
			return []host.Difference{{Field: "documentRoot", Want: "directory " + c, Have: "not a directory"}}, nil
		}
	}
	return nil, nil
}

// Apply creates the missing directories.
func (p *DocRoot) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return "", err
	}
	fs := safefs.FS{Root: d.Home}
	for _, c := range components(d.DocumentRoot) {
		_, ok, err := fs.Stat(c)
		if err != nil {
			return "", err
		}
		if ok {
			continue
		}
		if err := fs.EnsureDir(c, 0o750, d.UID, d.GID); err != nil {
			return "", err
		}
	}
	return "", nil
}

// Remove keeps the document root: the site's files are the tenant's, and
// go with its home when the tenant goes.
func (p *DocRoot) Remove(context.Context, store.Resource) error { return nil }
