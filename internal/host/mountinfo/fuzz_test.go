package mountinfo

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The seed corpus is in testdata/fuzz/FuzzParse.

// FuzzParse: Parse never panics; what it accepts has absolute, clean
// mount points and reads back the same once written again as the kernel
// writes it; the mount Holding picks for a path is above it, and there
// always is one when / is mounted.
func FuzzParse(f *testing.F) {
	f.Add("27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n30 27 254:2 / /srv rw - xfs /dev/mapper/vg-srv rw,prjquota\n", "/srv/www")
	f.Fuzz(func(t *testing.T, s, path string) {
		mounts, err := Parse(s)
		if err != nil {
			return
		}
		var b strings.Builder
		root := false
		for _, m := range mounts {
			if !filepath.IsAbs(m.Point) || filepath.Clean(m.Point) != m.Point {
				t.Fatalf("Parse(%q): mount point %q", s, m.Point)
			}
			root = root || m.Point == "/"
			fmt.Fprintf(&b, "%d %d %s %s %s %s - %s %s %s\n", m.ID, m.Parent, m.Dev(), Escape(m.Root), Escape(m.Point),
				options(m.Options), Escape(m.FSType), Escape(m.Source), options(m.SuperOptions))
		}
		again, err := Parse(b.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, which written again (%q) does not parse: %v", s, mounts, b.String(), err)
		}
		if d := cmp.Diff(mounts, again); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return
		}
		m, ok := Holding(mounts, path)
		if ok && !under(path, m.Point) {
			t.Fatalf("Holding(%q) = %q, not above it", path, m.Point)
		}
		if root && !ok {
			t.Fatalf("Holding(%q): none, though / is mounted", path)
		}
	})
}

// options writes options as the kernel does (seq_show_option): each
// escaped, commas too.
func options(opts []string) string {
	e := make([]string, len(opts))
	for i, o := range opts {
		e[i] = strings.ReplaceAll(Escape(o), ",", `\054`)
	}
	return strings.Join(e, ",")
}
