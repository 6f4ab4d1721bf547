package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/wcp360/wcp360/internal/host"
)

// Errors of the Manager, for errors.Is.
var (
	// ErrInvalidName: a tenant or subtree name that is no safe cgroup name.
	ErrInvalidName = errors.New("cgroup: invalid name")
	// ErrControllerUnavailable: the cgroup2 root lacks a controller the
	// limits need (on a hybrid host they are bound to cgroup v1).
	ErrControllerUnavailable = errors.New("cgroup: controller not available in cgroup v2")
	// ErrBusy: the tenant's processes did not go away within the time given.
	ErrBusy = errors.New("cgroup: processes left in the cgroup")
)

// Controllers are the cgroup v2 controllers the limits use; the Manager
// enables all of them for every tenant, so usage is accounted even
// without a limit.
var Controllers = []string{"cpu", "io", "memory", "pids"} //nolint:gochecknoglobals // read only

// DefaultRoot is where cgroup2 is mounted on a unified host.
const DefaultRoot = "/sys/fs/cgroup"

// DefaultSubtree is the cgroup under the root that holds the tenants'.
const DefaultSubtree = "wcp360"

// Options configure a Manager.
type Options struct {
	// Root is the cgroup2 mount; DefaultRoot when empty.
	Root string
	// Subtree is the name of WCP360's cgroup under Root; DefaultSubtree
	// when empty.
	Subtree string
}

// Manager keeps one cgroup per tenant, Root/Subtree/<tenant>, by writing
// the cgroup2 file system directly (hosts where systemd owns the tree use
// the Systemd driver instead). Every method is idempotent.
type Manager struct {
	root, dir string
	pageSize  int64
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// New returns a Manager; it touches nothing.
func New(opts Options) (*Manager, error) {
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.Subtree == "" {
		opts.Subtree = DefaultSubtree
	}
	if !filepath.IsAbs(opts.Root) {
		return nil, fmt.Errorf("%w: root %q is not an absolute path", ErrInvalidName, opts.Root)
	}
	if !nameRE.MatchString(opts.Subtree) {
		return nil, fmt.Errorf("%w: subtree %q", ErrInvalidName, opts.Subtree)
	}
	root := filepath.Clean(opts.Root)
	return &Manager{root: root, dir: filepath.Join(root, opts.Subtree), pageSize: int64(os.Getpagesize())}, nil
}

// Dir is the cgroup directory of tenant (it exists once Apply ran): the
// seam for phpfpm's Options.CgroupDir, whose masters are born inside it.
func (m *Manager) Dir(tenant string) (string, error) {
	if !nameRE.MatchString(tenant) {
		return "", fmt.Errorf("%w: tenant %q", ErrInvalidName, tenant)
	}
	return filepath.Join(m.dir, tenant), nil
}

// Apply makes the tenant's cgroup (enabling the controllers on the way)
// and writes the limits that differ from l; it returns what it changed,
// nothing when the cgroup already was as l says.
func (m *Manager) Apply(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dir, err := m.Dir(tenant)
	if err != nil {
		return nil, err
	}
	var changed []host.Difference
	for _, d := range []string{m.root, m.dir} {
		c, err := m.enableControllers(d)
		if err != nil {
			return changed, err
		}
		changed = append(changed, c...)
		if d == m.root {
			if err := mkdir(m.dir); err != nil {
				return changed, err
			}
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := mkdir(dir); err != nil {
			return changed, err
		}
		changed = append(changed, host.Difference{Field: "cgroup", Want: dir, Have: "absent"})
	}
	diffs, writes, err := m.observe(dir, l)
	if err != nil {
		return changed, err
	}
	for i, d := range diffs {
		if err := writeFile(filepath.Join(dir, writes[i].file), writes[i].value()); err != nil {
			return changed, err
		}
		changed = append(changed, d)
	}
	return changed, nil
}

// Observe returns how the tenant's cgroup differs from l: a limit someone
// wrote by hand is a difference (field, want, have), as is a missing
// cgroup.
func (m *Manager) Observe(tenant string, l Limits) ([]host.Difference, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	dir, err := m.Dir(tenant)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return []host.Difference{{Field: "cgroup", Want: dir, Have: "absent"}}, nil
	} else if err != nil {
		return nil, err
	}
	diffs, _, err := m.observe(dir, l)
	return diffs, err
}

func (s setting) value() string {
	if s.line != "" {
		return s.line
	}
	return s.want
}

// observe compares dir with l; each difference comes with the setting
// that corrects it.
func (m *Manager) observe(dir string, l Limits) ([]host.Difference, []setting, error) {
	var diffs []host.Difference
	var fixes []setting
	add := func(s setting, have string) {
		diffs = append(diffs, host.Difference{Field: s.field, Want: s.want, Have: have})
		fixes = append(fixes, s)
	}
	var io map[Device]IOMax
	for _, s := range l.settings(m.pageSize) {
		if s.file == "io.max" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, s.file))
		if errors.Is(err, fs.ErrNotExist) {
			// The controller is not enabled: Apply enables it.
			add(s, "absent")
			continue
		} else if err != nil {
			return nil, nil, err
		}
		if have := strings.TrimSpace(string(b)); have != s.want {
			add(s, have)
		}
	}
	haveNone := "none"
	b, err := os.ReadFile(filepath.Join(dir, "io.max"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		haveNone = "absent" // the io controller is not enabled
	case err != nil:
		return nil, nil, err
	default:
		if io, err = ParseIOMax(string(b)); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "io.max"), err)
		}
	}
	for _, s := range l.settings(m.pageSize) {
		if s.file != "io.max" {
			continue
		}
		d, _ := parseDevice(strings.TrimPrefix(s.field, "io.max "))
		have, ok := io[d]
		switch {
		case !ok && l.IO[d] != NoIOLimit():
			add(s, haveNone)
		case !ok:
		case have != l.IO[d]:
			add(s, have.String())
		}
	}
	for _, d := range sortedDevices(io) {
		if _, ok := l.IO[d]; !ok && io[d] != NoIOLimit() {
			add(ioSetting(d, NoIOLimit()), io[d].String())
		}
	}
	return diffs, fixes, nil
}

// enableControllers enables Controllers in dir's cgroup.subtree_control,
// for its children, when they are not yet.
func (m *Manager) enableControllers(dir string) ([]host.Difference, error) {
	avail, err := readWords(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, c := range Controllers {
		if !avail[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s offers %q, lacks %s", ErrControllerUnavailable, dir, keys(avail), strings.Join(missing, ", "))
	}
	path := filepath.Join(dir, "cgroup.subtree_control")
	on, err := readWords(path)
	if err != nil {
		return nil, err
	}
	var add []string
	for _, c := range Controllers {
		if !on[c] {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil, nil
	}
	if err := writeFile(path, strings.Join(add, " ")); err != nil {
		return nil, err
	}
	return []host.Difference{{Field: "subtree_control " + dir, Want: strings.Join(add, " "), Have: strings.Join(keys(on), " ")}}, nil
}

// Remove kills what runs in the tenant's cgroup (cgroup.kill), waits until
// it is empty, and removes it. It reports whether there was a cgroup; a
// missing one is no error.
func (m *Manager) Remove(ctx context.Context, tenant string) (bool, error) {
	dir, err := m.Dir(tenant)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return true, removeTree(ctx, dir)
}

// Pressure is the PSI of CPU, memory and I/O.
type Pressure struct {
	CPU, Memory, IO PSI
}

// Pressure reads the tenant's cpu.pressure, memory.pressure and
// io.pressure.
func (m *Manager) Pressure(tenant string) (Pressure, error) {
	dir, err := m.Dir(tenant)
	if err != nil {
		return Pressure{}, err
	}
	return readPressure(dir, "cpu.pressure", "memory.pressure", "io.pressure")
}

// HostPressure reads the host's /proc/pressure/{cpu,memory,io}; proc is
// "/proc" but for tests.
func HostPressure(proc string) (Pressure, error) {
	return readPressure(filepath.Join(proc, "pressure"), "cpu", "memory", "io")
}

func readPressure(dir string, files ...string) (Pressure, error) {
	var p Pressure
	for i, dst := range []*PSI{&p.CPU, &p.Memory, &p.IO} {
		path := filepath.Join(dir, files[i])
		b, err := os.ReadFile(path)
		if err != nil {
			return Pressure{}, fmt.Errorf("cgroup: pressure: %w", err)
		}
		if *dst, err = ParsePSI(string(b)); err != nil {
			return Pressure{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return p, nil
}

// Stat reads a flat-keyed file of the tenant's cgroup: "memory.events",
// "cpu.stat", "pids.events", ...
func (m *Manager) Stat(tenant, file string) (map[string]uint64, error) {
	dir, err := m.Dir(tenant)
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(file, '/') || !strings.Contains(file, ".") {
		return nil, fmt.Errorf("%w: file %q", ErrInvalidName, file)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	st, err := parseFlatKeyed(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
	}
	return st, nil
}

func mkdir(dir string) error {
	// 0755 like systemd's: a tenant's programs may read their own limits.
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) { //nolint:gosec // see above
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

// writeFile writes one value to a cgroup interface file, which must exist:
// the kernel takes it in one write(2).
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", value, path, err)
	}
	return nil
}

// readWords reads a space-separated list such as cgroup.controllers.
func readWords(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	m := map[string]bool{}
	for _, w := range strings.Fields(string(b)) {
		m[w] = true
	}
	return m, nil
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }
