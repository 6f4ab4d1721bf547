package sandbox

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// miniRootFS is a root filesystem made of the host's programs (bound in
// read-only, or linked as the host links them) and an /etc of its own.
func miniRootFS(t *testing.T) (string, []Bind) {
	t.Helper()
	root := t.TempDir()
	var binds []Bind
	for _, d := range []string{"usr", "bin", "sbin", "lib", "lib64"} {
		fi, err := os.Lstat("/" + d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink("/" + d)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(link, filepath.Join(root, d)); err != nil {
				t.Fatal(err)
			}
		case fi.IsDir():
			binds = append(binds, Bind{Source: "/" + d, Target: "/" + d, ReadOnly: true})
		}
	}
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=wcp-mini\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, binds
}

// listTree lists the paths under root.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	return paths
}

// A sandbox with a RootFS sees that tree, not the host's, with the usual
// private mounts, and leaves the tree as it was.
func TestRootFS(t *testing.T) {
	requireSandbox(t)
	root, binds := miniRootFS(t)
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "file"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	binds = append(binds, Bind{Source: shared, Target: "/shared/with/host", ReadOnly: true})
	before := listTree(t, root)

	script := `
cat /etc/os-release
test -e /etc/passwd && echo "the host's /etc/passwd is visible"
test -e /home && echo "the host's /home is visible"
echo written >/etc/written && cat /etc/written
echo x >/dev/null && echo "/dev/null works"
cat /shared/with/host/file
touch /usr/wcp-rootfs-test 2>/dev/null && echo "the read-only bind is writable"
ls /sys/class/net
cat /proc/sys/kernel/hostname
grep ' / ' /proc/self/mounts | cut -d' ' -f1
grep ' /sys ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1
for d in /run /tmp /srv/www /var/log; do grep " $d " /proc/self/mounts | cut -d' ' -f3; done
grep -c . /etc/hosts
`
	var out bytes.Buffer
	code, err := Exec(t.Context(), Options{RootFS: root, Binds: binds}, []string{"/bin/sh", "-c", script},
		Stdio{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	want := "ID=wcp-mini\nwritten\n/dev/null works\nfrom the host\nlo\nwcp-sandbox\noverlay\nro\n" +
		"tmpfs\ntmpfs\ntmpfs\ntmpfs\n2\n"
	if code != 0 || out.String() != want {
		t.Errorf("exit status %d, output (-want +got):\n%s", code, cmp.Diff(want, out.String()))
	}
	if diff := cmp.Diff(before, listTree(t, root)); diff != "" {
		t.Errorf("the rootfs changed (-before +after):\n%s", diff)
	}
}

func TestRootFSMissing(t *testing.T) {
	requireSandbox(t)
	_, err := Exec(t.Context(), Options{RootFS: filepath.Join(t.TempDir(), "none")}, []string{"/bin/true"}, Stdio{})
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want one saying the rootfs does not exist", err)
	}
}
