package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mountinfo writes a mountinfo file whose cgroup2 mount is a directory
// with the given cgroup.controllers; "ROOT" in lines is that directory.
func mountinfo(t *testing.T, controllers string, lines ...string) (path, root string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "cg")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(root, "cgroup.controllers"), controllers)
	writeT(t, filepath.Join(root, "cgroup.pressure"), "")
	path = filepath.Join(dir, "mountinfo")
	writeT(t, path, strings.ReplaceAll(strings.Join(lines, "\n")+"\n", "ROOT", root))
	return path, root
}

func TestDetect(t *testing.T) {
	t.Run("hybrid, like this machine", func(t *testing.T) {
		path, root := mountinfo(t, "hugetlb\n",
			"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
			"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
			"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
			"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
			"38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio",
			"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
			"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
			"41 31 0:38 / ROOT rw,relatime - cgroup2 cgroup2 rw")
		c, err := Detect(path)
		if err != nil {
			t.Fatal(err)
		}
		want := Capability{Mode: Hybrid, Unified: root, Controllers: []string{"hugetlb"},
			V1:      map[string]string{"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "memory": "/sys/fs/cgroup/memory", "blkio": "/sys/fs/cgroup/blkio", "pids": "/sys/fs/cgroup/pids"},
			Missing: []string{"cpu", "io", "memory", "pids"}, PSI: true}
		if d := cmp.Diff(want, c); d != "" {
			t.Errorf("Detect (-want +got):\n%s", d)
		}
		err = c.Enforced()
		if !errors.Is(err, ErrV1Controllers) || !strings.Contains(err.Error(), "blkio at /sys/fs/cgroup/blkio") || !strings.Contains(err.Error(), "cgroup2 cannot enforce") {
			t.Errorf("Enforced: %v", err)
		}
	})
	t.Run("unified", func(t *testing.T) {
		path, root := mountinfo(t, "cpuset cpu io memory hugetlb pids rdma misc\n",
			`25 30 0:23 / ROOT rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`)
		c, err := Detect(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Mode != Unified || c.Unified != root || len(c.Missing) > 0 || c.Enforced() != nil || !c.PSI {
			t.Errorf("Detect = %+v (%v)", c, c.Enforced())
		}
	})
	t.Run("unified without io", func(t *testing.T) {
		path, _ := mountinfo(t, "cpu memory pids\n", `25 30 0:23 / ROOT rw - cgroup2 cgroup2 rw`)
		c, err := Detect(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Enforced(); !errors.Is(err, ErrControllerUnavailable) {
			t.Errorf("Enforced: %v, want ErrControllerUnavailable", err)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		path, _ := mountinfo(t, "", `35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory`,
			`32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct`)
		c, err := Detect(path)
		if err != nil {
			t.Fatal(err)
		}
		if c.Mode != Legacy || c.V1["cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct" || !errors.Is(c.Enforced(), ErrV1Controllers) {
			t.Errorf("Detect = %+v (%v)", c, c.Enforced())
		}
	})
	t.Run("bad mountinfo", func(t *testing.T) {
		path, _ := mountinfo(t, "", "1 2 3")
		if _, err := Detect(path); !errors.Is(err, ErrParse) {
			t.Errorf("Detect: %v, want ErrParse", err)
		}
	})
}

// TestHostCapability says, read only, what this machine offers. On a
// hybrid host (cgroup2 at /sys/fs/cgroup/unified without controllers) the
// limits cannot be enforced through cgroup2, and Enforced says so.
func TestHostCapability(t *testing.T) {
	c, err := Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this host: mode %s, cgroup2 at %q with %q, v1 %v, PSI %t", c.Mode, c.Unified, c.Controllers, c.V1, c.PSI)
	t.Logf("limits: %v", c)
	switch c.Mode {
	case Hybrid, Legacy:
		if len(c.Missing) > 0 && !errors.Is(c.Enforced(), ErrV1Controllers) {
			t.Errorf("%s host lacking %v in cgroup2: Enforced = %v, want ErrV1Controllers", c.Mode, c.Missing, c.Enforced())
		}
	case Unified:
		if len(c.Missing) == 0 && c.Enforced() != nil {
			t.Error(c.Enforced())
		}
	case NoCgroups:
		if c.Enforced() == nil {
			t.Error("no cgroups, but Enforced is nil")
		}
	}
}
