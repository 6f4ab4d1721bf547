package quota

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readMounts(t *testing.T, name string) []mount {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mountinfo", name))
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := parseMountinfo(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

func TestParseMountinfo(t *testing.T) {
	mounts := readMounts(t, "debian.txt")
	if len(mounts) != 12 {
		t.Fatalf("%d mounts, want 12", len(mounts))
	}
	want := mount{id: 42, parent: 27, major: 8, minor: 65, root: "/", point: "/mnt/with space", fstype: "xfs", source: "/dev/sde1",
		superOpts: []string{"rw", "attr2", "inode64", "pqnoenforce"}}
	if d := cmp.Diff(want, mounts[11], cmp.AllowUnexported(mount{})); d != "" {
		t.Errorf("the last line (-want +got):\n%s", d)
	}
	// A bind mount of a subdirectory, in a container.
	c := readMounts(t, "container.txt")
	if m := c[3]; m.root != "/www" || m.point != "/srv/www" || m.dev() != "254:2" || !slices.Contains(m.superOpts, "prjquota") {
		t.Errorf("the container's /srv/www: %+v", m)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, l := range []string{
		"27 1 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw",          // no separator
		"27 1 8:1 / / rw - ext4 /dev/sda1",                             // no super options
		"27 1 8 / / rw - ext4 /dev/sda1 rw",                            // no minor
		"x 1 8:1 / / rw - ext4 /dev/sda1 rw",                           // id
		"27 1 8:1 / relative rw - ext4 /dev/sda1 rw",                   // mount point
		`27 1 8:1 / /mnt/a\04 rw - ext4 /dev/sda1 rw`,                  // short escape
		`27 1 8:1 / /mnt/a\777 rw - ext4 /dev/sda1 rw`,                 // escape past a byte
		"27 1 8:1 / / rw  - ext4 /dev/sda1 rw",                         // two spaces
		"27 1 8:99999999999 / / rw - ext4 /dev/sda1 rw",                // minor past 32 bits
		"27 1 8:1 / / - ext4 /dev/sda1 rw",                             // separator too early
		"27 1 8:1 / /x rw shared:1 master:2 - ext4 /dev/sda1 rw extra", // fine but for extra: accepted
	} {
		_, err := parseMountinfo(l + "\n")
		if strings.HasSuffix(l, "extra") {
			if err != nil {
				t.Errorf("parseMountinfo(%q): %v", l, err)
			}
			continue
		}
		if !errors.Is(err, ErrParse) {
			t.Errorf("parseMountinfo(%q): %v, want ErrParse", l, err)
		}
	}
}

// detect finds the mount of a path from mountinfo alone, and says why a
// file system has no project quota before asking the kernel.
func TestDetectFromMountinfo(t *testing.T) {
	for _, c := range []struct {
		file, path     string
		point, fs, dev string
		reason         string // a part of Reason; "" for none
	}{
		{"debian.txt", "/srv/www/acme", "/srv/www", "ext4", "8:17", ""},
		{"debian.txt", "/srv/www", "/srv/www", "ext4", "8:17", ""},
		{"debian.txt", "/srv/wwwx", "/srv", "xfs", "254:2", ""},
		{"debian.txt", "/srv", "/srv", "xfs", "254:2", ""},
		{"debian.txt", "/srv/www/acme/tmp/x", "/srv/www/acme/tmp", "tmpfs", "0:40",
			"tmpfs at /srv/www/acme/tmp has no project quota; use XFS mounted with prjquota, or ext4 made with -O quota,project and mounted with prjquota"},
		{"debian.txt", "/var/lib/wcp360/x", "/var/lib/wcp360", "btrfs", "8:33", "btrfs at /var/lib/wcp360 has qgroups, not project quota"},
		{"debian.txt", "/home/x", "/", "ext4", "8:1", ""},
		{"debian.txt", "/", "/", "ext4", "8:1", ""},
		// Stacked: the XFS mounted over the tmpfs is what holds the path.
		{"debian.txt", "/mnt/backup/a", "/mnt/backup", "xfs", "8:49", ""},
		{"debian.txt", "/mnt/with space/a", "/mnt/with space", "xfs", "8:65", ""},
		{"container.txt", "/srv/www/acme", "/srv/www", "xfs", "254:2", ""},
		{"container.txt", "/etc/resolv.conf", "/etc/resolv.conf", "ext4", "254:0", ""},
		{"container.txt", "/srv", "/", "overlay", "0:58", "overlay at / has no project quota"},
	} {
		info, _, err := detect(readMounts(t, c.file), c.path)
		if err != nil {
			t.Errorf("%s %s: %v", c.file, c.path, err)
			continue
		}
		if info.Path != c.path || info.MountPoint != c.point || info.FSType != c.fs || info.Dev != c.dev ||
			(c.reason == "") != (info.Reason == "") || !strings.Contains(info.Reason, c.reason) {
			t.Errorf("%s %s: %+v; want mount point %s, %s on %s, reason %q", c.file, c.path, info, c.point, c.fs, c.dev, c.reason)
		}
	}
	if _, _, err := detect(readMounts(t, "container.txt")[1:], "/srv"); err == nil {
		t.Error("detect without a / mount: no error")
	}
}

// The top of a stack of mounts on one point is the one no other is
// mounted on, wherever it is in the list (mount moves reorder it).
func TestMountOfStack(t *testing.T) {
	bottom := mount{id: 10, parent: 1, point: "/srv", fstype: "tmpfs"}
	top := mount{id: 11, parent: 10, point: "/srv", fstype: "xfs"}
	root := mount{id: 1, parent: 0, point: "/", fstype: "ext4"}
	for _, ms := range [][]mount{{root, bottom, top}, {root, top, bottom}, {top, bottom, root}} {
		if m, ok := mountOf(ms, "/srv/www"); !ok || m.id != 11 {
			t.Errorf("mountOf(%v) = %+v, %t; want the XFS on top", ms, m, ok)
		}
	}
	if _, ok := mountOf([]mount{bottom}, "/srvx"); ok {
		t.Error("/srvx is under /srv")
	}
}

func TestEscape(t *testing.T) {
	for _, s := range []string{"plain", "/a b", "tab\there", "new\nline", `back\slash`, ""} {
		e := escape(s)
		if strings.ContainsAny(e, " \t\n") {
			t.Errorf("escape(%q) = %q", s, e)
		}
		if u, err := unescape(e); err != nil || u != s {
			t.Errorf("unescape(escape(%q)) = %q, %v", s, u, err)
		}
	}
}
