package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test binaries whose tests change the host run every such test in a
// sandbox of its own:
//
//	func TestMain(m *testing.M) { os.Exit(sandbox.Main(m)) }
//
//	func TestUseradd(t *testing.T) {
//		if sandbox.Run(t) {
//			return // ran in a sandbox; optionally check the host afterwards here
//		}
//		// the test body, inside the sandbox
//	}
//
// With pgtest, whose Main stops the test's PostgreSQL cluster:
//
//	func TestMain(m *testing.M) {
//		os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) }))
//	}
//
// Sandboxed tests cannot be made on a machine without root or namespaces:
// they then fail when the CI environment variable is set or
// WCP_REQUIRE_SANDBOX=1, and are skipped otherwise.

// EnvRequire makes an unavailable sandbox a test failure instead of a skip
// (as does CI being set).
const EnvRequire = "WCP_REQUIRE_SANDBOX"

// HostFiles are the files Main checks are byte-identical on the host after
// the tests, and whose hashes it compares.
func HostFiles() []string {
	return []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/hosts", "/etc/hostname"}
}

// Main runs the tests of a test binary, for TestMain. In the test process it
// also checks that the host's HostFiles and host name are unchanged
// afterwards, and fails loudly if not. In a sandbox started by Run it sets
// the sandbox up and runs the one test asked for.
func Main(m *testing.M) int { return MainFunc(m.Run) }

// MainFunc is Main for a TestMain that wraps m.Run (run must call m.Run).
func MainFunc(run func() int) int {
	if code, exit := Init(); exit {
		return code
	}
	if Inside() {
		return run()
	}
	before := hostSnapshot()
	code := run()
	if changed := compareSnapshots(before, hostSnapshot()); len(changed) > 0 {
		fmt.Fprintf(os.Stderr, "\n%s\nsandbox: THE HOST CHANGED while the tests ran: %s\n"+
			"a test wrote to the host instead of to a sandbox (see sandbox.Run)\n%s\n",
			strings.Repeat("!", 72), strings.Join(changed, ", "), strings.Repeat("!", 72))
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Run runs the calling test in a sandbox of its own, and returns true in the
// test process, where the caller then returns (or checks the host). Inside
// the sandbox it returns false and the test body runs.
//
// The test binary is run again with -test.run=^Name$ (and -test.v, -test.count=1,
// -test.short and a -test.timeout a little shorter than this test's); its
// output goes to this test's log, and this test fails if it failed and skips
// if it skipped. Only top-level tests can be sandboxed; their subtests run
// in the same sandbox. TestMain must use Main or MainFunc.
func Run(t *testing.T) bool {
	t.Helper()
	return RunWith(t, Options{})
}

// RunWith is Run with options. Inside the sandbox opts is not used, so it
// may be computed differently there (from t.TempDir, for example).
func RunWith(t *testing.T, opts Options) bool {
	t.Helper()
	if Inside() {
		return false
	}
	if _, ok := os.LookupEnv(envSetup); ok {
		t.Fatal("sandbox: this test binary's TestMain does not call sandbox.Main or sandbox.MainFunc")
	}
	runTest(t, opts, "")
	return true
}

// RunBinary runs the test of t's name in another test binary, bin, in a
// sandbox, and reports its result as t's, as Run does: t fails if it
// failed and skips if it skipped. bin is a path in the sandbox's view; with
// Options.RootFS, a binary that runs there (statically linked, say) bound
// into it. In bin, Inside is true (so Run returns false there).
func RunBinary(t *testing.T, opts Options, bin string) {
	t.Helper()
	runTest(t, opts, bin)
}

// runTest runs t alone in a sandbox: this binary again when bin is empty,
// else the test binary bin.
func runTest(t *testing.T, opts Options, bin string) {
	t.Helper()
	if strings.Contains(t.Name(), "/") {
		t.Fatalf("sandbox: Run only sandboxes top-level tests; call it in the parent of %s", t.Name())
	}
	args, binds := childTestArgs(t)
	opts.Binds = append(binds, opts.Binds...)
	if r := os.Getenv("GORACE"); !strings.Contains(r, "atexit_sleep_ms") {
		// A race-enabled binary sleeps a second at exit by default; the
		// sandboxed run is one test, with nothing left to wait for.
		opts.Env = append(opts.Env, "GORACE="+strings.TrimSpace(r+" atexit_sleep_ms=0"))
	}
	out := &testOutput{t: t, name: t.Name()}
	stdio := Stdio{Stdout: out, Stderr: out}
	var p *Process
	var err error
	if bin == "" {
		p, err = StartSelf(t.Context(), opts, args, stdio)
	} else {
		p, err = Start(t.Context(), opts, append([]string{bin}, args...), stdio)
	}
	if errors.Is(err, ErrUnavailable) {
		Unavailable(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	out.flush()
	switch {
	case err != nil:
		t.Fatal(err)
	case code == ExitSetupFailed:
		Unavailable(t, "the sandbox could not be set up (its output is above)")
	case code != 0:
		t.Fatalf("sandbox: %s failed in its sandbox (exit status %d)", t.Name(), code)
	case out.result == "SKIP":
		t.Skipf("sandbox: %s skipped in its sandbox", t.Name())
	case out.result != "PASS":
		t.Fatalf("sandbox: the sandboxed run did not run %s", t.Name())
	}
}

// Unavailable ends a test that needs something this machine lacks (a
// sandbox, or what a sandbox needs): it fails when the CI environment
// variable is set or EnvRequire is 1, and is skipped otherwise.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" || os.Getenv(EnvRequire) == "1" {
		t.Fatalf("sandbox: %s (required: CI or %s=1 is set)", reason, EnvRequire)
	}
	t.Skipf("sandbox: %s; skipped (set %s=1 to make this a failure)", reason, EnvRequire)
}

// childTestArgs are the flags of the sandboxed run of t, and the binds it
// needs (the coverage directory).
func childTestArgs(t *testing.T) ([]string, []Bind) {
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v=true"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if d, ok := t.Deadline(); ok {
		// Let the sandboxed run time out (with its goroutine dump) before
		// this test binary does.
		left := time.Until(d)
		margin := min(left/10, 10*time.Second)
		args = append(args, fmt.Sprintf("-test.timeout=%s", max(left-margin, time.Second)))
	}
	var binds []Bind
	// go test runs a package's tests in its directory, and tests read
	// testdata/ from there. A checkout under a directory the sandbox
	// replaces with a fresh tmpfs (/tmp, /run, /srv/www...) would be gone
	// inside: bring the package directory along.
	if wd, err := os.Getwd(); err == nil && underFreshTmpfs(wd) {
		binds = append(binds, Bind{Source: wd, Target: wd})
	}
	if f := flag.Lookup("test.gocoverdir"); f != nil && f.Value.String() != "" {
		dir := f.Value.String()
		args = append(args, "-test.gocoverdir="+dir)
		binds = append(binds, Bind{Source: dir, Target: dir})
	}
	return args, binds
}

// underFreshTmpfs reports whether path lies in one of the sandbox's fresh
// tmpfs mounts, where the host's files are not visible.
func underFreshTmpfs(path string) bool {
	for _, d := range []string{"/tmp", "/run", "/dev/shm", "/srv/www", "/var/lib/wcp360", "/var/log"} {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// testOutput copies the sandboxed run's output into the test log line by
// line, and notes the test's result line.
type testOutput struct {
	t      *testing.T
	name   string
	mu     sync.Mutex
	buf    []byte
	result string
}

func (o *testOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	for {
		i := bytes.IndexByte(o.buf, '\n')
		if i < 0 {
			break
		}
		o.line(string(o.buf[:i]))
		o.buf = o.buf[i+1:]
	}
	return len(p), nil
}

func (o *testOutput) line(l string) {
	for _, r := range []string{"PASS", "FAIL", "SKIP"} {
		if strings.HasPrefix(l, "--- "+r+": "+o.name+" ") {
			o.result = r
		}
	}
	fmt.Fprintf(o.t.Output(), "sandbox| %s\n", l)
}

func (o *testOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) > 0 {
		o.line(string(o.buf))
		o.buf = nil
	}
}

// hostSnapshot hashes HostFiles and notes the host name.
func hostSnapshot() map[string]string {
	s := hashFiles(HostFiles())
	h, err := os.Hostname()
	if err != nil {
		h = "error: " + err.Error()
	}
	s["hostname"] = h
	return s
}

// hashFiles maps each path to the SHA-256 of its content, "missing" or
// "error: ...".
func hashFiles(paths []string) map[string]string {
	m := make(map[string]string, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			m[p] = "missing"
		case err != nil:
			m[p] = "error: " + err.Error()
		default:
			sum := sha256.Sum256(b)
			m[p] = "sha256:" + hex.EncodeToString(sum[:])
		}
	}
	return m
}

// compareSnapshots lists, sorted, the keys whose values differ.
func compareSnapshots(before, after map[string]string) []string {
	var changed []string
	for k, v := range before {
		if w, ok := after[k]; !ok || w != v {
			changed = append(changed, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed
}
