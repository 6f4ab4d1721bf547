// Package vm runs a test in a QEMU virtual machine on a real, known Linux
// kernel: Debian's cloud kernel with cgroup v2 mounted and the modules for
// virtio disks, XFS, ext4 quota and loop devices. Tests of what the host's
// kernel may not offer (cgroup v2 controllers, project quotas) run there.
//
//	func TestMemoryMax(t *testing.T) {
//		if vm.Run(t, vm.Options{Disks: []vm.Disk{{Name: "data", FS: vm.XFS}}}) {
//			return // ran in a VM
//		}
//		dev := vm.Device(t, "data") // the test body, inside the VM, as root
//		...
//	}
//
// On the host, Run gets the kernel and the base initramfs from
// hack/vm-kernel.sh (cached in /var/cache/wcp360/vm), builds the calling
// package's tests as a statically linked binary, appends it to the
// initramfs, makes the disks asked for, boots QEMU (TCG: no KVM, no network)
// and runs the one test there: its output becomes this test's log and its
// result this test's result. Inside the VM, Run returns false and the test
// body runs, as PID 1's child, with the package's directory absent (there is
// no testdata/ in the VM).
//
// When QEMU or the kernel cannot be had, the test fails when the CI
// environment variable is set or WCP_REQUIRE_VM=1, and is skipped otherwise.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// EnvRequire makes an unavailable VM a test failure instead of a skip (as
// does CI being set).
const EnvRequire = "WCP_REQUIRE_VM"

// envInside is set in the VM, for the test binary the init runs.
const envInside = "WCP_IN_VM"

// FS is what a Disk is made with on the host.
type FS string

// The file systems a Disk can have.
const (
	// Raw is an empty disk, all zeros.
	Raw FS = "raw"
	// XFS is made by mkfs.xfs; mount it with -o prjquota for project quotas.
	XFS FS = "xfs"
	// Ext4Quota is ext4 with the quota and project features and project
	// quota enabled (mkfs.ext4 -O quota,project -E quotatype=prjquota):
	// the kernel keeps project usage from the first mount.
	Ext4Quota FS = "ext4-quota"
)

// Disk is a virtio disk the VM gets, backed by a sparse file on the host.
type Disk struct {
	// Name is the disk's serial number, by which Device finds it: at most
	// 20 characters, not "results".
	Name string
	FS   FS
	// SizeMiB defaults to 512 (XFS needs at least 300).
	SizeMiB int
}

// Options say what the VM has.
type Options struct {
	Disks []Disk
	// MemoryMiB defaults to 1024; CPUs to 2 (at most the host's).
	MemoryMiB int
	CPUs      int
	// Timeout bounds the whole run, boot included; default 5 minutes, and
	// never past the test's deadline.
	Timeout time.Duration
	// Env is added to the test's environment in the VM.
	Env []string
}

// Inside reports whether this process is the test binary in a VM.
func Inside() bool { return os.Getenv(envInside) == "1" }

// Unavailable ends a test that needs a VM this machine cannot run: it fails
// when the CI environment variable is set or EnvRequire is 1, and is skipped
// otherwise.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv(EnvRequire) == "1" {
		t.Fatalf("vm: %s (required: CI or %s=1 is set)", reason, EnvRequire)
	}
	t.Skipf("vm: %s; skipped (set %s=1 to make this a failure)", reason, EnvRequire)
}

// Device is the block device of the disk named name, in the VM.
func Device(t testing.TB, name string) string {
	t.Helper()
	if !Inside() {
		t.Fatalf("vm: Device(%q) outside a VM", name)
	}
	dev, err := device("/sys/block", name)
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

func device(sysBlock, name string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("vm: no disk with serial %q in %s", name, sysBlock)
}

// Run runs the calling test in a VM and returns true on the host, where the
// caller then returns. In the VM it returns false and the test body runs.
// Only top-level tests can run in a VM; their subtests run in the same VM.
func Run(t *testing.T, opts Options) bool {
	t.Helper()
	if Inside() {
		return false
	}
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("vm: Run only runs top-level tests in a VM; call it in the parent of %s", t.Name())
	}
	if err := opts.check(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := getAssets(t)
	bin := testBinary(t)
	t.Logf("vm: kernel %s and test binary ready in %s", a.release, time.Since(start).Round(time.Millisecond))

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	if d, ok := t.Deadline(); ok {
		timeout = min(timeout, time.Until(d)-min(time.Until(d)/10, 10*time.Second))
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()

	dir := t.TempDir()
	initrd := filepath.Join(dir, "initramfs")
	if err := writeInitrd(initrd, a.initramfs, bin, runScript(t, opts, timeout)); err != nil {
		t.Fatalf("vm: the initramfs: %v", err)
	}
	results := filepath.Join(dir, "results.img")
	if err := makeDisk(ctx, results, Disk{Name: "results", FS: Raw, SizeMiB: 64}); err != nil {
		t.Fatal(err)
	}
	args := qemuArgs(opts, a.kernel, initrd, results)
	for i, d := range opts.Disks {
		img := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		if err := makeDisk(ctx, img, d); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-drive", fmt.Sprintf("if=none,id=d%d,file=%s,format=raw,cache=unsafe", i, img),
			"-device", fmt.Sprintf("virtio-blk-pci,drive=d%d,serial=%s", i, d.Name))
	}
	t.Logf("vm: disks and initramfs ready in %s; booting", time.Since(start).Round(time.Millisecond))

	boot := time.Now()
	console := &consoleLog{t: t}
	p, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: a.qemu, Args: args}, console)
	if err != nil {
		Unavailable(t, "QEMU does not start: "+err.Error())
	}
	waitErr := p.Wait()
	console.flush()
	t.Logf("vm: QEMU ran %s", time.Since(boot).Round(time.Millisecond))
	res, err := readResult(results)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("vm: the VM did not finish within %s (%v)", timeout, ctx.Err())
	case err != nil:
		t.Fatalf("vm: %v (QEMU: %v); the console is above", err, waitErr)
	case res.status != 0:
		t.Fatalf("vm: %s failed in the VM (exit status %d)", t.Name(), res.status)
	}
	switch testResult(res.output, t.Name()) {
	case "PASS":
	case "SKIP":
		t.Skipf("vm: %s skipped in the VM", t.Name())
	default:
		t.Fatalf("vm: the run in the VM did not run %s", t.Name())
	}
	return true
}

func (o Options) check() error {
	seen := map[string]bool{"results": true}
	for _, d := range o.Disks {
		if d.Name == "" || len(d.Name) > 20 || !regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString(d.Name) || seen[d.Name] {
			return fmt.Errorf("vm: disk name %q: want 1-20 letters, digits, - or _, unique, not \"results\"", d.Name)
		}
		seen[d.Name] = true
		switch d.FS {
		case Raw, XFS, Ext4Quota:
		default:
			return fmt.Errorf("vm: disk %s: unknown file system %q", d.Name, d.FS)
		}
	}
	return nil
}

func qemuArgs(opts Options, kernel, initrd, results string) []string {
	mem := opts.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	cpus := opts.CPUs
	if cpus == 0 {
		cpus = 2
	}
	cpus = max(1, min(cpus, runtime.NumCPU()))
	return []string{
		// KVM on our CI machines is a paravirtual backend that hangs a
		// normal guest: TCG is slower but always works.
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-nic", "none", "-serial", "stdio",
		"-kernel", kernel, "-initrd", initrd,
		// panic=-1: a panic reboots at once, which -no-reboot turns into an exit.
		"-append", "console=ttyS0 panic=-1 quiet",
		"-drive", "if=none,id=results,file=" + results + ",format=raw,cache=unsafe",
		"-device", "virtio-blk-pci,drive=results,serial=results",
	}
}

// runScript is /wcp/run in the VM: it runs this test in the test binary.
func runScript(t *testing.T, opts Options, timeout time.Duration) []byte {
	args := []string{"/wcp/test", "-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v=true",
		// Let the test time out (with its goroutine dump) before QEMU is killed.
		fmt.Sprintf("-test.timeout=%s", max(timeout-timeout/10-5*time.Second, time.Second))}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	var b bytes.Buffer
	b.WriteString("#!/bin/sh\ncd /wcp || exit 1\n")
	for _, e := range append([]string{envInside + "=1"}, opts.Env...) {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	fmt.Fprintf(&b, "exec %s\n", strings.Join(args, " "))
	return b.Bytes()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// makeDisk makes the sparse image path for d.
func makeDisk(ctx context.Context, path string, d Disk) error {
	size := d.SizeMiB
	if size == 0 {
		size = 512
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(size) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var c cmdrun.Cmd
	switch d.FS {
	case Raw:
		return nil
	case XFS:
		c = cmdrun.Cmd{Path: "mkfs.xfs", Args: []string{"-q", "-L", d.Name, path}}
	case Ext4Quota:
		c = cmdrun.Cmd{Path: "mkfs.ext4", Args: []string{"-q", "-F", "-L", d.Name, "-O", "quota,project", "-E", "quotatype=prjquota", path}}
	}
	if c.Path, err = cmdrun.LookPath(c.Path, "/usr/sbin", "/sbin"); err != nil {
		return fmt.Errorf("vm: disk %s (%s): %w (hack/install-deps.sh installs it)", d.Name, d.FS, err)
	}
	if _, err := cmdrun.Run(ctx, c); err != nil {
		return fmt.Errorf("vm: disk %s: %w", d.Name, err)
	}
	return nil
}

// result is what the init wrote to the results disk.
type result struct {
	status int
	output []byte
}

var errNoResult = errors.New("the VM wrote no result")

// readResult reads the results disk: "WCP360-VM-RESULT <status> <bytes>\n"
// and the output.
func readResult(path string) (result, error) {
	f, err := os.Open(path)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = f.Close() }() // read only
	head := make([]byte, 128)
	n, _ := f.Read(head)
	line, _, ok := bytes.Cut(head[:n], []byte("\n"))
	var r result
	var size int64
	if !ok {
		return result{}, errNoResult
	}
	if _, err := fmt.Sscanf(string(line), "WCP360-VM-RESULT %d %d", &r.status, &size); err != nil {
		return result{}, fmt.Errorf("%w: %q", errNoResult, line)
	}
	st, err := f.Stat()
	if err != nil {
		return result{}, err
	}
	if size < 0 || size > st.Size() {
		return result{}, fmt.Errorf("%w: bad size in %q", errNoResult, line)
	}
	r.output = make([]byte, size)
	if _, err := f.ReadAt(r.output, int64(len(line)+1)); err != nil {
		return result{}, fmt.Errorf("the VM's result: %w", err)
	}
	return r, nil
}

// testResult is PASS, FAIL or SKIP as the output says of the test name, or "".
func testResult(output []byte, name string) string {
	res := ""
	for l := range strings.SplitSeq(string(output), "\n") {
		for _, r := range []string{"PASS", "FAIL", "SKIP"} {
			if strings.HasPrefix(strings.TrimRight(l, "\r"), "--- "+r+": "+name+" ") {
				res = r
			}
		}
	}
	return res
}

// consoleLog copies the serial console into the test log line by line.
type consoleLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (c *consoleLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		c.line(c.buf[:i])
		c.buf = c.buf[i+1:]
	}
	return len(p), nil
}

func (c *consoleLog) line(l []byte) {
	fmt.Fprintf(c.t.Output(), "vm| %s\n", bytes.TrimRight(l, "\r"))
}

func (c *consoleLog) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.buf) > 0 {
		c.line(c.buf)
		c.buf = nil
	}
}
