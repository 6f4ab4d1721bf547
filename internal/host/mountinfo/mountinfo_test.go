package mountinfo

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func read(t *testing.T, name string) []Mount {
	t.Helper()
	mounts, err := Read(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

func TestParse(t *testing.T) {
	mounts := read(t, "debian.txt")
	if len(mounts) != 12 {
		t.Fatalf("%d mounts, want 12", len(mounts))
	}
	want := Mount{ID: 42, Parent: 27, Major: 8, Minor: 65, Root: "/", Point: "/mnt/with space", FSType: "xfs", Source: "/dev/sde1",
		Options: []string{"rw", "relatime"}, SuperOptions: []string{"rw", "attr2", "inode64", "pqnoenforce"}}
	if d := cmp.Diff(want, mounts[11]); d != "" {
		t.Errorf("the last line (-want +got):\n%s", d)
	}
	// A bind mount of a subdirectory, in a container.
	c := read(t, "container.txt")
	if m := c[3]; m.Root != "/www" || m.Point != "/srv/www" || m.Dev() != "254:2" || !m.HasSuperOption("prjquota") || m.HasSuperOption("prj") {
		t.Errorf("the container's /srv/www: %+v", m)
	}
}

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		name, line string
		want       Mount
	}{
		{"no newline, no optional fields", "25 30 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate",
			Mount{ID: 25, Parent: 30, Minor: 23, Root: "/", Point: "/sys/fs/cgroup", FSType: "cgroup2", Source: "cgroup2",
				Options: []string{"rw", "nosuid"}, SuperOptions: []string{"rw", "nsdelegate"}}},
		{"optional fields, extra fields", "27 1 8:1 / /x/ ro shared:1 master:2 - ext4 /dev/sda1 rw extra\n",
			Mount{ID: 27, Parent: 1, Major: 8, Minor: 1, Root: "/", Point: "/x", FSType: "ext4", Source: "/dev/sda1",
				Options: []string{"ro"}, SuperOptions: []string{"rw"}}},
		// mount -t tmpfs "" /mnt: the kernel writes the empty source as is.
		{"empty source", "50 27 0:60 / /mnt rw - tmpfs  rw,inode64",
			Mount{ID: 50, Parent: 27, Minor: 60, Root: "/", Point: "/mnt", FSType: "tmpfs",
				Options: []string{"rw"}, SuperOptions: []string{"rw", "inode64"}}},
		// seq_show_option escapes a comma in an option's value.
		{"escapes", `60 27 0:70 /a\134b /mnt/a\040b\011c rw - overlay my\040src rw,lowerdir=/l\054x,upperdir=/u`,
			Mount{ID: 60, Parent: 27, Minor: 70, Root: `/a\b`, Point: "/mnt/a b\tc", FSType: "overlay", Source: "my src",
				Options: []string{"rw"}, SuperOptions: []string{"rw", "lowerdir=/l,x", "upperdir=/u"}}},
	} {
		got, err := ParseLine(c.line)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, l := range []string{
		"27 1 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw", // no separator
		"27 1 8:1 / / rw - ext4 /dev/sda1",                    // no super options
		"27 1 8 / / rw - ext4 /dev/sda1 rw",                   // no minor
		"x 1 8:1 / / rw - ext4 /dev/sda1 rw",                  // id
		"27 1 8:1 / relative rw - ext4 /dev/sda1 rw",          // mount point
		`27 1 8:1 / /mnt/a\04 rw - ext4 /dev/sda1 rw`,         // short escape
		`27 1 8:1 / /mnt/a\777 rw - ext4 /dev/sda1 rw`,        // escape past a byte
		`27 1 8:1 / /mnt rw - ext4 /dev/sda1 rw,a\9`,          // escape in an option
		"27 1 8:1 / / rw  - ext4 /dev/sda1 rw",                // two spaces
		"27 1 8:1 / / rw - ext4 /dev/sda1 ",                   // empty super options
		"27 1 8:1 / / rw -  /dev/sda1 rw",                     // empty type
		"27  1 8:1 / / rw - ext4 /dev/sda1 rw",                // two spaces early
		"27\t1 8:1 / / rw - ext4 /dev/sda1 rw",                // a tab
		"27 1 8:99999999999 / / rw - ext4 /dev/sda1 rw",       // minor past 32 bits
		"27 1 8:1 / / - ext4 /dev/sda1 rw",                    // separator too early
		"1 2 3",
	} {
		if _, err := Parse(l + "\n"); !errors.Is(err, ErrParse) {
			t.Errorf("Parse(%q): %v, want ErrParse", l, err)
		}
	}
	if _, err := ParseLine("27 1 8:1 / / rw - ext4 /dev/sda1 rw\n28 1 8:1 / / rw - ext4 /dev/sda1 rw"); !errors.Is(err, ErrParse) {
		t.Errorf("ParseLine of two lines: %v, want ErrParse", err)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of no file: %v", err)
	}
}

// Blank lines are skipped; the rest must all parse.
func TestParseBlank(t *testing.T) {
	mounts, err := Parse("\n27 1 8:1 / / rw - ext4 /dev/sda1 rw\n  \n\n28 27 0:5 / /dev rw - devtmpfs udev rw")
	if err != nil || len(mounts) != 2 || mounts[1].Point != "/dev" {
		t.Errorf("Parse = %+v, %v", mounts, err)
	}
	if m, err := Parse(""); err != nil || m != nil {
		t.Errorf("Parse(\"\") = %+v, %v", m, err)
	}
}

// Holding finds the mount of a path; of mounts stacked on one point the
// top is the one no other is mounted on, wherever it is in the list
// (mount moves reorder it).
func TestHolding(t *testing.T) {
	debian := read(t, "debian.txt")
	for path, point := range map[string]string{
		"/srv/www/acme": "/srv/www", "/srv/wwwx": "/srv", "/srv": "/srv", "/home/x": "/", "/": "/",
		"/srv/www/acme/tmp/x": "/srv/www/acme/tmp", "/mnt/with space/a": "/mnt/with space",
	} {
		if m, ok := Holding(debian, path); !ok || m.Point != point {
			t.Errorf("Holding(%s) = %s, %t; want %s", path, m.Point, ok, point)
		}
	}
	if m, ok := Holding(debian, "/mnt/backup/a"); !ok || m.FSType != "xfs" {
		t.Errorf("Holding(/mnt/backup/a) = %+v, want the XFS over the tmpfs", m)
	}
	bottom := Mount{ID: 10, Parent: 1, Point: "/srv", FSType: "tmpfs"}
	top := Mount{ID: 11, Parent: 10, Point: "/srv", FSType: "xfs"}
	root := Mount{ID: 1, Parent: 0, Point: "/", FSType: "ext4"}
	for _, ms := range [][]Mount{{root, bottom, top}, {root, top, bottom}, {top, bottom, root}} {
		if m, ok := Holding(ms, "/srv/www"); !ok || m.ID != 11 {
			t.Errorf("Holding(%v) = %+v, %t; want the XFS on top", ms, m, ok)
		}
	}
	if _, ok := Holding([]Mount{bottom}, "/srvx"); ok {
		t.Error("/srvx is under /srv")
	}
}

func TestEscape(t *testing.T) {
	for _, s := range []string{"plain", "/a b", "tab\there", "new\nline", `back\slash`, ""} {
		e := Escape(s)
		if strings.ContainsAny(e, " \t\n") {
			t.Errorf("Escape(%q) = %q", s, e)
		}
		if u, err := Unescape(e); err != nil || u != s {
			t.Errorf("Unescape(Escape(%q)) = %q, %v", s, u, err)
		}
	}
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134`: `/x\`, "/plain": "/plain"} {
		if got, err := Unescape(in); err != nil || got != want {
			t.Errorf("Unescape(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{`/a\04`, `/a\`, `/a\999`, `/a\400`} {
		if _, err := Unescape(bad); !errors.Is(err, ErrParse) {
			t.Errorf("Unescape(%q): %v, want ErrParse", bad, err)
		}
	}
}
