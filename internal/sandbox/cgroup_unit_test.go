package sandbox

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestFindHierarchiesAndLayout(t *testing.T) {
	const nsx = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	tests := []struct {
		name      string
		mountinfo []string
		cgroup    []string
		hier      []hierarchy
		layout    cgroupLayout
	}{{
		name: "hybrid, cpu and cpuacct apart, in a memory cgroup",
		mountinfo: []string{
			"23 27 0:22 / /sys rw,relatime - sysfs sysfs rw",
			"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
			"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
			"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
			"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
			"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
			"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
		},
		cgroup: []string{"9:name=systemd:/", "4:memory:/process_api/697a", "2:cpuacct:/", "1:cpu:/", "0::/"},
		hier: []hierarchy{
			{mount: "/sys/fs/cgroup/cpu", current: "/sys/fs/cgroup/cpu"},
			{mount: "/sys/fs/cgroup/cpuacct", current: "/sys/fs/cgroup/cpuacct"},
			{mount: "/sys/fs/cgroup/memory", current: "/sys/fs/cgroup/memory/process_api/697a"},
			{mount: "/sys/fs/cgroup/systemd", current: "/sys/fs/cgroup/systemd"},
			{v2: true, mount: "/sys/fs/cgroup/unified", current: "/sys/fs/cgroup/unified"},
		},
		layout: cgroupLayout{
			Tmpfs: &fsMount{Point: "/sys/fs/cgroup", FSType: "tmpfs", Data: "mode=755"},
			Mounts: []fsMount{
				{Point: "/sys/fs/cgroup/cpu", FSType: "cgroup", Data: "cpu"},
				{Point: "/sys/fs/cgroup/cpuacct", FSType: "cgroup", Data: "cpuacct"},
				{Point: "/sys/fs/cgroup/memory", FSType: "cgroup", Data: "memory"},
				{Point: "/sys/fs/cgroup/systemd", FSType: "cgroup", Data: "name=systemd"},
				{Point: "/sys/fs/cgroup/unified", FSType: "cgroup2"},
			},
		},
	}, {
		name: "pure cgroup v2 under systemd",
		mountinfo: []string{
			"30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot",
		},
		cgroup: []string{"0::/user.slice/user-0.slice/session-2.scope"},
		hier:   []hierarchy{{v2: true, mount: "/sys/fs/cgroup", current: "/sys/fs/cgroup/user.slice/user-0.slice/session-2.scope"}},
		layout: cgroupLayout{Mounts: []fsMount{
			{Point: "/sys/fs/cgroup", FSType: "cgroup2", Data: "nsdelegate,memory_recursiveprot", Flags: nsx},
		}},
	}, {
		name: "legacy, cpu,cpuacct together, read-only tmpfs, systemd's release agent",
		mountinfo: []string{
			"25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755",
			"27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd",
			"31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct",
			"33 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio",
		},
		cgroup: []string{"4:net_cls,net_prio:/", "3:cpu,cpuacct:/system.slice/ci.service", "1:name=systemd:/system.slice/ci.service", "0::/system.slice/ci.service"},
		hier: []hierarchy{
			{mount: "/sys/fs/cgroup/systemd", current: "/sys/fs/cgroup/systemd/system.slice/ci.service"},
			{mount: "/sys/fs/cgroup/cpu,cpuacct", current: "/sys/fs/cgroup/cpu,cpuacct/system.slice/ci.service"},
			{mount: "/sys/fs/cgroup/net_cls,net_prio", current: "/sys/fs/cgroup/net_cls,net_prio"},
		},
		layout: cgroupLayout{
			Tmpfs: &fsMount{Point: "/sys/fs/cgroup", FSType: "tmpfs", Data: "mode=755", Flags: unix.MS_RDONLY | nsx},
			Mounts: []fsMount{
				{Point: "/sys/fs/cgroup/systemd", FSType: "cgroup", Data: "xattr,name=systemd", Flags: nsx},
				{Point: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct", Flags: nsx},
				{Point: "/sys/fs/cgroup/net_cls,net_prio", FSType: "cgroup", Data: "net_cls,net_prio", Flags: nsx},
			},
		},
	}, {
		name: "a container's view, and a second mount that shows the cgroup",
		mountinfo: []string{
			"40 30 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw",
			`41 30 0:27 /other /mnt/cg\040v1 rw - cgroup cgroup rw,pids`,
			"42 30 0:27 /docker /srv/pids rw - cgroup cgroup rw,pids",
			"43 30 0:27 / /srv/pids-all rw - cgroup cgroup rw,pids",
			"44 30 0:28 /elsewhere /srv/mem rw - cgroup cgroup rw,memory",
		},
		cgroup: []string{"5:memory:/docker/abc", "3:pids:/docker/abc", "0::/docker/abc/job"},
		hier: []hierarchy{
			{v2: true, mount: "/sys/fs/cgroup", current: "/sys/fs/cgroup/job"},
			{mount: "/srv/pids", current: "/srv/pids/abc"},
			{mount: "/srv/mem", current: "/srv/mem"},
		},
		layout: cgroupLayout{Mounts: []fsMount{{Point: "/sys/fs/cgroup", FSType: "cgroup2"}}},
	}, {
		name:      "no cgroups",
		mountinfo: []string{"23 27 0:22 / /sys rw,relatime - sysfs sysfs rw", "bad line"},
		cgroup:    []string{"0::/"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mounts := parseMountinfo(strings.Join(tt.mountinfo, "\n") + "\n")
			hier := findHierarchies(mounts, parseProcCgroup(strings.Join(tt.cgroup, "\n")+"\n"))
			if diff := cmp.Diff(tt.hier, hier, cmp.AllowUnexported(hierarchy{})); diff != "" {
				t.Errorf("hierarchies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.layout, layoutOf(mounts)); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCgroupName(t *testing.T) {
	name, err := newCgroupName()
	if err != nil {
		t.Fatal(err)
	}
	_, start, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pid, st, ok := parseCgroupName(name)
	if !ok || pid != os.Getpid() || st != start {
		t.Fatalf("parseCgroupName(%q) = %d, %d, %t; want %d, %d", name, pid, st, ok, os.Getpid(), start)
	}
	if ownerGone(name) {
		t.Errorf("ownerGone(%q): this process is its owner", name)
	}
	reused := fmt.Sprintf("%s%d-%d-00ff00ff", cgroupPrefix, os.Getpid(), start+1)
	if !ownerGone(reused) {
		t.Errorf("ownerGone(%q): the pid is this process's, which started at %d", reused, start)
	}
	for _, bad := range []string{"wcp-sandbox-", "wcp-sandbox-1-2", "wcp-sandbox-x-2-ab", "wcp-sandbox-0-2-ab",
		"wcp-sandbox-1-2-", "wcp-sandbox-1-2-ab-c", "other-1-2-ab"} {
		if _, _, ok := parseCgroupName(bad); ok {
			t.Errorf("parseCgroupName(%q) accepted it", bad)
		}
		if ownerGone(bad) {
			t.Errorf("ownerGone(%q): not a sandbox's name, never gone", bad)
		}
	}
}
