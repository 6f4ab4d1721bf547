package quota

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The seed corpus is in testdata/fuzz/FuzzParseMountinfo.

// FuzzParseMountinfo: parseMountinfo never panics; what it accepts has
// absolute, clean mount points and reads back the same once written again
// as the kernel writes it; the mount mountOf picks for a path is above it,
// and there always is one when / is mounted.
func FuzzParseMountinfo(f *testing.F) {
	f.Add("27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n30 27 254:2 / /srv rw - xfs /dev/mapper/vg-srv rw,prjquota\n", "/srv/www")
	f.Fuzz(func(t *testing.T, s, path string) {
		mounts, err := parseMountinfo(s)
		if err != nil {
			return
		}
		var b strings.Builder
		root := false
		for _, m := range mounts {
			if !filepath.IsAbs(m.point) || filepath.Clean(m.point) != m.point {
				t.Fatalf("parseMountinfo(%q): mount point %q", s, m.point)
			}
			root = root || m.point == "/"
			fmt.Fprintf(&b, "%d %d %s %s %s rw - %s %s %s\n", m.id, m.parent, m.dev(), escape(m.root), escape(m.point),
				escape(m.fstype), escape(m.source), escape(strings.Join(m.superOpts, ",")))
		}
		again, err := parseMountinfo(b.String())
		if err != nil {
			t.Fatalf("parseMountinfo(%q) = %+v, which written again (%q) does not parse: %v", s, mounts, b.String(), err)
		}
		if d := cmp.Diff(mounts, again, cmp.AllowUnexported(mount{})); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return
		}
		m, ok := mountOf(mounts, path)
		if ok && !under(path, m.point) {
			t.Fatalf("mountOf(%q) = %q, not above it", path, m.point)
		}
		if root && !ok {
			t.Fatalf("mountOf(%q): none, though / is mounted", path)
		}
	})
}
