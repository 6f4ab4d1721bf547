package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host"
)

// sdHost is how systemd holds the cgroup tree here, as it decides it
// itself (src/basic/cgroup-util.c): unified when Root is cgroup2; hybrid
// when Root is a tmpfs and Root/unified is cgroup2, which systemd then
// uses only to track processes, the controllers being those of the v1
// hierarchies; legacy with v1 only.
type sdHost struct {
	mode Mode
	// unified is the cgroup2 mount systemd uses ("" in legacy mode).
	unified string
	// controllers are those the unified root offers (unified mode).
	controllers map[string]bool
	// v1 maps each v1 controller to its mount point, and v1Writable says
	// whether systemd can make cgroups there (as it checks itself: write
	// access to the hierarchy's cgroup.procs; a container gets them
	// read-only).
	v1         map[string]string
	v1Writable map[string]bool
	// psi: cgroup2 has pressure files.
	psi bool
}

func detectSystemdHost(root, mountinfo string) (sdHost, error) {
	isCgroup2 := func(p string) (bool, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return false, &fs.PathError{Op: "statfs", Path: p, Err: err}
		}
		return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
	}
	h := sdHost{mode: Legacy}
	if ok, err := isCgroup2(root); err != nil {
		return sdHost{}, fmt.Errorf("cgroup: %w", err)
	} else if ok {
		h.mode, h.unified = Unified, root
	} else if ok, _ := isCgroup2(filepath.Join(root, "unified")); ok {
		h.mode, h.unified = Hybrid, filepath.Join(root, "unified")
	}
	if h.unified != "" {
		c, err := readWords(filepath.Join(h.unified, "cgroup.controllers"))
		if err != nil {
			return sdHost{}, err
		}
		if h.mode == Unified {
			h.controllers = c
		}
		for _, f := range []string{"cgroup.pressure", "cpu.pressure"} {
			if _, err := os.Stat(filepath.Join(h.unified, f)); err == nil {
				h.psi = true
			}
		}
	}
	if h.mode != Unified {
		c, err := Detect(mountinfo)
		if err != nil {
			return sdHost{}, err
		}
		h.v1, h.v1Writable = c.V1, map[string]bool{}
		for name, p := range c.V1 {
			h.v1Writable[name] = unix.Access(filepath.Join(p, "cgroup.procs"), unix.W_OK) == nil
		}
	}
	return h, nil
}

// sdLimitControllers are the cgroup2 controllers of each limit.
var sdLimitControllers = map[string]string{ //nolint:gochecknoglobals // read only
	LimitMemoryHigh: "memory", LimitMemoryMax: "memory", LimitCPU: "cpu", LimitPids: "pids", LimitIO: "io",
}

// enforcement is what systemd (v252, Debian 12's, as its
// cgroup_context_apply does) makes the kernel enforce here:
//
//   - unified: every limit whose controller the cgroup2 root offers
//     (systemd enables it down to the slice);
//   - hybrid and legacy: MemoryMax= as memory.limit_in_bytes, CPUQuota= as
//     cpu.cfs_quota_us, TasksMax= as pids.max, each where that v1
//     hierarchy is mounted and writable; never MemoryHigh= (cgroup v2
//     only); io counts as not enforced, since systemd applies only the
//     bandwidth limits (as blkio.throttle.*_bps_device), never the IOPS
//     ones.
func (h sdHost) enforcement() Enforcement {
	e := Enforcement{Driver: "systemd (slice per tenant)", NotEnforced: map[string]string{}, PSI: h.psi}
	add := func(limit, whyNot string) {
		if whyNot == "" {
			e.Enforced = append(e.Enforced, limit)
		} else {
			e.NotEnforced[limit] = whyNot
		}
	}
	v1 := func(controller, how string) string {
		p, ok := h.v1[controller]
		switch {
		case !ok:
			return fmt.Sprintf("no cgroup v1 %s hierarchy is mounted, and systemd uses no cgroup2 controller in %s mode", controller, h.mode)
		case !h.v1Writable[controller]:
			return fmt.Sprintf("systemd applies %s, but the cgroup v1 %s hierarchy at %s is read-only (as in a container): systemd cannot make the slice's cgroup there", how, controller, p)
		}
		return ""
	}
	for _, limit := range AllLimits {
		if h.mode == Unified {
			c := sdLimitControllers[limit]
			if h.controllers[c] {
				add(limit, "")
			} else {
				add(limit, fmt.Sprintf("cgroup2 at %s offers no %s controller to systemd (its cgroup.controllers: %q)", h.unified, c, keys(h.controllers)))
			}
			continue
		}
		switch limit {
		case LimitMemoryHigh:
			add(limit, fmt.Sprintf("systemd applies MemoryHigh= on cgroup v2 only, and memory is a cgroup v1 controller here (%s mode)", h.mode))
		case LimitMemoryMax:
			add(limit, v1("memory", "MemoryMax= as memory.limit_in_bytes"))
		case LimitCPU:
			add(limit, v1("cpu", "CPUQuota= as cpu.cfs_quota_us"))
		case LimitPids:
			add(limit, v1("pids", "TasksMax= as pids.max"))
		case LimitIO:
			why := v1("blkio", "IO{Read,Write}BandwidthMax= as blkio.throttle.{read,write}_bps_device")
			if why == "" {
				why = fmt.Sprintf("only the bandwidth limits are: systemd applies IO{Read,Write}BandwidthMax= as blkio.throttle.{read,write}_bps_device on cgroup v1, and IO{Read,Write}IOPSMax= not at all (%s mode)", h.mode)
			}
			add(limit, why)
		}
	}
	if len(e.NotEnforced) == 0 {
		e.NotEnforced = nil
	}
	return e
}

// sdFileProperties are the slice properties that write each cgroup file.
// Setting CPUQuotaPerSecUSec again makes systemd write the quota and the
// period (that of CPUQuotaPeriodUSec, compared on its own).
var sdFileProperties = map[string][]string{ //nolint:gochecknoglobals // read only
	"memory.high": {"MemoryHigh"}, "memory.max": {"MemoryMax"}, "cpu.max": {"CPUQuotaPerSecUSec"},
	"pids.max": {"TasksMax"}, "io.max": sdIOProperties[:],
	// cgroup v1
	"memory.limit_in_bytes": {"MemoryMax"}, "cpu.cfs_quota_us": {"CPUQuotaPerSecUSec"},
	"cpu.cfs_period_us": {"CPUQuotaPerSecUSec"},
}

// observeFiles compares the interface files of the slice's cgroup cg
// (relative to systemd's root) with l, for the limits systemd makes the
// kernel enforce here; it returns the differences and the properties that
// make systemd write those files again. A file that is missing where its
// controller should be is a difference ("absent").
func (h sdHost) observeFiles(cg string, l Limits, pageSize int64) ([]host.Difference, []string, error) {
	var diffs []host.Difference
	var props []string
	add := func(d host.Difference, file string) {
		diffs = append(diffs, d)
		for _, p := range sdFileProperties[file] {
			if !slices.Contains(props, p) {
				props = append(props, p)
			}
		}
	}
	if h.mode == Unified {
		ds, fixes, err := (&Manager{pageSize: pageSize}).observe(filepath.Join(h.unified, cg), l)
		if err != nil {
			return nil, nil, err
		}
		for i, d := range ds {
			controller, _, _ := strings.Cut(fixes[i].file, ".")
			if h.controllers[controller] {
				add(d, fixes[i].file)
			}
		}
		return diffs, props, nil
	}
	enforced := h.enforcement().Enforced
	type v1File struct {
		limit, controller, file, want string
		same                          func(have string) bool
	}
	memWant, memSame := sdV1Memory(l.MemoryMax, pageSize)
	cpu := l.CPUMax()
	pids := "max"
	if l.Pids > 0 {
		pids = strconv.FormatInt(l.Pids, 10)
	}
	for _, f := range []v1File{
		{LimitMemoryMax, "memory", "memory.limit_in_bytes", memWant, memSame},
		{LimitCPU, "cpu", "cpu.cfs_quota_us", strconv.FormatInt(cpu.Quota, 10), nil},
		{LimitCPU, "cpu", "cpu.cfs_period_us", strconv.FormatInt(cpu.Period, 10), nil},
		{LimitPids, "pids", "pids.max", pids, nil},
	} {
		if !slices.Contains(enforced, f.limit) {
			continue
		}
		path := filepath.Join(h.v1[f.controller], cg, f.file)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			add(host.Difference{Field: f.file, Want: f.want, Have: "absent"}, f.file)
			continue
		} else if err != nil {
			return nil, nil, fmt.Errorf("cgroup: %w", err)
		}
		have := strings.TrimSpace(string(b))
		if (f.same == nil && have != f.want) || (f.same != nil && !f.same(have)) {
			add(host.Difference{Field: f.file, Want: f.want, Have: have}, f.file)
		}
	}
	return diffs, props, nil
}

// sdV1Memory is what memory.limit_in_bytes holds for MemoryMax=n: n
// rounded down to pages, or for no limit the kernel's largest
// (PAGE_COUNTER_MAX pages, 9223372036854771712 with 4 KiB pages), which
// it prints however "no limit" was written ("-1" by systemd).
func sdV1Memory(n, pageSize int64) (string, func(string) bool) {
	limit := n / pageSize * pageSize
	if n <= 0 {
		limit = (1<<63 - 1) / pageSize * pageSize
	}
	want := strconv.FormatInt(limit, 10)
	return want, func(have string) bool {
		v, err := strconv.ParseInt(have, 10, 64)
		return err == nil && (v == limit || (n <= 0 && v >= limit))
	}
}

// usage reads what the slice's cgroup cg uses: cgroup2's files first,
// then, for what they lack on a hybrid or legacy host, the v1 ones.
func (h sdHost) usage(cg string) (Usage, error) {
	var u Usage
	dir := func(controller string) string {
		if controller == "" {
			if h.unified == "" {
				return ""
			}
			return filepath.Join(h.unified, cg)
		}
		if p, ok := h.v1[controller]; ok && h.mode != Unified {
			return filepath.Join(p, cg)
		}
		return ""
	}
	if d := dir(""); d != "" {
		if _, err := os.Stat(d); err != nil {
			return Usage{}, fmt.Errorf("cgroup: %w", err)
		}
	}
	type source struct{ controller, file string }
	for _, v := range []struct {
		dst     *int64
		sources []source
	}{
		{&u.MemoryCurrent, []source{{"", "memory.current"}, {"memory", "memory.usage_in_bytes"}}},
		{&u.MemoryPeak, []source{{"", "memory.peak"}, {"memory", "memory.max_usage_in_bytes"}}},
		{&u.Pids, []source{{"", "pids.current"}, {"pids", "pids.current"}}},
	} {
		found := false
		for _, s := range v.sources {
			d := dir(s.controller)
			if d == "" {
				continue
			}
			n, err := readInt(filepath.Join(d, s.file))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return Usage{}, err
			}
			*v.dst, found = n, true
			break
		}
		if !found {
			u.Missing = append(u.Missing, v.sources[0].file)
		}
	}
	flat := func(controller, file string) (map[string]uint64, bool, error) {
		d := dir(controller)
		if d == "" {
			return nil, false, nil
		}
		b, err := os.ReadFile(filepath.Join(d, file))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		} else if err != nil {
			return nil, false, fmt.Errorf("cgroup: %w", err)
		}
		m, err := parseFlatKeyed(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", filepath.Join(d, file), err)
		}
		return m, true, nil
	}
	st, ok, err := flat("", "cpu.stat")
	if err != nil {
		return Usage{}, err
	}
	if ok {
		// usage_usec needs no controller; the throttling counts need cpu's.
		u.CPU = time.Duration(st["usage_usec"]) * time.Microsecond //nolint:gosec // microseconds since boot fit
		u.Periods, u.Throttled = st["nr_periods"], st["nr_throttled"]
		u.ThrottledTime = time.Duration(st["throttled_usec"]) * time.Microsecond //nolint:gosec // as above
	} else if d := dir("cpuacct"); d != "" {
		// Legacy: no cgroup2 to count it; cpuacct.usage is in nanoseconds.
		n, err := readInt(filepath.Join(d, "cpuacct.usage"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Usage{}, err
		}
		if err == nil {
			u.CPU = time.Duration(n)
		} else {
			u.Missing = append(u.Missing, "cpu.stat")
		}
	} else {
		u.Missing = append(u.Missing, "cpu.stat")
	}
	if _, cpuCtl := st["nr_periods"]; !cpuCtl {
		// cgroup v1's cpu.stat: throttled_time is in nanoseconds.
		if v1, ok, err := flat("cpu", "cpu.stat"); err != nil {
			return Usage{}, err
		} else if ok {
			u.Periods, u.Throttled = v1["nr_periods"], v1["nr_throttled"]
			u.ThrottledTime = time.Duration(v1["throttled_time"]) //nolint:gosec // nanoseconds since boot fit
		}
	}
	if ev, ok, err := flat("", "memory.events"); err != nil {
		return Usage{}, err
	} else if ok {
		u.OOMKills, u.MemoryHighEvents = ev["oom_kill"], ev["high"]
	} else if oc, ok, err := flat("memory", "memory.oom_control"); err != nil {
		return Usage{}, err
	} else if ok {
		u.OOMKills = oc["oom_kill"]
	} else {
		u.Missing = append(u.Missing, "memory.events")
	}
	return u, nil
}
